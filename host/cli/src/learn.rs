//! `capnet run --learn FILE`: the least-privilege policy of one run, written as a policy file.
//!
//! The recorder (`capnet::Recorder`) holds the uses only the default would have denied; this
//! turns them into the rules a person would write (a host name where the guest looked it up,
//! `listen` for a server and its accepts, no ephemeral client ports) and adds them to FILE,
//! keeping what was there, comments and order included.

use capnet::policy::Use;
use capnet::{Learned, LearnedTarget, Recorder};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// One rule to add: `WORD = ["TARGET"]`, and the uses it allowed in the run, with counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRule {
    /// The USE word of the rule language (`connect`, `listen`, `udp-send`, ...).
    pub word: &'static str,
    /// `TARGET[:PORTS]`.
    pub target: String,
    /// Each use the rule allowed and how often, in the order first seen.
    pub uses: Vec<(Use, u64)>,
}

impl LearnedRule {
    /// `used 3 times: 2 tcp-connect, 1 lookup`.
    pub fn comment(&self) -> String {
        let total: u64 = self.uses.iter().map(|(_, n)| n).sum();
        let each: Vec<_> = self.uses.iter().map(|(u, n)| format!("{n} {u}")).collect();
        match total {
            1 => format!("used once: {}", self.uses[0].0),
            _ => format!("used {total} times: {}", each.join(", ")),
        }
    }

    fn add(&mut self, use_: Use, count: u64) {
        match self.uses.iter_mut().find(|(u, _)| *u == use_) {
            Some((_, n)) => *n += count,
            None => self.uses.push((use_, count)),
        }
    }
}

/// The rules of one table: the app's (`None`) or a library's.
pub type LearnedTable = (Option<Arc<str>>, Vec<LearnedRule>);

/// The rules that allow exactly what was learned, per table, in the order first used.
///
/// A lookup of a name that is then connected or sent to is folded into that rule (a rule
/// naming a host allows its lookup); a `tcp-bind` of a listening address, and every
/// `tcp-accept`, fold into the `listen` rule (which allows accepting from any peer).
pub fn rules(learned: &[Learned]) -> Vec<LearnedTable> {
    let mut tables: Vec<Option<Arc<str>>> = Vec::new();
    for l in learned {
        if !tables.contains(&l.library) {
            tables.push(l.library.clone());
        }
    }
    tables.sort_by_key(|t| t.is_some());
    tables
        .into_iter()
        .map(|table| {
            let of: Vec<&Learned> = learned.iter().filter(|l| l.library == table).collect();
            (table, table_rules(&of))
        })
        .collect()
}

fn table_rules(learned: &[&Learned]) -> Vec<LearnedRule> {
    let named: HashSet<&str> = learned
        .iter()
        .filter(|l| matches!(l.use_, Use::TcpConnect | Use::UdpSend))
        .filter_map(|l| match &l.target {
            LearnedTarget::Name(name) => Some(&**name),
            LearnedTarget::Ip(_) => None,
        })
        .collect();
    let listening: Vec<String> = learned
        .iter()
        .filter(|l| l.use_ == Use::TcpListen)
        .map(|l| l.to_string())
        .collect();

    let mut rules: Vec<LearnedRule> = Vec::new();
    let mut folded = Vec::new();
    for l in learned {
        let target = l.to_string();
        let word = match l.use_ {
            Use::Lookup if named.contains(target.as_str()) => {
                folded.push(*l);
                continue;
            }
            Use::TcpBind if listening.contains(&target) => {
                folded.push(*l);
                continue;
            }
            Use::TcpAccept if !listening.is_empty() => {
                folded.push(*l);
                continue;
            }
            Use::TcpConnect => "connect",
            Use::TcpListen => "listen",
            Use::TcpBind => "bind",
            Use::TcpAccept => "accept",
            Use::UdpBind => "udp-bind",
            Use::UdpSend => "udp-send",
            Use::UdpReceive => "udp-receive",
            Use::Lookup => "lookup",
        };
        match rules
            .iter_mut()
            .find(|r| r.word == word && r.target == target)
        {
            Some(rule) => rule.add(l.use_, l.count),
            None => rules.push(LearnedRule {
                word,
                target,
                uses: vec![(l.use_, l.count)],
            }),
        }
    }
    for l in folded {
        let target = l.to_string();
        let into = rules.iter_mut().find(|r| match l.use_ {
            Use::Lookup => {
                matches!(r.word, "connect" | "udp-send")
                    && r.target
                        .split_once(':')
                        .map_or(&*r.target, |(host, _)| host)
                        == target
            }
            Use::TcpBind => r.word == "listen" && r.target == target,
            // Accepts are not tied to a listener: counted on the first.
            _ => r.word == "listen",
        });
        if let Some(rule) = into {
            rule.add(l.use_, l.count);
        }
    }
    rules
}

