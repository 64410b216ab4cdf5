//! `capnet needs`: write or show the network a library declares it needs.

use capnet::needs::{self, Needs, Written};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Write or show a library's declared needs: the rules, in the policy file's language, that
/// the library says it uses, kept in a custom section of its own component.
#[derive(Parser, Debug)]
pub struct NeedsOpts {
    #[command(subcommand)]
    command: NeedsCommand,
}

#[derive(Subcommand, Debug)]
enum NeedsCommand {
    Set(SetOpts),
    Show(ShowOpts),
}

/// Write a library's declaration: each RULE a need, `USE TARGET[:PORTS]` with an optional
/// `# reason`, or the needs a crate's Cargo.toml or a learning run lists. The declaration
/// replaces any the library had; no other section changes.
#[derive(Parser, Debug)]
#[command(after_help = "\
Examples:
  capnet needs set weather.wasm 'connect api.weather.example:443  # the forecast API' \\
      'lookup api.weather.example' -o weather.wasm
  capnet needs set weather.wasm --from-cargo weather/Cargo.toml -o weather.wasm
  capnet needs set weather.wasm --from-learn learned.toml --library weather -o weather.wasm

--from-cargo reads `needs = [\"RULE  # reason\", ...]` from the crate's
[package.metadata.capnet] table. --from-learn reads the allow rules `capnet run --learn` wrote
for library NAME ([library.NAME.allow]), or with no --library the [allow] table (a library
learned on its own); each rule's comment becomes its reason.

