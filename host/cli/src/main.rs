//! `capnet`: run WebAssembly components with network sockets granted by policy.

use capnet_cli::commands::policy::PolicyOpts;
use capnet_cli::commands::run::RunOpts;
use capnet_cli::decision_log::{DecisionLog, DecisionLogSpec};
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
    Run(Box<RunOpts>),
    Policy(PolicyOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let decisions = match &cli.command {
        Command::Run(opts) => opts.log_decisions.clone(),
        Command::Policy(_) => None,
    };
    if let Err(e) = init_logging(cli.verbose, decisions.as_ref()) {
        eprintln!("error: --log-decisions: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(opts) => (*opts).run(),
        Command::Policy(opts) => opts.run(),
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

/// Denials are logged by default (info); allows with -v (debug). With `--log-decisions`, every
/// decision also goes to the JSON log, which to stderr replaces the human decision lines.
fn init_logging(verbose: u8, decisions: Option<&DecisionLogSpec>) -> std::io::Result<()> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let default = match verbose {
        0 => "capnet=info",
        1 => "capnet=debug",
        _ => "capnet=trace",
    };
    let mut filter =
        EnvFilter::try_from_env("CAPNET_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if decisions == Some(&DecisionLogSpec::Stderr) {
        filter = filter.add_directive("capnet::policy=off".parse().expect("a valid directive"));
    }
    let human = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_filter(filter);
    let json = match decisions {
        Some(spec) => Some(
            DecisionLog::open(spec)?.with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("capnet::policy", tracing::Level::DEBUG),
            ),
        ),
        None => None,
    };
    tracing_subscriber::registry().with(human).with(json).init();
    Ok(())
}
