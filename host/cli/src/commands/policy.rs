//! `capnet policy`: check a policy file, or explain one decision.

use capnet::policy::{Limit, NamedSet, Policy, Target, Use, Verdict};
use clap::{Parser, Subcommand};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Check a policy file, or explain which rule decides a use.
#[derive(Parser, Debug)]
pub struct PolicyOpts {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    Check(CheckOpts),
    Explain(ExplainOpts),
}

/// Validate a policy file and print a summary: rules per use, warnings, the default.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  capnet policy check policy.toml")]
pub struct CheckOpts {
    /// The policy file (TOML).
    file: PathBuf,
}

/// Print the verdict a policy gives one use of one address or name, and the rule that decided.
#[derive(Parser, Debug)]
#[command(after_help = "\
ADDRESS is IP:PORT ([IPv6]:PORT), a bare IP (port 0), or a host name with an optional :PORT.
A host name under tcp-connect or udp-send is answered as a DNS-pinned grant would decide it.

Examples:
  capnet policy explain policy.toml tcp-connect 169.254.169.254:80
  capnet policy explain policy.toml tcp-connect api.example.com:443
  capnet policy explain policy.toml lookup api.example.com")]
pub struct ExplainOpts {
    /// The policy file (TOML).
    file: PathBuf,
    /// The use: tcp-connect, tcp-bind, tcp-listen, tcp-accept, udp-bind, udp-send,
    /// udp-receive or lookup.
    #[arg(value_name = "USE")]
    use_: String,
    /// The address or host name the use is about.
    address: String,
}

impl PolicyOpts {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// A bad policy file, use or address.
    pub fn run(self) -> wasmtime::Result<ExitCode> {
        match self.command {
            PolicyCommand::Check(opts) => opts.run(),
            PolicyCommand::Explain(opts) => opts.run(),
        }
    }
}

fn load(file: &Path) -> wasmtime::Result<Policy> {
    let policy = Policy::builder().file(file)?.build();
    for warning in policy.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(policy)
}

impl CheckOpts {
    fn run(self) -> wasmtime::Result<ExitCode> {
        let policy = load(&self.file)?;
        print!(
            "{}",
            check_summary(&self.file.display().to_string(), &policy)
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// The text `capnet policy check` prints for a policy that loaded.
pub fn check_summary(name: &str, policy: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}: ok, {} rules, {} warning(s)",
        policy.rules().len(),
        policy.warnings().len()
    );
    let _ = writeln!(out, "{:<12} {:>6} {:>6}", "use", "allow", "deny");
    for (use_, allow, deny) in policy.summary() {
        let _ = writeln!(out, "{:<12} {allow:>6} {deny:>6}", use_.as_str());
    }
    let pinned = policy
        .rules()
        .iter()
        .filter(|r| {
            r.verdict == Verdict::Allow && r.target.is_name() && !r.uses.contains(Use::Lookup)
        })
        .count();
    if pinned > 0 {
        let _ = writeln!(
            out,
            "DNS-pinned grants: {pinned} (connect to what a lookup returns, for its TTL)"
        );
    }
    let default = if policy.is_inherit_network() {
        "allow (inherit-network)"
    } else {
        "deny"
    };
    let _ = writeln!(out, "default: {default}");
    let _ = writeln!(out, "limits: {}", limits_text(policy, true));
    for (name, library) in policy.libraries() {
        let count = |v: Verdict| library.rules().iter().filter(|r| r.verdict == v).count();
        let _ = write!(
            out,
            "library {name}: {} allow, {} deny rules, within the app's",
            count(Verdict::Allow),
            count(Verdict::Deny)
        );
        match library.limits().iter().next() {
            Some(_) => writeln!(out, "; limits: {}", limits_text(library, false)),
            None => writeln!(out),
        }
        .ok();
    }
    out
}

/// `sockets 256, connections 8192, ...`: the limits a policy sets, in their order. For the
/// instance, a limit with no default that the policy leaves out is named `unset`, so the
/// line shows every key there is.
fn limits_text(policy: &Policy, instance: bool) -> String {
    let limits: Vec<String> = Limit::ALL
        .into_iter()
        .filter_map(|limit| match policy.limits().get(limit) {
            Some(value) => Some(format!("{limit} {value}")),
            None => instance.then(|| format!("{limit} unset")),
        })
        .collect();
    limits.join(", ")
}

impl ExplainOpts {
    fn run(self) -> wasmtime::Result<ExitCode> {
        let policy = load(&self.file)?;
        let use_: Use = self.use_.parse()?;
        print!("{}", explain(&policy, use_, &self.address)?);
        Ok(ExitCode::SUCCESS)
    }
}

/// The text `capnet policy explain` prints.
///
/// # Errors
/// An address that is neither IP:PORT, an IP, nor a host name with an optional port.
pub fn explain(policy: &Policy, use_: Use, address: &str) -> wasmtime::Result<String> {
    let mut out = String::new();
    if let Some(addr) = parse_socket_addr(address) {
        let decision = policy.decide(use_, addr);
        let _ = writeln!(out, "{} {use_} {addr}", decision.verdict);
        let _ = writeln!(out, "  decided by: {decision}");
        let ip = capnet::policy::normalize(addr.ip());
        let sets: Vec<&str> = NamedSet::ALL
            .into_iter()
            .filter(|s| s.contains(ip))
            .map(NamedSet::as_str)
            .collect();
        if !sets.is_empty() {
            let _ = writeln!(out, "  {ip} is in: {}", sets.join(", "));
        }
        return Ok(out);
    }
    let (name, port) = match address.rsplit_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>().map_err(|_| {
                wasmtime::format_err!("\"{port}\" is not a port (write NAME:PORT, 0-65535)")
            })?,
        ),
        None => (address, 0),
    };
    Target::parse(name)
        .map_err(|e| wasmtime::format_err!("\"{name}\" is not an address or host name: {e}"))?;
    let decision = policy.decide_host(use_, name, port);
    let shown = if port == 0 {
        name.to_owned()
    } else {
        format!("{name}:{port}")
    };
    let _ = writeln!(out, "{} {use_} {shown}", decision.verdict);
    let _ = writeln!(out, "  decided by: {decision}");
    if matches!(use_, Use::TcpConnect | Use::UdpSend) && decision.is_allowed() {
        let lookup = policy.decide_name(Use::Lookup, name);
        let _ = writeln!(
            out,
            "  pinned: {use_} goes to the addresses a lookup of {name} returns, for the answer's TTL"
        );
        let _ = writeln!(out, "  lookup of {name}: {} by {lookup}", lookup.verdict);
        let _ = writeln!(
            out,
            "  answers in loopback, private, link-local or metadata are dropped unless a rule allows them"
        );
    }
    Ok(out)
}

fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}