With no RULE the library declares that it needs no network.")]
pub struct SetOpts {
    /// The library's component.
    library: PathBuf,
    /// The needs, one per argument.
    #[arg(value_name = "RULE", conflicts_with_all = ["from_cargo", "from_learn"])]
    rules: Vec<String>,
    /// Take the needs from a Rust crate's Cargo.toml: `needs` in `[package.metadata.capnet]`.
    #[arg(long, value_name = "CARGO_TOML", conflicts_with = "from_learn")]
    from_cargo: Option<PathBuf>,
    /// Take the needs from a policy file `capnet run --learn` wrote.
    #[arg(long, value_name = "LEARNED_TOML")]
    from_learn: Option<PathBuf>,
    /// With --from-learn: the library whose learned rules to take ([library.NAME.allow]).
    #[arg(long = "library", value_name = "NAME", requires = "from_learn")]
    library_name: Option<String>,
    /// Where to write the library with its declaration [default: LIBRARY, replaced by a new
    /// file].
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// Print a library's declaration, as the section holds it.
#[derive(Parser, Debug)]
pub struct ShowOpts {
    /// The library's component.
    library: PathBuf,
}

impl NeedsOpts {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// An unreadable file, a binary that is not WebAssembly, or a malformed need.
    pub fn run(self) -> wasmtime::Result<ExitCode> {
        match self.command {
            NeedsCommand::Set(opts) => opts.run(),
            NeedsCommand::Show(opts) => opts.run(),
        }
    }
}

fn origin(library: &std::path::Path) -> String {
    format!("{}#{}", library.display(), needs::SECTION)
}

impl SetOpts {
    fn run(self) -> wasmtime::Result<ExitCode> {
        let bytes = std::fs::read(&self.library)
            .map_err(|e| wasmtime::format_err!("{}: {e}", self.library.display()))?;
        let origin = origin(&self.library);
        let declared = match (&self.from_cargo, &self.from_learn) {
            (Some(cargo), _) => Needs::from_written(&origin, &from_cargo(cargo)?)?,
            (None, Some(learned)) => {
                Needs::from_written(&origin, &from_learn(learned, self.library_name.as_deref())?)?
            }
            (None, None) => Needs::from_rules(&origin, &self.rules)?,
        };
        let written = needs::write(&bytes, &declared)
            .map_err(|e| wasmtime::format_err!("{}: {e}", self.library.display()))?;
        let out = self.output.unwrap_or_else(|| self.library.clone());
        // A new file renamed over the target: a reader never sees half a component.
        let mut partial = out.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, &written)
            .and_then(|()| std::fs::rename(&partial, &out))
            .map_err(|e| wasmtime::format_err!("{}: {e}", out.display()))?;
        eprintln!(
            "{}: {} need(s) declared",
            out.display(),
            declared.needs().len()
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl ShowOpts {
    fn run(self) -> wasmtime::Result<ExitCode> {
        let bytes = std::fs::read(&self.library)
            .map_err(|e| wasmtime::format_err!("{}: {e}", self.library.display()))?;
        match needs::read(&origin(&self.library), &bytes)? {
            Some(declared) => print!("{}", declared.to_text()),
            None => eprintln!("{} declares no needs", self.library.display()),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A crate manifest, as far as its declared needs go.
#[derive(serde::Deserialize)]
struct Manifest {
    package: Option<Package>,
}

#[derive(serde::Deserialize)]
struct Package {
    metadata: Option<Metadata>,
}

#[derive(serde::Deserialize)]
struct Metadata {
    capnet: Option<CapnetMetadata>,
}

/// `[package.metadata.capnet]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CapnetMetadata {
    needs: Vec<toml::Spanned<String>>,
}

/// The needs `[package.metadata.capnet]` lists in the crate manifest `path`, each with its
/// place in the file.
fn from_cargo(path: &Path) -> wasmtime::Result<Vec<Written>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let capnet = manifest
        .package
        .and_then(|p| p.metadata)
        .and_then(|m| m.capnet)
        .ok_or_else(|| {
            wasmtime::format_err!(
                "{shown}: no [package.metadata.capnet] table (write needs = [\"connect HOST:PORT  # why\", ...] there)"
            )
        })?;
    Ok(capnet
        .needs
        .into_iter()
        .map(|need| {
            // The span holds the quote; the text starts after it.
            let (line, column) = line_column(&text, need.span().start + 1);
            Written {
                text: need.into_inner(),
                origin: shown.clone(),
                line,
                column,
            }
        })
        .collect())
}

/// The allow rules of a learned policy file (`capnet run --learn`): library `library`'s
/// (`[library.NAME.allow]`), else the app's (`[allow]`), each with its comment as the reason.
/// The file is checked as a policy first, so a bad rule is named as `capnet policy check`
/// names it.
fn from_learn(path: &Path, library: Option<&str>) -> wasmtime::Result<Vec<Written>> {
    let shown = path.display().to_string();
    capnet::policy::Policy::builder().file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let doc = toml_edit::Document::parse(text.as_str())
        .map_err(|e| wasmtime::format_err!("{shown}: {e}"))?;
    let table = match library {
        Some(name) => doc
            .get("library")
            .and_then(|l| l.get(name))
            .and_then(|l| l.get("allow")),
        None => doc.get("allow"),
    };
    let table = table.and_then(|t| t.as_table_like()).ok_or_else(|| {
        let (table, hint) = match library {
            Some(name) => (
                format!("[library.{name}.allow]"),
                format!(" (was {name} used in the run?)"),
            ),
            None => ("[allow]".to_owned(), String::new()),
        };
        wasmtime::format_err!("{shown}: no {table} table{hint}")
    })?;
    let mut written = Vec::new();
    for (word, item) in table.iter() {
        let Some(list) = item.as_array() else {
            continue;
        };
        for value in list.iter() {
            let (Some(target), Some(span)) = (value.as_str(), value.span()) else {
                continue;
            };
            let reason = comment_after(&text[span.end..]).map(|comment| {
                if comment.starts_with("used ") {
                    format!("learned: {comment}")
                } else {
                    comment.to_owned()
                }
            });
            let (line, column) = line_column(&text, span.start + 1);
            written.push(Written {
                text: match reason {
                    Some(reason) => format!("{word} {target}  # {reason}"),
                    None => format!("{word} {target}"),
                },
                origin: shown.clone(),
                line,
                column,
            });
        }
    }
    Ok(written)
}

/// The comment on the rest of a line after a list's element (`, # used once: tcp-connect`).
fn comment_after(rest: &str) -> Option<&str> {
    let line = rest.split('\n').next().unwrap_or_default();
    let comment = line
        .trim_start_matches([',', ' ', '\t'])
        .strip_prefix('#')?;
    Some(comment.trim()).filter(|c| !c.is_empty())
}

/// The 1-based line and column of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> (u32, u32) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}
