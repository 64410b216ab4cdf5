//! The command-line conventions every capnet guest follows, in one place: the server command line
//! `NAME ADDR [MAX_CONNS]`, the `listening on <addr>` line, the one-line error report, and the
//! accept loop of the `std::net` servers.
//!
//! The contract with the tests:
//!
//! - once listening, a server prints exactly one line `listening on <addr>` to stdout, where
//!   `<addr>` is the socket's *actual* local address (a bind to port 0 reports the chosen port),
//!   and flushes stdout;
//! - after `MAX_CONNS` connections have been served a server exits 0; without it, it serves
//!   forever;
//! - a failure prints one line `error: OPERATION ADDR: CAUSE` to stderr (see [`Failure`]); a
//!   failure that ends the program exits 1;
//! - a bad command line prints `error: <what is wrong>` and `usage: ...` to stderr and exits 2.
//!
//! This crate uses only `std`, so it adds no imports beyond the ones `std` already has.

#![forbid(unsafe_code)]

use std::fmt::{self, Display};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

/// The exit code for a bad command line.
pub const USAGE_EXIT: u8 = 2;

/// Reports a bad command line (`error: PROBLEM`, then `usage: USAGE`) and returns the exit code
/// to end with.
pub fn usage(usage: &str, problem: impl Display) -> ExitCode {
    eprintln!("error: {problem}");
    eprintln!("usage: {usage}");
    ExitCode::from(USAGE_EXIT)
}

/// A server guest's command line: `NAME ADDR [MAX_CONNS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    /// The address to listen on, as given (`127.0.0.1:0`, `[::1]:8080`, ...).
    pub addr: String,
    /// How many connections to serve before exiting 0; `None` serves forever.
    pub max_conns: Option<u64>,
}

impl ServerArgs {
    /// Parses the process's own arguments; `name` is the program name for the usage line.
    ///
    /// # Errors
    ///
    /// On a bad command line, reports it with [`usage`] and returns the exit code to end with.
    pub fn from_env(name: &str) -> Result<Self, ExitCode> {
        Self::parse(std::env::args().skip(1))
            .map_err(|problem| usage(&format!("{name} ADDR [MAX_CONNS]"), problem))
    }

    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// Says what is wrong: a missing `ADDR`, a `MAX_CONNS` that is not a number, or an extra
    /// argument.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let addr = args.next().ok_or("missing ADDR")?;
        let max_conns = match args.next() {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| format!("MAX_CONNS {text:?} is not a number of connections"))?,
            ),
        };
        if let Some(extra) = args.next() {
            return Err(format!("unexpected argument {extra:?}"));
        }
        Ok(Self { addr, max_conns })
    }

    /// Whether a server that has served `served` connections should stop.
    pub fn done(&self, served: u64) -> bool {
        self.max_conns.is_some_and(|max| served >= max)
    }
}

/// Prints the one line `listening on <addr>` to stdout and flushes it.
pub fn announce(addr: impl Display) {
    let mut stdout = io::stdout().lock();
    // If stdout is gone nobody is waiting for the line; serving is still what was asked.
    let _ = writeln!(stdout, "listening on {addr}");
    let _ = stdout.flush();
}

/// One failed operation, reported as the line `error: OPERATION ADDR: CAUSE`.
///
/// `OPERATION` names the step (`bind`, `connect`, `lookup`, `read`, ...), `ADDR` the address or
/// name it was applied to, and `CAUSE` the reason: for `wasi:sockets` calls the WIT
/// `error-code` name, such as `access-denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    operation: &'static str,
    addr: String,
    cause: String,
}

impl Failure {
    /// A failure of `operation` on `addr` because of `cause`.
    pub fn new(operation: &'static str, addr: impl Display, cause: impl Display) -> Self {
        Self {
            operation,
            addr: addr.to_string(),
            cause: cause.to_string(),
        }
    }

    /// Prints the failure's line to stderr.
    pub fn report(&self) {
        eprintln!("error: {self}");
    }

    /// Prints the failure's line to stderr and returns exit code 1.
    pub fn exit(&self) -> ExitCode {
        self.report();
        ExitCode::FAILURE
    }
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.operation, self.addr, self.cause)
    }
}

/// An error that can be the `CAUSE` of a [`Failure`], described the way the tests expect.
pub trait Cause {
    /// The text after `ADDR: ` in the error line.
    fn describe(&self) -> String;
}

impl Cause for io::Error {
    fn describe(&self) -> String {
        self.to_string()
    }
}

/// Turns an error into a [`Failure`] that names the operation and the address.
pub trait OrFail<T> {
    /// `Err(cause)` becomes `Err(Failure::new(operation, addr, cause))`.
    ///
    /// # Errors
    ///
    /// The [`Failure`], when `self` is an error.
    fn or_fail(self, operation: &'static str, addr: impl Display) -> Result<T, Failure>;
}

impl<T, E: Cause> OrFail<T> for Result<T, E> {
    fn or_fail(self, operation: &'static str, addr: impl Display) -> Result<T, Failure> {
        self.map_err(|cause| Failure::new(operation, addr, cause.describe()))
    }
}

/// Runs a `std::net` server: binds `ADDR`, announces it, and hands each accepted connection and
/// its peer's address to `handle`, one at a time, until `MAX_CONNS` connections have been
/// handled.
///
/// One at a time because `std` on `wasm32-wasip2` has no threads: a second client waits in the
/// listen backlog until the first one is done.
///
/// A connection whose handler fails has its [`Failure`] reported on stderr and still counts as
/// served. A failed bind (`error: bind ADDR: <cause>`) or `accept` (`error: accept ADDR:
/// <cause>`) ends the server with exit code 1; a failed accept is not retried, so a denied accept
/// cannot spin forever.
pub fn run_std(
    name: &str,
    mut handle: impl FnMut(TcpStream, SocketAddr) -> Result<(), Failure>,
) -> ExitCode {
    let args = match ServerArgs::from_env(name) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match serve_std(&args, &mut handle) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn serve_std(
    args: &ServerArgs,
    handle: &mut impl FnMut(TcpStream, SocketAddr) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let listener = TcpListener::bind(&args.addr).or_fail("bind", &args.addr)?;
    let local = listener.local_addr().or_fail("local-address", &args.addr)?;
    announce(local);

    let mut served = 0;
    while !args.done(served) {
        let (stream, peer) = listener.accept().or_fail("accept", local)?;
        if let Err(failure) = handle(stream, peer) {
            failure.report();
        }
        served += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Failure, ServerArgs};

    fn parse(args: &[&str]) -> Result<ServerArgs, String> {
        ServerArgs::parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn max_conns_is_optional() {
        let args = parse(&["127.0.0.1:0"]).unwrap();
        assert_eq!(args.max_conns, None);
        assert!(!args.done(u64::MAX));
    }

    #[test]
    fn stops_after_max_conns() {
        let args = parse(&["[::1]:0", "2"]).unwrap();
        assert!(!args.done(1));
        assert!(args.done(2));
    }

    #[test]
    fn rejects_non_numeric_max_conns() {
        assert!(parse(&["127.0.0.1:0", "two"]).is_err());
    }

    #[test]
    fn rejects_missing_addr_and_extra_arguments() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["127.0.0.1:0", "1", "x"]).is_err());
    }

    #[test]
    fn failure_line_names_operation_address_and_cause() {
        let failure = Failure::new("connect", "127.0.0.1:9", "access-denied");
        assert_eq!(failure.to_string(), "connect 127.0.0.1:9: access-denied");
    }
}