/// The file a learning run adds its rules to.
#[derive(Debug, Clone)]
pub struct LearnFile {
    path: PathBuf,
    /// The file as it was before the run, `None` when there was none.
    before: Option<String>,
    /// What the run was, for the header of a new file.
    component: String,
}

impl LearnFile {
    /// Reads `path` if it exists; it must be TOML (it is loaded as a policy too).
    ///
    /// # Errors
    /// When the file exists but cannot be read, or is not TOML.
    pub fn open(path: &Path, component: &str) -> Result<Self, String> {
        let before = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("--learn {}: {e}", path.display())),
        };
        let file = Self {
            path: path.to_owned(),
            before,
            component: component.to_owned(),
        };
        file.document()?;
        Ok(file)
    }

    /// The path to write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn document(&self) -> Result<DocumentMut, String> {
        self.before
            .as_deref()
            .unwrap_or("")
            .parse::<DocumentMut>()
            .map_err(|e| format!("--learn {}: {e}", self.path.display()))
    }

    /// The file with `tables` added: a new rule is appended to its table's list for its word,
    /// with a comment saying how often the run used it; a rule already there is left alone.
    /// Returns the text and how many rules were added.
    ///
    /// # Errors
    /// When the file has, where a rule goes, a key that is not a table or a list.
    pub fn render(&self, tables: &[LearnedTable]) -> Result<(String, usize), String> {
        let mut doc = self.document()?;
        let mut added = 0;
        for (library, rules) in tables {
            let table = allow_table(doc.as_table_mut(), library.as_deref())
                .map_err(|e| format!("--learn {}: {e}", self.path.display()))?;
            for rule in rules {
                let list = table
                    .entry(rule.word)
                    .or_insert_with(|| Item::Value(Value::Array(Array::new())))
                    .as_array_mut()
                    .ok_or_else(|| {
                        format!(
                            "--learn {}: {} is not a list of targets",
                            self.path.display(),
                            rule.word
                        )
                    })?;
                if list.iter().any(|v| v.as_str() == Some(&rule.target)) {
                    continue;
                }
                append(list, &rule.target, &rule.comment());
                added += 1;
            }
        }
        let mut text = doc.to_string();
        if self.before.is_none() {
            text.insert_str(
                0,
                &format!(
                    "# Learned by `capnet run --learn` from a run of {}: what it used, and\n\
                     # nothing more. Each rule says how often it was used. Run with --policy.\n\n",
                    self.component
                ),
            );
        }
        Ok((text, added))
    }

    /// Writes the file with what `recorder` learned, atomically (a temporary file beside it,
    /// then a rename); returns how many rules were added.
    ///
    /// # Errors
    /// When the file cannot be written, or has a key of the wrong kind where a rule goes.
    pub fn write(&self, recorder: &Recorder) -> Result<usize, String> {
        let (text, added) = self.render(&rules(&recorder.learned()))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = self
            .path
            .with_file_name(format!(".{name}.capnet-learn.{}", std::process::id()));
        let fail =
            |e: std::io::Error| format!("--learn {}: cannot write: {e}", self.path.display());
        std::fs::write(&temp, text).map_err(fail)?;
        std::fs::rename(&temp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            fail(e)
        })?;
        Ok(added)
    }
}

/// `[allow]`, or `[library.NAME.allow]`, created if missing.
fn allow_table<'a>(root: &'a mut Table, library: Option<&str>) -> Result<&'a mut Table, String> {
    match library {
        None => table_at(root, "allow", false),
        Some(name) => {
            let libraries = table_at(root, "library", true)?;
            let library = table_at(libraries, name, true)?;
            table_at(library, "allow", false)
        }
    }
}

fn table_at<'a>(parent: &'a mut Table, key: &str, implicit: bool) -> Result<&'a mut Table, String> {
    parent
        .entry(key)
        .or_insert_with(|| {
            let mut table = Table::new();
            // `[library.NAME.allow]` alone, with no `[library]` or `[library.NAME]` header.
            table.set_implicit(implicit);
            Item::Table(table)
        })
        .as_table_mut()
        .ok_or_else(|| format!("{key} is not a table"))
}

