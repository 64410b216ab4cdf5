//! `capnet inspect`: the composition as a tree, each party's imports, declared needs and
//! grant, and where the declaration and the grant disagree.

use capnet::needs::{self, Needs};
use capnet::policy::{Policy, Rule, Source};
use capnet::{Composition, Owner};
use clap::Parser;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Show who holds each network import of a component (the app, each library), what each
/// library declares it needs, what a policy grants it, and where the two disagree.
#[derive(Parser, Debug)]
#[command(after_help = "\
Examples:
  capnet inspect app.wasm
  capnet inspect app.wasm --policy policy.toml
  capnet inspect app.wasm --policy policy.toml --json")]
pub struct InspectOpts {
    /// The component (a composed app, or one library).
    component: PathBuf,
    /// Compare each party's grant in this policy file with its declaration.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Print JSON for tools instead of the tree.
    #[arg(long)]
    json: bool,
}

/// The JSON report; field names are part of capnet's interface.
#[derive(Serialize, Debug)]
pub(crate) struct Report {
    component: String,
    policy: Option<String>,
    pub(crate) parties: Vec<Party>,
}

#[derive(Serialize, Debug)]
pub(crate) struct Party {
    /// `"app"` or `"library"`.
    kind: &'static str,
    /// The library's name; `null` for the app.
    pub(crate) name: Option<String>,
    /// `"label"` when a labelled import named the library, else `"structure"`.
    found_by: &'static str,
    imports: Vec<Import>,
    /// The declared needs; `null` when the party declares nothing.
    pub(crate) declared: Option<Vec<DeclaredNeed>>,
    /// The rules the policy grants it (a library: its own table, within the app's); `null`
    /// without `--policy`.
    granted: Option<Vec<Granted>>,
    /// Whether the policy grants the library what it declared (`grant = "declared"`).
    pub(crate) grant_declared: bool,
    /// Granted but not declared: the grant is wider than the library asked.
    pub(crate) wider_than_declared: Vec<Granted>,
    /// Declared but not granted: these uses will be denied, or refuse the start.
    pub(crate) will_fail: Vec<Failing>,
}

#[derive(Serialize, Debug)]
pub(crate) struct Import {
    name: String,
    interface: String,
    labelled: bool,
}

#[derive(Serialize, Debug)]
pub(crate) struct DeclaredNeed {
    rule: String,
    reason: Option<String>,
}

#[derive(Serialize, Debug, PartialEq)]
pub(crate) struct Granted {
    pub(crate) rule: String,
    /// Where the rule was written: `policy.toml:7:12`, a flag.
    pub(crate) at: String,
}

#[derive(Serialize, Debug)]
pub(crate) struct Failing {
    pub(crate) rule: String,
    pub(crate) reason: Option<String>,
    /// Where it is declared: `weather#capnet:needs:3`.
    pub(crate) at: String,
    /// Which grant leaves it out.
    pub(crate) why: String,
    /// Whether `capnet run` refuses to start for it (a library granted what it declared,
    /// declaring a need the app's rules do not allow), rather than deny the use.
    pub(crate) refuses_start: bool,
}

