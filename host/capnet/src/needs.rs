//! A library's declared needs: the network a library says it uses, carried inside its own
//! component so it travels with the library into every composition.
//!
//! The declaration is a custom section named [`SECTION`] at the top level of the library's
//! component. Its payload is UTF-8 text: a first line naming the format and its version,
//! then one rule per line in the policy file's rule language, each with an optional reason
//! for a person after `#`:
//!
//! ```text
//! capnet:needs 1
//! connect api.weather.example:443  # the forecast API
//! lookup api.weather.example
//! ```
//!
//! Every need is an allow rule; blank lines and lines holding only a `# comment` are
//! skipped. A composition embeds each library's component bytes whole, so the section stays
//! with the library's nested component, and [`declared`] finds it there through
//! [`Composition::components`].

use crate::{Composition, Owner};
use capnet_policy::{IpNet, Policy, PolicyBuilder, PolicyError, Rule, Target, Verdict};
use std::collections::BTreeMap;
use std::fmt;

/// The custom section's name.
pub const SECTION: &str = "capnet:needs";

/// The format this capnet reads and writes, the section's first line.
const VERSION: u32 = 1;

/// One declared need: a rule as written and the reason given for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// `USE TARGET[:PORTS]`, as the policy file writes it.
    pub rule: String,
    /// Why the library needs it, for a person to read.
    pub reason: Option<String>,
    /// Its 1-based line in the section's text.
    pub line: u32,
}

/// A library's declaration, checked: every rule parses as a policy rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    needs: Vec<Need>,
    origin: String,
}

/// Why a declaration is refused: a malformed rule (with its place, rule and reason), a
/// version or text capnet does not read, or a component that does not parse.
#[derive(Debug)]
pub enum NeedsError {
    /// A rule the policy's parser refuses.
    Rule(PolicyError),
    /// The section's text is not a declaration of a version this capnet reads.
    Format(String),
}