/// Appends `target` to `list` on a line of its own, `comment` after it. Whatever followed the
/// last element (a person's comment on it) stays on its line.
fn append(list: &mut Array, target: &str, comment: &str) {
    let after_last = list.trailing().as_str().unwrap_or("").to_owned();
    let prefix = if after_last.trim().is_empty() {
        "\n    ".to_owned()
    } else if after_last.ends_with('\n') {
        format!("{after_last}    ")
    } else {
        format!("{after_last}\n    ")
    };
    let mut value = Value::from(target);
    value.decor_mut().set_prefix(prefix);
    value.decor_mut().set_suffix("");
    list.push_formatted(value);
    list.set_trailing_comma(true);
    list.set_trailing(format!(" # {comment}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(library: Option<&str>, use_: Use, target: &str, port: Option<u16>) -> Learned {
        let target = match target.parse() {
            Ok(ip) => LearnedTarget::Ip(ip),
            Err(_) => LearnedTarget::Name(Arc::from(target)),
        };
        Learned {
            library: library.map(Arc::from),
            use_,
            target,
            port,
            count: 1,
        }
    }

    fn summary(tables: &[LearnedTable]) -> Vec<String> {
        tables
            .iter()
            .flat_map(|(library, rules)| {
                rules.iter().map(move |r| {
                    let table = library.as_deref().unwrap_or("app");
                    format!("{table}: {} {} ({})", r.word, r.target, r.comment())
                })
            })
            .collect()
    }

    #[test]
    fn a_lookup_folds_into_the_rule_connecting_to_its_host_and_no_other() {
        let tables = rules(&[
            learned(None, Use::Lookup, "api.example.com", None),
            learned(None, Use::TcpConnect, "api.example.com", Some(443)),
            learned(None, Use::Lookup, "other.example.com", None),
        ]);
        assert_eq!(
            summary(&tables),
            [
                "app: connect api.example.com:443 (used 2 times: 1 tcp-connect, 1 lookup)",
                "app: lookup other.example.com (used once: lookup)",
            ]
        );
    }

    #[test]
    fn the_bind_and_every_accept_fold_into_the_listen_rule() {
        let tables = rules(&[
            learned(None, Use::TcpBind, "127.0.0.1", Some(0)),
            learned(None, Use::TcpListen, "127.0.0.1", Some(0)),
            learned(None, Use::TcpAccept, "127.0.0.1", None),
            learned(None, Use::TcpAccept, "10.0.0.7", None),
        ]);
        assert_eq!(
            summary(&tables),
            ["app: listen 127.0.0.1:0 (used 4 times: 1 tcp-listen, 1 tcp-bind, 2 tcp-accept)"]
        );
    }

    #[test]
    fn without_a_listen_rule_accepts_and_binds_stay_rules_of_their_own() {
        let tables = rules(&[
            learned(None, Use::TcpBind, "::1", Some(4000)),
            learned(None, Use::TcpAccept, "::1", None),
        ]);
        assert_eq!(
            summary(&tables),
            [
                "app: bind [::1]:4000 (used once: tcp-bind)",
                "app: accept ::1 (used once: tcp-accept)"
            ]
        );
    }

    #[test]
    fn the_app_table_comes_first_then_each_library_in_the_order_first_seen() {
        let tables = rules(&[
            learned(Some("weather"), Use::TcpConnect, "10.0.0.1", Some(80)),
            learned(None, Use::TcpConnect, "10.0.0.1", Some(80)),
        ]);
        assert_eq!(
            summary(&tables),
            [
                "app: connect 10.0.0.1:80 (used once: tcp-connect)",
                "weather: connect 10.0.0.1:80 (used once: tcp-connect)"
            ]
        );
    }

    #[test]
    fn rules_are_added_under_the_right_tables_keeping_a_persons_text() {
        let dir = std::env::temp_dir().join(format!("capnet-learn-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        let written = "# mine\n[allow]\nconnect = [\"10.0.0.1:80\"] # the one\n";
        std::fs::write(&path, written).unwrap();
        let file = LearnFile::open(&path, "app.wasm").unwrap();
        let tables = rules(&[
            learned(None, Use::TcpConnect, "10.0.0.2", Some(80)),
            learned(None, Use::TcpConnect, "10.0.0.1", Some(80)),
            learned(Some("weather"), Use::TcpConnect, "10.0.0.2", Some(80)),
        ]);
        let (text, added) = file.render(&tables).unwrap();
        assert_eq!(added, 2, "a rule already there is not added again");
        assert_eq!(
            text,
            "# mine\n[allow]\nconnect = [\"10.0.0.1:80\",\n    \"10.0.0.2:80\", # used once: tcp-connect\n] # the one\n\n\
             [library.weather.allow]\nconnect = [\n    \"10.0.0.2:80\", # used once: tcp-connect\n]\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
