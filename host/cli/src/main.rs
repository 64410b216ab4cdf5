//! `capnet`: run WebAssembly components with network sockets granted by policy.

use capnet_cli::commands::run::RunOpts;
use clap::{ArgAction, Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Run WebAssembly components with network access granted the capability way: deny by
/// default, every bind, listen, accept, connect and lookup checked against a policy.
#[derive(Parser, Debug)]
#[command(name = "capnet", version)]
struct Cli {
    /// Log more: -v every policy decision, -vv socket internals. CAPNET_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(RunOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(opts) => opts.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let mut causes = error.chain().skip(1).peekable();
            if causes.peek().is_some() {
                eprintln!("\nCaused by:");
                for cause in causes {
                    eprintln!("    {cause}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// Denials are logged by default (info); allows with -v (debug).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "capnet=info",
        1 => "capnet=debug",
        _ => "capnet=trace",
    };
    let filter = EnvFilter::try_from_env("CAPNET_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}
