//! `capnet`: run WebAssembly components with network sockets granted by policy.

use capnet_cli::commands::compose::ComposeOpts;
use capnet_cli::commands::inspect::InspectOpts;
use capnet_cli::commands::needs::NeedsOpts;
use capnet_cli::commands::policy::PolicyOpts;
use capnet_cli::commands::run::RunOpts;
use capnet_cli::decision_log::DecisionLogSpec;
use clap::{ArgAction, Parser, Subcommand};
use std::process::ExitCode;

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
    Run(Box<RunOpts>),
    Policy(PolicyOpts),
    Compose(ComposeOpts),
    Needs(NeedsOpts),
    Inspect(InspectOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let decisions = match &cli.command {
        Command::Run(opts) => opts.log_decisions.clone(),
        Command::Policy(_) | Command::Compose(_) | Command::Needs(_) | Command::Inspect(_) => None,
    };
    if let Err(e) = init_logging(cli.verbose, decisions.as_ref()) {
        eprintln!("error: --log-decisions: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(opts) => (*opts).run(),
        Command::Policy(opts) => opts.run(),
        Command::Compose(opts) => opts.run(),
        Command::Needs(opts) => opts.run(),
        Command::Inspect(opts) => opts.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprint!("{}", capnet_cli::logging::error_report(&error));
            ExitCode::FAILURE
        }
    }
}

/// The shared capnet log ([`capnet_cli::logging`]), installed for the process; `log` records
/// of the libraries underneath (wasmtime's) join it.
fn init_logging(verbose: u8, decisions: Option<&DecisionLogSpec>) -> std::io::Result<()> {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("CAPNET_LOG").ok();
    capnet_cli::logging::dispatch(verbose, filter.as_deref(), decisions)?.init();
    Ok(())
}
