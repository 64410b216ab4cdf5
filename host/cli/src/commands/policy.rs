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

/// Validate a policy file and print a summary: rules per use, warnings, the default. With
/// --component, also check every library's declared needs against it before anything runs.
#[derive(Parser, Debug)]
#[command(after_help = "\
With --component, each library's declared needs (`capnet needs`) are set beside what the
policy grants it, as `capnet run` would build the grant:
  error    a need the app's rules or the library's table do not allow (the use will be
           denied), or, for a library granted what it declared, one the app's rules do not
           allow (capnet run refuses to start)
  warning  a rule the library's table grants beyond its declaration; a library granted what
           it declared that declares nothing (it gets no network)
The exit code is 1 when a need will fail.

Examples:
  capnet policy check policy.toml
  capnet policy check --component app.wasm policy.toml")]
pub struct CheckOpts {
    /// The policy file (TOML).
    file: PathBuf,
    /// A composed app (or one library) whose declared needs to check against the policy.
    #[arg(long, value_name = "APP.wasm")]
    component: Option<PathBuf>,
    /// Check as `capnet run --grant-declared` runs: every library granted what it declared.
    #[arg(long, requires = "component")]
    grant_declared: bool,
}

/// Print the verdict a policy gives one use of one address or name, and the rule that decided.
#[derive(Parser, Debug)]
#[command(after_help = "\
ADDRESS is IP:PORT ([IPv6]:PORT), a bare IP (port 0), or a host name with an optional :PORT.
A host name under tcp-connect or udp-send is answered as a DNS-pinned grant would decide it.
With --library, the use is a library's: the app's verdict, the library's table's, and the
one that holds (a library gets a use only where both allow it).

Examples:
  capnet policy explain policy.toml tcp-connect 169.254.169.254:80
  capnet policy explain policy.toml tcp-connect api.example.com:443
  capnet policy explain policy.toml lookup api.example.com
  capnet policy explain --library weather policy.toml tcp-connect 127.0.0.1:9001")]