impl fmt::Display for NeedsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule(e) => e.fmt(f),
            Self::Format(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for NeedsError {}

impl Needs {
    /// Reads a section's text; `origin` names it in errors and rule sources
    /// (`weather#capnet:needs`).
    ///
    /// # Errors
    /// A first line that is not `capnet:needs 1`, or a rule the policy's parser refuses, as
    /// `origin:line:column: rule "USE TARGET": what is wrong`.
    pub fn parse(origin: &str, text: &str) -> Result<Self, NeedsError> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default().trim();
        let version = first
            .strip_prefix(SECTION)
            .and_then(|v| v.trim().parse::<u32>().ok());
        match version {
            Some(VERSION) => {}
            Some(other) => {
                return Err(NeedsError::Format(format!(
                    "{origin}:1: declaration format {other}; this capnet reads \"{SECTION} {VERSION}\""
                )));
            }
            None => {
                return Err(NeedsError::Format(format!(
                    "{origin}:1: the first line is {first:?}; a declaration starts with \"{SECTION} {VERSION}\""
                )));
            }
        }
        let mut needs = Vec::new();
        for (index, line) in lines.enumerate() {
            let number = u32::try_from(index + 2).unwrap_or(u32::MAX);
            if let Some(need) = checked(line, (origin, number, 1))? {
                needs.push(need);
            }
        }
        Ok(Self {
            needs,
            origin: origin.to_owned(),
        })
    }

    /// Builds a declaration from rules given one each (`connect api.example:443 # why`), as
    /// `capnet needs set` takes them.
    ///
    /// # Errors
    /// A rule spanning lines, or one the policy's parser refuses.
    pub fn from_rules(origin: &str, rules: &[String]) -> Result<Self, NeedsError> {
        let mut text = format!("{SECTION} {VERSION}\n");
        for rule in rules {
            if rule.contains(['\n', '\r']) {
                return Err(NeedsError::Format(format!(
                    "rule {rule:?}: one need per argument, on one line"
                )));
            }
            text.push_str(rule.trim());
            text.push('\n');
        }
        Self::parse(origin, &text)
    }

    /// Builds a declaration from needs written elsewhere (a `Cargo.toml`'s
    /// `[package.metadata.capnet]`, a learned policy), each checked at the place it was
    /// written, so an error names that place: `Cargo.toml:12:6: rule "...": what is wrong`.
    ///
    /// # Errors
    /// A need spanning lines, or one the policy's parser refuses, named by its place.
    pub fn from_written(origin: &str, written: &[Written]) -> Result<Self, NeedsError> {
        let mut rules = Vec::new();
        for need in written {
            let at = (need.origin.as_str(), need.line, need.column);
            if need.text.contains(['\n', '\r']) {
                return Err(NeedsError::Format(format!(
                    "{}:{}:{}: need {:?}: one need per line, with no line break",
                    at.0, at.1, at.2, need.text
                )));
            }
            if let Some(need) = checked(&need.text, at)? {
                rules.push(match need.reason {
                    Some(reason) => format!("{}  # {reason}", need.rule),
                    None => need.rule,
                });
            }
        }
        Self::from_rules(origin, &rules)
    }

    /// What names the declaration in errors and rule sources (`weather#capnet:needs`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The needs, in the order declared.
    pub fn needs(&self) -> &[Need] {
        &self.needs
    }

    /// The section's text, as [`Needs::parse`] reads it.
    pub fn to_text(&self) -> String {
        let mut text = format!("{SECTION} {VERSION}\n");
        for need in &self.needs {
            text.push_str(&need.rule);
            if let Some(reason) = &need.reason {
                text.push_str("  # ");
                text.push_str(reason);
            }
            text.push('\n');
        }
        text
    }

    /// The needs compiled as a policy of their own, each rule's source naming its line.
    pub fn policy(&self) -> Policy {
        self.add_to(Policy::builder(), None)
            .unwrap_or_else(|_| Policy::builder())
            .build()
    }

    /// Adds the needs to `builder` as library `library`'s declaration
    /// ([`PolicyBuilder::declared_rule`]).
    ///
    /// # Errors
    /// None for a parsed declaration.
    pub fn add_declared_to(
        &self,
        mut builder: PolicyBuilder,
        library: &str,
    ) -> Result<PolicyBuilder, PolicyError> {
        for need in &self.needs {
            builder = builder.declared_rule(library, (&self.origin, need.line, 1), &need.rule)?;
        }
        Ok(builder)
    }

    /// The needs `policy`'s allow rules do not wholly cover ([`covered`]).
    pub fn uncovered(&self, policy: &Policy) -> Vec<&Need> {
        let compiled = self.policy();
        self.needs
            .iter()
            .filter(|need| {
                !compiled
                    .rules()
                    .iter()
                    .filter(|r| matches!(&r.source.origin, capnet_policy::Origin::File { line, .. } if *line == need.line))
                    .all(|r| covered(r, policy))
            })
            .collect()
    }

    /// Adds the needs as allow rules of `library` (or of the app) to `builder`; each rule's
    /// source names the declaration's line.
    ///
    /// # Errors
    /// None for a parsed declaration; a bad library name.
    pub fn add_to(
        &self,
        mut builder: PolicyBuilder,
        library: Option<&str>,
    ) -> Result<PolicyBuilder, PolicyError> {
        for need in &self.needs {
            builder = builder.rule_at(
                library,
                (&self.origin, need.line, 1),
                Verdict::Allow,
                &need.rule,
            )?;
        }
        Ok(builder)
    }
}

/// One need as written outside a declaration: its text (`RULE  # reason`) and its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// `USE TARGET[:PORTS]`, optionally followed by `# reason`.
    pub text: String,
    /// The file it was written in, for errors.
    pub origin: String,
    /// Its 1-based line there.
    pub line: u32,
    /// The 1-based column where its text starts.
    pub column: u32,
}

/// One line of needs, checked: `None` for a blank or comment-only line, else the need. A rule
/// the policy's parser refuses is named at `at`'s origin and line, and at the rule's column
/// counted from `at`'s, where the line starts.
fn checked(
    line: &str,
    (origin, number, start): (&str, u32, u32),
) -> Result<Option<Need>, NeedsError> {
    let (rule, reason) = match line.split_once('#') {
        Some((rule, reason)) => (rule.trim(), Some(reason.trim().to_owned())),
        None => (line.trim(), None),
    };
    if rule.is_empty() {
        return Ok(None);
    }
    let column = line.find(rule).map_or(0, |at| line[..at].chars().count());
    let column = start.saturating_add(u32::try_from(column).unwrap_or(u32::MAX));
    capnet_policy::Policy::builder()
        .rule_at(None, (origin, number, column), Verdict::Allow, rule)
        .map_err(NeedsError::Rule)?;
    Ok(Some(Need {
        rule: rule.to_owned(),
        reason: reason.filter(|r| !r.is_empty()),
        line: number,
    }))
}

/// Each library of a composition with its declaration (`None`: it declares nothing).
pub type Declared = BTreeMap<String, Option<Needs>>;

