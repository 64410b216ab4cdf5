//! The log every capnet host writes to stderr: policy decisions and socket events, as human
//! lines or, with a [`DecisionLogSpec`], as JSON decision lines too. Shared by `capnet run` and
//! the containerd shim, so a decision reads the same in a terminal and in `kubectl logs`.

use crate::decision_log::{DecisionLog, DecisionLogSpec};
use std::io::IsTerminal;
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;

/// The tracing dispatcher of a capnet host. Denials are logged by default (info); allows with
/// `verbose` 1 (debug); socket internals with 2. `filter` (a tracing filter, the value of
/// `CAPNET_LOG`) overrides. With `decisions`, every decision also goes to the JSON log, which
/// to stderr replaces the human decision lines.
///
/// # Errors
/// The decision log's file cannot be opened.
pub fn dispatch(
    verbose: u8,
    filter: Option<&str>,
    decisions: Option<&DecisionLogSpec>,
) -> std::io::Result<Dispatch> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let default = match verbose {
        0 => "capnet=info",
        1 => "capnet=debug",
        _ => "capnet=trace",
    };
    let mut filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
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
    Ok(Dispatch::new(
        tracing_subscriber::registry().with(human).with(json),
    ))
}

/// An error as capnet prints it to stderr: `error: ` and the error, then its causes under
/// `Caused by:`, one a line.
pub fn error_report(error: &wasmtime::Error) -> String {
    use std::fmt::Write as _;
    let mut out = format!("error: {error}\n");
    let mut causes = error.chain().skip(1).peekable();
    if causes.peek().is_some() {
        out.push_str("\nCaused by:\n");
        for cause in causes {
            let _ = writeln!(out, "    {cause}");
        }
    }
    out
}