pub struct ExplainOpts {
    /// Explain the use for library NAME of a composed app ([library.NAME]).
    #[arg(long, value_name = "NAME")]
    library: Option<String>,
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
        let Some(component) = &self.component else {
            return Ok(ExitCode::SUCCESS);
        };
        let report = super::inspect::report(component, Some(&self.file), self.grant_declared)?;
        let (text, failing) = needs_findings(&report.parties);
        eprint!("{text}");
        let shown = component.display();
        if failing == 0 {
            println!("{shown}: every declared need is granted");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("{shown}: {failing} declared need(s) will fail");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The `error:` and `warning:` lines `capnet policy check --component` prints for each
/// party's declaration beside its grant, and how many needs will fail.
fn needs_findings(parties: &[super::inspect::Party]) -> (String, usize) {
    let mut out = String::new();
    let mut failing = 0;
    for party in parties {
        let who = match &party.name {
            Some(name) => format!("library {name}"),
            None => "the app".to_owned(),
        };
        for need in &party.will_fail {
            failing += 1;
            let reason = need
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let outcome = if need.refuses_start {
                "capnet run refuses to start"
            } else {
                "the use will be denied"
            };
            let _ = writeln!(
                out,
                "error: {who} declares \"{}\"{reason} at {}: {}; {outcome}",
                need.rule, need.at, need.why
            );
        }
        for rule in &party.wider_than_declared {
            let _ = writeln!(
                out,
                "warning: {who} is granted \"{}\" ({}), which it does not declare",
                rule.rule, rule.at
            );
        }
        if party.grant_declared && party.declared.is_none() {
            let _ = writeln!(
                out,
                "warning: {who} is granted what it declares and declares nothing: it gets no network"
            );
        }
    }
    (out, failing)
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
        if policy.declared(name).is_some() {
            let _ = write!(out, ", granted what it declares");
        }
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
        let text = match &self.library {
            Some(library) => explain_library(&policy, library, use_, &self.address)?,
            None => explain(&policy, use_, &self.address)?,
        };
        print!("{text}");
        Ok(ExitCode::SUCCESS)
    }
}

/// The text `capnet policy explain` prints.
///
/// # Errors
/// An address that is neither IP:PORT, an IP, nor a host name with an optional port.
pub fn explain(policy: &Policy, use_: Use, address: &str) -> wasmtime::Result<String> {
    let subject = Subject::parse(address)?;
    let decision = subject.decide(policy, use_);
    let mut out = String::new();
    let _ = writeln!(out, "{} {use_} {subject}", decision.verdict);
    let _ = writeln!(out, "  decided by: {decision}");
    subject.notes(policy, use_, decision.is_allowed(), &mut out);
    Ok(out)
}

/// The text `capnet policy explain --library NAME` prints: the app's verdict, the library's
/// table's, and the one that holds, saying why when they differ.
///
/// # Errors
/// As [`explain`].
pub fn explain_library(
    policy: &Policy,
    library: &str,
    use_: Use,
    address: &str,
) -> wasmtime::Result<String> {
    let subject = Subject::parse(address)?;
    let app = subject.decide(policy, use_);
    let own = policy
        .library(library)
        .map(|table| subject.decide(table, use_));
    let allowed = app.is_allowed() && own.is_some_and(|d| d.is_allowed());
    let verdict = if allowed {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    let mut out = String::new();
    let _ = writeln!(out, "{verdict} {use_} {subject} for library {library}");
    let _ = writeln!(out, "  the app: {} by {app}", app.verdict);
    match own {
        Some(d) => writeln!(out, "  library {library}: {} by {d}", d.verdict),
        None => writeln!(
            out,
            "  library {library}: deny: the policy has no [library.{library}] table, so it gets no network"
        ),
    }
    .ok();
    let why = match (app.is_allowed(), own.map(|d| d.is_allowed())) {
        (true, Some(false)) => Some(format!(
            "the app allows it; library {library}'s table does not"
        )),
        (false, Some(true)) => Some(format!(
            "library {library}'s table allows it; the app does not, and a library gets only what the app has"
        )),
        _ => None,
    };
    if let Some(why) = why {
        let _ = writeln!(out, "  why: {why}");
    }
    subject.notes(policy, use_, allowed, &mut out);
    Ok(out)
}

/// What `explain` is asked about: a socket address, or a host name and port.
enum Subject<'a> {
    Addr(SocketAddr),
    Host(&'a str, u16),
}

impl<'a> Subject<'a> {
    fn parse(address: &'a str) -> wasmtime::Result<Self> {
        if let Some(addr) = parse_socket_addr(address) {
            return Ok(Subject::Addr(addr));
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
        Ok(Subject::Host(name, port))
    }

    /// The decision of `policy` (the app's, or a library's table) alone, as the runtime
    /// makes it (a UDP client's ephemeral bind included).
    fn decide<'p>(&self, policy: &'p Policy, use_: Use) -> capnet::policy::Decision<'p> {
        match *self {
            Subject::Addr(addr) if use_ == Use::UdpBind => policy.decide_udp_bind(addr),
            Subject::Addr(addr) => policy.decide(use_, addr),
            Subject::Host(name, port) => policy.decide_host(use_, name, port),
        }
    }

    /// The lines after the verdict: the named sets an address is in, or how an allowed
    /// connect to a name is pinned.
    fn notes(&self, policy: &Policy, use_: Use, allowed: bool, out: &mut String) {
        match *self {
            Subject::Addr(addr) => {
                let ip = capnet::policy::normalize(addr.ip());
                let sets: Vec<&str> = NamedSet::ALL
                    .into_iter()
                    .filter(|s| s.contains(ip))
                    .map(NamedSet::as_str)
                    .collect();
                if !sets.is_empty() {
                    let _ = writeln!(out, "  {ip} is in: {}", sets.join(", "));
                }
            }
            Subject::Host(name, _) if matches!(use_, Use::TcpConnect | Use::UdpSend) && allowed => {
                let lookup = policy.decide_name(Use::Lookup, name);
                let _ = writeln!(
                    out,
                    "  pinned: {use_} goes to the addresses a lookup of {name} returns, for the answer's TTL"
                );
                let _ = writeln!(out, "  lookup of {name}: {} by {lookup}", lookup.verdict);
                let _ = writeln!(
                    out,
                    "  answers in loopback, private, link-local or metadata are reached only on a port a rule naming the address allows"
                );
            }
            Subject::Host(..) => {}
        }
    }
}

/// `IP:PORT`, or `NAME:PORT` and `NAME` as they were given.
impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Addr(addr) => addr.fmt(f),
            Subject::Host(name, 0) => f.write_str(name),
            Subject::Host(name, port) => write!(f, "{name}:{port}"),
        }
    }
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