impl InspectOpts {
    /// Prints the report.
    ///
    /// # Errors
    /// An unreadable component or policy, a composition capnet refuses, or a malformed
    /// declaration.
    pub fn run(self) -> wasmtime::Result<ExitCode> {
        let report = report(&self.component, self.policy.as_deref(), false)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", tree(&report));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The report on `component` against the policy in `policy_file`, built as `capnet run`
/// builds it (`grant_declared`: `--grant-declared`): a library granted what it declared gets
/// it here.
///
/// # Errors
/// An unreadable component or policy, a composition capnet refuses, or a malformed
/// declaration.
pub(crate) fn report(
    component: &Path,
    policy_file: Option<&Path>,
    grant_declared: bool,
) -> wasmtime::Result<Report> {
    let shown = component.display().to_string();
    let wasm = std::fs::read(component).map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let composition =
        Composition::read(&wasm).map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let mut declared = needs::declared(&wasm, &composition)?;
    // The component's own declaration: a library inspected alone.
    let own = needs::read(&format!("{shown}#{}", needs::SECTION), &wasm)?;
    let policy = match policy_file {
        Some(file) => {
            let builder = Policy::builder().file(file)?;
            Some(needs::add_declarations(builder, &declared, grant_declared)?.build())
        }
        None => None,
    };

    let mut parties = vec![party(&composition, &Owner::App, own, policy.as_ref())];
    for name in composition.libraries() {
        let needs = declared.remove(name).flatten();
        let owner = Owner::Library(name.clone());
        parties.push(party(&composition, &owner, needs, policy.as_ref()));
    }
    Ok(Report {
        component: shown,
        policy: policy_file.map(|p| p.display().to_string()),
        parties,
    })
}

fn party(
    composition: &Composition,
    owner: &Owner,
    needs: Option<Needs>,
    policy: Option<&Policy>,
) -> Party {
    let imports: Vec<_> = composition
        .imports()
        .iter()
        .filter(|i| i.owner == *owner)
        .collect();
    let name = match owner {
        Owner::App => None,
        Owner::Library(name) => Some(name.clone()),
    };
    let found_by = if name.is_some() && imports.iter().any(|i| i.labelled) {
        "label"
    } else {
        "structure"
    };
    // The library's own table; the app's rules bound it as well.
    let table = policy.and_then(|p| match owner {
        Owner::App => Some(p),
        Owner::Library(name) => p.library(name),
    });
    let granted = policy.map(|_| table.map(|t| grouped(t.rules())).unwrap_or_default());
    let grant_declared = match (owner, policy) {
        (Owner::Library(name), Some(policy)) => policy.declared(name).is_some(),
        _ => false,
    };
    let mut wider = Vec::new();
    let mut failing = Vec::new();
    if let (Some(needs), Some(policy)) = (&needs, policy) {
        let declared = needs.policy();
        if let Some(table) = table {
            for rule in distinct(table.rules()) {
                if !needs::covered(rule, &declared) {
                    wider.push(granted_rule(&rule.source));
                }
            }
        }
        for (need, rules) in needs.needs().iter().zip(need_rules(needs)) {
            let why = match (owner, table) {
                (Owner::Library(name), None) => {
                    Some(format!("the policy has no [library.{name}] table"))
                }
                (Owner::Library(name), Some(table))
                    if !rules.iter().all(|r| needs::covered(r, table)) =>
                {
                    Some(format!("[library.{name}] does not allow it"))
                }
                _ if !rules.iter().all(|r| needs::covered(r, policy)) => {
                    Some("the app's rules do not allow it".to_owned())
                }
                _ => None,
            };
            if let Some(why) = why {
                let refuses_start =
                    grant_declared && !rules.iter().all(|r| needs::covered(r, policy));
                failing.push(Failing {
                    rule: need.rule.clone(),
                    reason: need.reason.clone(),
                    at: format!("{}:{}", needs.origin(), need.line),
                    why,
                    refuses_start,
                });
            }
        }
    }
    Party {
        kind: if name.is_some() { "library" } else { "app" },
        name,
        found_by,
        imports: imports
            .iter()
            .map(|i| Import {
                name: i.name.clone(),
                interface: i.interface.clone(),
                labelled: i.labelled,
            })
            .collect(),
        declared: needs.as_ref().map(|n| {
            n.needs()
                .iter()
                .map(|need| DeclaredNeed {
                    rule: need.rule.clone(),
                    reason: need.reason.clone(),
                })
                .collect()
        }),
        granted,
        grant_declared,
        wider_than_declared: wider,
        will_fail: failing,
    }
}

/// Each need's compiled rules, in declaration order.
fn need_rules(needs: &Needs) -> Vec<Vec<Rule>> {
    let compiled = needs.policy();
    needs
        .needs()
        .iter()
        .map(|need| {
            compiled
                .rules()
                .iter()
                .filter(|r| match &r.source.origin {
                    capnet::policy::Origin::File { line, .. } => *line == need.line,
                    _ => false,
                })
                .cloned()
                .collect()
        })
        .collect()
}

/// One rule per source: a group word's rules share one.
fn distinct(rules: &[Rule]) -> Vec<&Rule> {
    let mut seen: Vec<&Source> = Vec::new();
    let mut out = Vec::new();
    for rule in rules {
        if rule.verdict == capnet::policy::Verdict::Allow && !seen.contains(&&rule.source) {
            seen.push(&rule.source);
            out.push(rule);
        }
    }
    out
}

fn grouped(rules: &[Rule]) -> Vec<Granted> {
    distinct(rules)
        .into_iter()
        .map(|r| granted_rule(&r.source))
        .collect()
}

fn granted_rule(source: &Source) -> Granted {
    let at = match &source.origin {
        capnet::policy::Origin::File { path, line, column } => format!("{path}:{line}:{column}"),
        capnet::policy::Origin::Flag(flag) => flag.to_string(),
        capnet::policy::Origin::Builder => String::new(),
    };
    Granted {
        rule: source.text.clone(),
        at,
    }
}

/// The report as a tree for a terminal.
fn tree(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", report.component);
    for (index, party) in report.parties.iter().enumerate() {
        let last = index + 1 == report.parties.len();
        let (branch, pad) = if last {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        let title = match &party.name {
            Some(name) => format!("library {name} (found by {})", party.found_by),
            None => "the app".to_owned(),
        };
        let _ = writeln!(out, "{branch} {title}");
        for import in &party.imports {
            let _ = if import.name == import.interface {
                writeln!(out, "{pad}  imports   {}", import.interface)
            } else {
                writeln!(
                    out,
                    "{pad}  imports   {} as {}",
                    import.interface, import.name
                )
            };
        }
        match &party.declared {
            None if party.name.is_some() => {
                let _ = writeln!(
                    out,
                    "{pad}  declares  nothing (no {} section)",
                    needs::SECTION
                );
            }
            None => {}
            Some(declared) if declared.is_empty() => {
                let _ = writeln!(out, "{pad}  declares  no network");
            }
            Some(declared) => {
                for need in declared {
                    let reason = need
                        .reason
                        .as_ref()
                        .map(|r| format!("  # {r}"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "{pad}  declares  {}{reason}", need.rule);
                }
            }
        }
        match &party.granted {
            None => {}
            Some(granted) if granted.is_empty() => {
                let _ = writeln!(out, "{pad}  granted   nothing");
            }
            Some(granted) => {
                for rule in granted {
                    let _ = writeln!(out, "{pad}  granted   {}  ({})", rule.rule, rule.at);
                }
            }
        }
        for rule in &party.wider_than_declared {
            let _ = writeln!(
                out,
                "{pad}  ! wider than declared: {}  ({})",
                rule.rule, rule.at
            );
        }
        for need in &party.will_fail {
            let start = if need.refuses_start {
                "; capnet run refuses to start"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{pad}  ! will fail: {}: {}{start}",
                need.rule, need.why
            );
        }
    }
    out
}
