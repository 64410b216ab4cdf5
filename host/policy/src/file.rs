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
//! ```
//!
//! Keys under `[allow]` and `[deny]` are USE words; values are lists of
//! `TARGET[:PORTS]` strings. Spans locate every key and string so errors
//! can name `file:line:column`.

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
}

/// A parsed file: its setting and its entries in file order.
pub(crate) struct File {
    pub inherit_network: Option<bool>,
    pub entries: Vec<Entry>,
    /// `(line, column, verdict, word)` of every empty list.
    pub empty: Vec<(u32, u32, Verdict, String)>,
}

/// One target string under one USE key.
pub(crate) struct Entry {
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

    let mut keys: Vec<_> = [(Verdict::Allow, raw.allow), (Verdict::Deny, raw.deny)]
        .into_iter()
        .flat_map(|(verdict, table)| table.into_iter().map(move |(k, v)| (verdict, k, v)))
        .collect();
    keys.sort_by_key(|(_, key, _)| key.span().start);

    let mut entries = Vec::new();
    let mut empty = Vec::new();
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
            empty.push((line, column, verdict, word.clone()));
        }
        for target in targets {
            entries.push(Entry {
                verdict,
                word: word.clone(),
                span_start: target.span().start,
                target: target.into_inner(),
            });
        }
    }
    Ok(File {
        inherit_network: raw.inherit_network,
        entries,
        empty,
    })
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
