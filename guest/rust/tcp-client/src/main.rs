//! `tcp-client ADDR MESSAGE`: connects to `ADDR`, sends `MESSAGE`, shuts down its sending side,
//! and prints everything that comes back until the peer closes.
//!
//! `ADDR` is `IP:PORT`, `[IPV6]:PORT` or `HOST:PORT`. A host name is looked up with
//! `wasi:sockets/ip-name-lookup` and its addresses are tried in the order given until one
//! connects.
//!
//! The guest calls `wasi:sockets` directly (not `std::net`) so that every failure shows the exact
//! WIT `error-code`: it prints one line `error: OPERATION ADDR: CODE` to stderr and exits 1.
//! For example:
//!
//! ```text
//! error: connect 127.0.0.1:9: access-denied
//! error: connect 127.0.0.1:1: connection-refused
//! error: lookup example.com: permanent-resolver-failure
//! ```
//!
//! The operations are `lookup` (the host name), `create-tcp-socket`, `connect`, `write`,
//! `shutdown` and `read` (the address). When every address of a host name fails to connect,
//! the line is the last address's failure. A failed stream read or write has no
//! `error-code` in stable WASI 0.2, so its cause is the host's description of the error, or
//! `closed`.
//!
//! On success the bytes received are written to stdout exactly as they came, and the exit code
//! is 0. A bad command line exits 2.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use guest_cli::{Failure, OrFail};
use wasi_net::wasi::io::poll::Pollable;
use wasi_net::wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::network::Network;
use wasi_net::wasi::sockets::tcp::{ShutdownType, TcpSocket};
use wasi_net::wasi::sockets::tcp_create_socket::create_tcp_socket;

const USAGE: &str = "tcp-client ADDR MESSAGE";

/// The most `blocking-write-and-flush` takes in one call.
const WRITE_CHUNK: usize = 4096;

/// How much one read asks for.
const READ_SIZE: u64 = 64 * 1024;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(message), None) = (args.next(), args.next(), args.next()) else {
        return guest_cli::usage(USAGE, "expected two arguments");
    };
    let target = match Target::parse(&addr) {
        Ok(target) => target,
        Err(problem) => return guest_cli::usage(USAGE, problem),
    };
    match run(&target, message.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// Where to connect, as given on the command line.
enum Target {
    /// An IP address and port, used as they are.
    Addr(SocketAddr),
    /// A host name to look up, and the port to connect to on each of its addresses.
    Host { name: String, port: u16 },
}

impl Target {
    fn parse(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse() {
            return Ok(Self::Addr(addr));
        }
        let bad = || format!("ADDR {text:?} is not IP:PORT, [IPV6]:PORT or HOST:PORT");
        let (name, port) = text.rsplit_once(':').ok_or_else(bad)?;
        if name.is_empty() || name.contains([':', '[', ']']) {
            return Err(bad());
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(Self::Host {
            name: name.to_owned(),
            port,
        })
    }
}

fn run(target: &Target, message: &[u8]) -> Result<(), Failure> {
    let network = instance_network();
    let addrs = match target {
        Target::Addr(addr) => vec![*addr],
        Target::Host { name, port } => wasi_net::resolve(&network, name)
            .or_fail("lookup", name)?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, *port))
            .collect(),
    };
    let mut last_failure = None;
    for addr in addrs {
        match Connection::open(&network, addr) {
            Ok(connection) => return connection.exchange(message),
            Err(failure) => last_failure = Some(failure),
        }
    }
    Err(last_failure.expect("a lookup gives at least one address"))
}

/// A connected socket and its streams.
///
/// Fields drop in declaration order: the streams go before the socket they came from.
struct Connection {
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    addr: SocketAddr,
}

impl Connection {
    /// Connects to `addr` through `network`, waiting until the connection is made or refused.
    fn open(network: &Network, addr: SocketAddr) -> Result<Self, Failure> {
        let socket =
            create_tcp_socket(wasi_net::family(&addr)).or_fail("create-tcp-socket", addr)?;
        // Declared after `socket`, so dropped before it, as a child must be; it is only needed
        // while connecting.
        let ready: Pollable = socket.subscribe();
        socket
            .start_connect(network, wasi_net::to_wasi(addr))
            .or_fail("connect", addr)?;
        let (input, output) =
            wasi_net::block_on(&ready, || socket.finish_connect()).or_fail("connect", addr)?;
        Ok(Self {
            input,
            output,
            socket,
            addr,
        })
    }

    /// Sends `message`, shuts down the sending side, and copies the answer to stdout.
    fn exchange(self, message: &[u8]) -> Result<(), Failure> {
        for chunk in message.chunks(WRITE_CHUNK) {
            self.output
                .blocking_write_and_flush(chunk)
                .or_fail("write", self.addr)?;
        }
        self.socket
            .shutdown(ShutdownType::Send)
            .or_fail("shutdown", self.addr)?;

        let mut stdout = io::stdout().lock();
        loop {
            match self.input.blocking_read(READ_SIZE) {
                Ok(bytes) => stdout.write_all(&bytes).or_fail("write", "stdout")?,
                Err(StreamError::Closed) => break,
                Err(error) => return Err(error).or_fail("read", self.addr),
            }
        }
        stdout.flush().or_fail("write", "stdout")
    }
}
