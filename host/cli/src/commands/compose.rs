//! `capnet compose`: one component from an app and its libraries, each library's sockets kept
//! apart under labels of its own (see [`crate::compose`]).

use crate::compose::{self, ComposeFile, Library};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Compose an app with its libraries into one component that `capnet run` serves with a grant
/// per library.
///
/// Each library's exports are plugged into the app's imports of the same interface (and into
/// other libraries'). A library's imports of the sockets interfaces that create sockets become
/// imports of the composition labelled with its name (weather-instance-network,
/// weather-tcp-create-socket, weather-udp-create-socket under wasi:sockets 0.2; weather-types,
/// weather-ip-name-lookup under 0.3), which capnet serves with `[library.weather]`'s grant;
/// every version of such an import the library has goes there. Its other imports are shared
/// with the app's. A library that imports capnet:sockets, or anything else it could reach the
/// app's grant through, is refused.
#[derive(Parser, Debug)]
#[command(after_help = "\
Examples:
  capnet compose app.wasm --library weather=weather.wasm --library metrics=metrics.wasm -o composed.wasm
  capnet compose --config compose.toml

compose.toml (paths relative to the file):
  app = \"app.wasm\"
  output = \"composed.wasm\"

  [library]
  weather = \"weather.wasm\"
  metrics = \"metrics.wasm\"")]
pub struct ComposeOpts {
    /// The app component.
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    app: Option<PathBuf>,
    /// A library, as NAME=COMPONENT: NAME labels its sockets imports and is the NAME of
    /// [library.NAME] in a policy. Repeat for each library.
    #[arg(
        long = "library",
        value_name = "NAME=COMPONENT",
        conflicts_with = "config"
    )]
    libraries: Vec<String>,
    /// Where to write the composed component (with --config: instead of the file's output).
    #[arg(short, long, value_name = "FILE", required_unless_present = "config")]
    output: Option<PathBuf>,
    /// Read the app, the libraries and the output from a TOML file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ComposeOpts {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// A file that cannot be read or written, a bad `--library` or compose file, and every
    /// refusal of [`compose::compose`].
    pub fn run(self) -> wasmtime::Result<ExitCode> {
        let plan = match &self.config {
            Some(config) => {
                let mut file = ComposeFile::load(config).map_err(|e| wasmtime::format_err!(e))?;
                if let Some(output) = self.output {
                    file.output = output;
                }
                file
            }
            None => ComposeFile {
                app: self.app.expect("clap requires APP without --config"),
                libraries: self
                    .libraries
                    .iter()
                    .map(|spec| library_flag(spec))
                    .collect::<wasmtime::Result<_>>()?,
                output: self.output.expect("clap requires -o without --config"),
            },
        };
        let app = read(&plan.app)?;
        let libraries = plan
            .libraries
            .iter()
            .map(|(name, path)| {
                Ok(Library {
                    name: name.clone(),
                    component: read(path)?,
                })
            })
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let composition = compose::compose(&app, &libraries).map_err(wasmtime::Error::new)?;
        write(&plan.output, &composition.component)?;
        for library in &composition.libraries {
            for (label, interface, imports) in &library.labelled {
                let versions = if imports.len() > 1 {
                    format!(" (its imports {})", imports.join(", "))
                } else {
                    String::new()
                };
                eprintln!(
                    "capnet compose: library {}: {label} implements {interface}{versions}",
                    library.name
                );
            }
        }
        eprintln!("capnet compose: wrote {}", plan.output.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// `NAME=COMPONENT` of `--library`.
fn library_flag(spec: &str) -> wasmtime::Result<(String, PathBuf)> {
    match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(wasmtime::format_err!(
            "--library {spec}: write NAME=COMPONENT, as in weather=weather.wasm"
        )),
    }
}

fn read(path: &Path) -> wasmtime::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| wasmtime::format_err!("{}: {e}", path.display()))
}

/// Writes `bytes` to a temporary file beside `path` and renames it, so a reader never sees
/// half a component.
fn write(path: &Path, bytes: &[u8]) -> wasmtime::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| wasmtime::format_err!("{}: {e}", path.display()))
}
