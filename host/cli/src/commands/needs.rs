//! `capnet needs`: write or show the network a library declares it needs.

use capnet::needs::{self, Needs};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
/// `# reason`. The declaration replaces any the library had; no other section changes.
#[derive(Parser, Debug)]
#[command(after_help = "\
Example:
  capnet needs set weather.wasm 'connect api.weather.example:443  # the forecast API' \\
      'lookup api.weather.example' -o weather.wasm

With no RULE the library declares that it needs no network.")]
pub struct SetOpts {
    /// The library's component.
    library: PathBuf,
    /// The needs, one per argument.
    #[arg(value_name = "RULE")]
    rules: Vec<String>,
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
        let declared = Needs::from_rules(&origin(&self.library), &self.rules)?;
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