/// Adds each library's declaration to `builder`, as [`PolicyBuilder::declared_rule`]s, and
/// with `grant_all` (`--grant-declared`) grants every library what it declared; a library
/// granted so that declares nothing gets an empty table: nothing. The same for `capnet run`,
/// `capnet inspect`, `capnet policy check --component`, the shim and embedders.
///
/// # Errors
/// None for declarations [`declared`] read; a bad library name.
pub fn add_declarations(
    mut builder: PolicyBuilder,
    declared: &Declared,
    grant_all: bool,
) -> Result<PolicyBuilder, PolicyError> {
    if grant_all {
        builder = builder.grant_declared(None);
    }
    for (library, needs) in declared {
        match needs {
            Some(needs) => builder = needs.add_declared_to(builder, library)?,
            None if grant_all => builder = builder.library(library)?,
            None => {}
        }
    }
    Ok(builder)
}

/// The needs that refuse the start: of a library `policy` grants what it declared, each need
/// the app's own rules do not wholly cover, as `(library, need)`.
pub fn refused_at_start<'a>(policy: &Policy, declared: &'a Declared) -> Vec<(&'a str, &'a Need)> {
    declared
        .iter()
        .filter(|(library, _)| policy.declared(library).is_some())
        .filter_map(|(library, needs)| Some((library.as_str(), needs.as_ref()?)))
        .flat_map(|(library, needs)| {
            needs
                .uncovered(policy)
                .into_iter()
                .map(move |need| (library, need))
        })
        .collect()
}

/// The message that refuses a start for `need` of `library` ([`refused_at_start`]).
pub fn refusal(library: &str, need: &Need) -> String {
    format!(
        "library {library} declares \"{}\" ({library}#{SECTION}:{}), which the app's rules do not allow: allow it in the app's rules, or grant the library by a table",
        need.rule, need.line
    )
}

/// Whether `policy`'s allow rules cover every use, port and address of `rule`: what
/// `capnet inspect` calls a grant inside a declaration, or a need inside a grant. Deny rules
/// are not weighed; a rule only partly covered counts as not covered.
pub fn covered(rule: &Rule, policy: &Policy) -> bool {
    if policy.is_inherit_network() {
        return true;
    }
    rule.uses.iter().all(|use_| {
        policy.rules().iter().any(|by| {
            by.verdict == Verdict::Allow
                && by.uses.contains(use_)
                && by.ports.lo() <= rule.ports.lo()
                && rule.ports.hi() <= by.ports.hi()
                && target_holds(&by.target, &rule.target)
        })
    })
}

/// Whether every address and name `inner` matches, `outer` matches too.
fn target_holds(outer: &Target, inner: &Target) -> bool {
    let nets = |t: &Target| -> Option<Vec<IpNet>> {
        match t {
            Target::Ip(net) => Some(vec![*net]),
            Target::Set(set) => Some(set.nets().to_vec()),
            _ => None,
        }
    };
    let net_holds = |o: &IpNet, i: &IpNet| o.prefix() <= i.prefix() && o.contains(i.addr());
    match (outer, inner) {
        (Target::Any, _) => true,
        (Target::Name(o), Target::Name(i)) => o == i,
        (Target::Suffix(o), Target::Name(i) | Target::Suffix(i)) => {
            outer.allows_name(i) || (matches!(inner, Target::Suffix(_)) && o == i)
        }
        _ => match (nets(outer), nets(inner)) {
            (Some(o), Some(i)) => i.iter().all(|i| o.iter().any(|o| net_holds(o, i))),
            _ => false,
        },
    }
}

/// A section's id, its name when it is a custom section, and its whole byte range.
type Section<'a> = (u8, Option<&'a str>, std::ops::Range<usize>);

/// The top-level sections of a component or module: `(id, name of a custom section, whole
/// section's byte range)`; `None` for a binary that is not one.
fn sections(wasm: &[u8]) -> Option<Vec<Section<'_>>> {
    if wasm.len() < 8 || wasm[..4] != *b"\0asm" {
        return None;
    }
    let mut at = 8;
    let mut found = Vec::new();
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at)? as usize;
        let end = at.checked_add(size).filter(|end| *end <= wasm.len())?;
        let name = if id == 0 {
            let mut name_at = at;
            let len = leb(wasm, &mut name_at)? as usize;
            let name_end = name_at.checked_add(len).filter(|e| *e <= end)?;
            Some(std::str::from_utf8(&wasm[name_at..name_end]).ok()?)
        } else {
            None
        };
        found.push((id, name, start..end));
        at = end;
    }
    Some(found)
}

