//! The TOML policy file:
//!
//! ```toml
//! inherit-network = false          # optional
//!
//! [allow]
//! connect = ["127.0.0.1:8080", "10.0.0.0/8:8000-8100"]
//! listen  = ["127.0.0.1:8080"]
//! lookup  = ["*.example.com", "localhost"]
//!
//! [deny]
//! tcp-connect = ["10.0.0.5"]
//!
//! [limits]                         # how much the instance may hold at once
//! sockets = 256
//!
//! [library.weather.allow]          # a library's own grant, inside the app's
//! connect = ["api.example.com:443"]
//!
//! [library.weather.limits]         # and its own limits, inside the app's
//! connections = 4
//!
//! [library.radar]                  # what the library's component declares, within the app's
//! grant = "declared"
//! ```
//!
//! Keys under `[allow]` and `[deny]` are USE words; values are lists of
//! `TARGET[:PORTS]` strings. `[library.NAME.allow]` and `[library.NAME.deny]`
//! have the same shape. Keys under `[limits]` are [`crate::Limit`] names with
//! positive integers. Spans locate every key and string so errors can name
//! `file:line:column`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::Place;
use crate::uses::expand;
use crate::{ErrorKind, PolicyError, Verdict};

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    inherit_network: Option<bool>,
    #[serde(default)]
    allow: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    deny: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    library: BTreeMap<Spanned<String>, RawLibrary>,
    #[serde(default)]
    limits: RawLimits,
}

/// One `[library.NAME]` table: the rules of a library inside the app.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    grant: Option<Spanned<String>>,
    #[serde(default)]
    allow: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    deny: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    limits: RawLimits,
}

/// A `[limits]` table as written: names checked after parsing, so an unknown one is
/// reported at its own place.
/// Values are read as any TOML value so that one that is not a number (`"10MB"`) is reported
/// with its limit's name and an example, not as a bare type mismatch.
type RawLimits = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

type Table = BTreeMap<Spanned<String>, Vec<Spanned<String>>>;

/// A parsed file: its setting and its entries in file order.
pub(crate) struct File {
    pub inherit_network: Option<bool>,
    pub entries: Vec<Entry>,
    /// `(line, column, verdict, word)` of every empty list.
    pub empty: Vec<(u32, u32, Verdict, String)>,
    /// Every `[library.NAME]` table, with the byte offset of its name.
    pub libraries: Vec<(String, usize)>,
    /// The libraries whose table says `grant = "declared"`.
    pub grant_declared: Vec<String>,
    /// The instance's `[limits]` (library `None`) and each library's, checked.
    pub limits: Vec<(Option<String>, crate::Limit, u64)>,
}

/// One target string under one USE key.
pub(crate) struct Entry {
    /// The library whose table holds it; `None` for the app's own rules.
    pub library: Option<String>,
    pub verdict: Verdict,
    pub word: String,
    pub target: String,
    /// Byte offset of the target string (its opening quote).
    pub span_start: usize,
}

/// Parses `text`, checking its shape and its USE words; targets are
/// checked by the builder.
pub(crate) fn parse(origin: &str, text: &str) -> Result<File, PolicyError> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => at(origin, text, span.start),
            None => Place::File {
                origin: origin.to_owned(),
            },
        };
        PolicyError::new(place, None, ErrorKind::Toml(e.message().to_owned()))
    })?;

    let mut file = File {
        inherit_network: raw.inherit_network,
        entries: Vec::new(),
        empty: Vec::new(),
        libraries: Vec::new(),
        grant_declared: Vec::new(),
        limits: Vec::new(),
    };
    collect(origin, text, None, raw.allow, raw.deny, &mut file)?;
    collect_limits(origin, text, None, raw.limits, &mut file)?;
    for (name, table) in raw.library {
        let start = name.span().start;
        let name = name.into_inner();
        if let Err(kind) = crate::policy::check_library_name(&name) {
            return Err(PolicyError::new(at(origin, text, start), None, kind));
        }
        collect(
            origin,
            text,
            Some(&name),
            table.allow,
            table.deny,
            &mut file,
        )?;
        collect_limits(origin, text, Some(&name), table.limits, &mut file)?;
        if let Some(grant) = table.grant {
            if grant.get_ref() != "declared" {
                let place = at(origin, text, grant.span().start);
                return Err(PolicyError::new(
                    place,
                    None,
                    ErrorKind::Grant(grant.into_inner()),
                ));
            }
            file.grant_declared.push(name.clone());
        }
        file.libraries.push((name, start));
    }
    Ok(file)
}

/// Adds one `[allow]`/`[deny]` pair's entries (the app's, or `library`'s) to `file`, in file
/// order, checking every USE word.
fn collect(
    origin: &str,
    text: &str,
    library: Option<&str>,
    allow: Table,
    deny: Table,
    file: &mut File,
) -> Result<(), PolicyError> {
    let mut keys: Vec<_> = [(Verdict::Allow, allow), (Verdict::Deny, deny)]
        .into_iter()
        .flat_map(|(verdict, table)| table.into_iter().map(move |(k, v)| (verdict, k, v)))
        .collect();
    keys.sort_by_key(|(_, key, _)| key.span().start);

    for (verdict, key, targets) in keys {
        if expand(key.get_ref(), verdict).is_none() {
            return Err(PolicyError::new(
                at(origin, text, key.span().start),
                None,
                ErrorKind::UnknownUse(key.into_inner()),
            ));
        }
        let key_start = key.span().start;
        let word = key.into_inner();
        if targets.is_empty() {
            let (line, column) = line_column(text, key_start);
            file.empty.push((line, column, verdict, word.clone()));
        }
        for target in targets {
            file.entries.push(Entry {
                library: library.map(str::to_owned),
                verdict,
                word: word.clone(),
                span_start: target.span().start,
                target: target.into_inner(),
            });
        }
    }
    Ok(())
}

/// Adds one `[limits]` table's values (the instance's, or `library`'s) to `file`, checking
/// each name and value at its own place.
fn collect_limits(
    origin: &str,
    text: &str,
    library: Option<&str>,
    limits: RawLimits,
    file: &mut File,
) -> Result<(), PolicyError> {
    for (key, value) in limits {
        let Some(limit) = crate::Limit::from_name(key.get_ref()) else {
            return Err(PolicyError::new(
                at(origin, text, key.span().start),
                None,
                ErrorKind::UnknownLimit(key.into_inner()),
            ));
        };
        let place = || at(origin, text, value.span().start);
        let number = match value.get_ref() {
            toml::Value::Integer(n) => *n,
            other => {
                let value = match other {
                    toml::Value::String(s) => format!("{s:?}"),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => format!("a {}", other.type_str()),
                };
                let kind = ErrorKind::LimitNotANumber {
                    limit: limit.name(),
                    value,
                    example: limit.example(),
                };
                return Err(PolicyError::new(place(), None, kind));
            }
        };
        let checked = crate::limits::check_value(limit, i128::from(number))
            .map_err(|kind| PolicyError::new(place(), None, kind))?;
        file.limits
            .push((library.map(str::to_owned), limit, checked));
    }
    Ok(())
}

fn at(origin: &str, text: &str, offset: usize) -> Place {
    let (line, column) = line_column(text, offset);
    Place::At {
        origin: origin.to_owned(),
        line,
        column,
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn column_counts_characters_not_bytes() {
        let text = "a\nxé = [\"b\"]";
        let offset = text.find('[').unwrap();
        assert_eq!(line_column(text, offset), (2, 6));
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, text.len() + 5), (2, 11));
    }
}