/// Reads an unsigned LEB128 u32 at `*at`, moving past it.
fn leb(wasm: &[u8], at: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *wasm.get(*at)?;
        *at += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The declaration at the top level of `component` (a library's own binary, or its nested
/// component's bytes in a composition); `None` when it has none.
///
/// # Errors
/// A binary capnet cannot walk, two declarations, or a malformed one (named by `origin`).
pub fn read(origin: &str, component: &[u8]) -> Result<Option<Needs>, NeedsError> {
    let sections = sections(component)
        .ok_or_else(|| NeedsError::Format(format!("{origin}: not a WebAssembly binary")))?;
    let mut found = sections
        .iter()
        .filter(|(_, name, _)| *name == Some(SECTION));
    let Some((_, _, range)) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(NeedsError::Format(format!(
            "{origin}: two {SECTION} sections; write the declaration once"
        )));
    }
    let section = &component[range.clone()];
    let mut at = 1;
    leb(section, &mut at);
    let len = leb(section, &mut at).unwrap_or_default() as usize;
    let payload = &section[at + len..];
    let text = std::str::from_utf8(payload)
        .map_err(|_| NeedsError::Format(format!("{origin}: the declaration is not UTF-8")))?;
    Needs::parse(origin, text).map(Some)
}

/// `component` with its declaration replaced by `needs`: every other section is copied
/// byte for byte, the declaration appended last.
///
/// # Errors
/// A binary capnet cannot walk.
pub fn write(component: &[u8], needs: &Needs) -> Result<Vec<u8>, NeedsError> {
    let sections = sections(component)
        .ok_or_else(|| NeedsError::Format("not a WebAssembly binary".to_owned()))?;
    let mut out = component[..8].to_vec();
    for (_, name, range) in &sections {
        if *name != Some(SECTION) {
            out.extend_from_slice(&component[range.clone()]);
        }
    }
    let text = needs.to_text();
    let mut body = Vec::new();
    write_leb(&mut body, SECTION.len() as u32);
    body.extend_from_slice(SECTION.as_bytes());
    body.extend_from_slice(text.as_bytes());
    out.push(0);
    write_leb(
        &mut out,
        u32::try_from(body.len())
            .map_err(|_| NeedsError::Format("the declaration is too long".to_owned()))?,
    );
    out.extend_from_slice(&body);
    Ok(out)
}

/// Each library of `composition` (read from `wasm`) with the declaration its nested
/// component carries (`None`: it declares nothing, or its component is not inside `wasm`).
///
/// # Errors
/// A library whose declaration is malformed, or one with two components declaring
/// differently.
pub fn declared(wasm: &[u8], composition: &Composition) -> Result<Declared, NeedsError> {
    let mut all: BTreeMap<String, Option<Needs>> = composition
        .libraries()
        .iter()
        .map(|name| (name.clone(), None))
        .collect();
    for (owner, range) in composition.components() {
        let Owner::Library(name) = owner else {
            continue;
        };
        let bytes = wasm.get(range.clone()).unwrap_or_default();
        let origin = format!("{name}#{SECTION}");
        let found = read(&origin, bytes)?;
        let slot = all.entry(name.clone()).or_default();
        match (slot.as_ref(), found) {
            (Some(held), Some(found)) if held.needs != found.needs => {
                return Err(NeedsError::Format(format!(
                    "library \"{name}\" is two components declaring different needs; compose one"
                )));
            }
            (None, found) => *slot = found,
            _ => {}
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P2: &str = "wasi:sockets/instance-network@0.2.6";

    fn library_with(needs: &[&str]) -> Vec<u8> {
        let bare = wat::parse_str(format!(r#"(component (import "{P2}" (instance)))"#)).unwrap();
        let rules: Vec<String> = needs.iter().map(|s| (*s).to_owned()).collect();
        write(&bare, &Needs::from_rules("lib", &rules).unwrap()).unwrap()
    }

    #[test]
    fn a_declaration_reads_back_with_its_reasons_and_replaces_the_last() {
        let once = library_with(&["connect api.weather.example:443  # the forecast API"]);
        let twice = write(
            &once,
            &Needs::from_rules("lib", &["lookup api.weather.example".to_owned()]).unwrap(),
        )
        .unwrap();
        let needs = read("lib", &twice).unwrap().unwrap();
        assert_eq!(
            needs.needs(),
            [Need {
                rule: "lookup api.weather.example".to_owned(),
                reason: None,
                line: 2
            }]
        );
        let first = read("lib", &once).unwrap().unwrap();
        assert_eq!(first.needs()[0].reason.as_deref(), Some("the forecast API"));
        // Still a binary the parser reads whole, its code untouched.
        for payload in wasmparser::Parser::new(0).parse_all(&twice) {
            payload.unwrap();
        }
        // Every section but the declaration is copied byte for byte.
        let others = |wasm: &[u8]| -> Vec<u8> {
            let sections = sections(wasm).unwrap();
            let last = sections.last().unwrap().2.start;
            wasm[..last].to_vec()
        };
        assert_eq!(others(&once), others(&twice));
    }

    #[test]
    fn a_malformed_need_is_refused_naming_its_line_and_rule() {
        let error = Needs::parse(
            "weather#capnet:needs",
            "capnet:needs 1\nconnect 127.0.0.1:80\nconnect 10.0.0.0/8:9000-80  # the API\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("weather#capnet:needs:3:1: rule \"connect 10.0.0.0/8:9000-80\": "),
            "{error}"
        );
        let error = Needs::parse("w", "capnet:needs 2\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("format 2"), "{error}");
    }

    #[test]
    fn a_need_written_elsewhere_is_refused_at_its_own_place_and_kept_with_its_reason() {
        let written = |text: &str, line| Written {
            text: text.to_owned(),
            origin: "weather/Cargo.toml".to_owned(),
            line,
            column: 6,
        };
        let needs = Needs::from_written(
            "weather.wasm#capnet:needs",
            &[written(
                "connect api.weather.example:443  # the forecast API",
                6,
            )],
        )
        .unwrap();
        assert_eq!(
            needs.to_text(),
            "capnet:needs 1\nconnect api.weather.example:443  # the forecast API\n"
        );
        let error = Needs::from_written(
            "weather.wasm#capnet:needs",
            &[
                written("connect 127.0.0.1:80", 6),
                written("  connect 10.0.0.0/8:9000-80", 7),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("weather/Cargo.toml:7:8: rule \"connect 10.0.0.0/8:9000-80\": "),
            "{error}"
        );
        let error = Needs::from_written("w", &[written("connect 127.0.0.1:80\nall any", 9)])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("weather/Cargo.toml:9:6: need "),
            "{error}"
        );
    }

    #[test]
    fn each_library_in_a_composition_carries_its_own_declaration() {
        let lib = library_with(&["connect 127.0.0.1:8001  # the forecast"]);
        let wasm = compose(&lib);
        let composition = Composition::read(&wasm).unwrap();
        assert_eq!(composition.libraries(), ["weather"]);
        let declared = declared(&wasm, &composition).unwrap();
        let needs = declared["weather"].as_ref().unwrap();
        assert_eq!(needs.needs()[0].rule, "connect 127.0.0.1:8001");
    }

    #[test]
    fn a_grant_is_covered_only_by_rules_holding_all_of_it() {
        let declared = Needs::from_rules(
            "w",
            &[
                "connect 10.0.0.0/8:8000-8100".to_owned(),
                "connect *.weather.example:443".to_owned(),
            ],
        )
        .unwrap()
        .policy();
        let rules = |text: &str| {
            Policy::builder()
                .rule_text(Verdict::Allow, text)
                .unwrap()
                .build()
                .rules()
                .to_vec()
        };
        let holds = |text: &str| rules(text).iter().all(|r| covered(r, &declared));
        assert!(holds("connect 10.1.0.0/16:8080"));
        assert!(holds("connect api.weather.example:443"));
        assert!(!holds("connect 10.1.0.0/16:9000"));
        assert!(!holds("connect 11.0.0.1:8080"));
        assert!(!holds("connect weather.example:443"));
        assert!(!holds("udp-send 10.0.0.1:8080"));
        assert!(!holds("connect private:8080"));
    }

    /// The bytes of a composition holding `lib` as its nested component, given the labelled
    /// import, the unlabelled one exported as the app's: the text's placeholder component
    /// section replaced by `lib`'s bytes, as composing tools embed a library whole.
    pub(crate) fn compose(lib: &[u8]) -> Vec<u8> {
        let shell = wat::parse_str(format!(
            r#"(component
                (import "weather-instance-network" (implements "{P2}") (instance $l))
                (import "{P2}" (instance $n))
                (component $lib (import "{P2}" (instance)))
                (instance (instantiate $lib (with "{P2}" (instance $l))))
                (export "x" (instance $n))
            )"#
        ))
        .unwrap();
        let mut out = shell[..8].to_vec();
        for (id, _, range) in sections(&shell).unwrap() {
            // Section 4 holds a nested component.
            if id == 4 {
                out.push(4);
                write_leb(&mut out, u32::try_from(lib.len()).unwrap());
                out.extend_from_slice(lib);
            } else {
                out.extend_from_slice(&shell[range]);
            }
        }
        out
    }
}
