//! `p1-echo [CONNS [FD]]`: the classic WASI preview 1 server, built for `wasm32-wasip1` and run
//! unchanged under `wasmtime run --tcplisten ADDR` or `capnet run --tcplisten ADDR`.
//!
//! Preview 1 has no bind: the runtime pre-opens the listener and the module takes it as
//! descriptor 3 (`TcpListener::from_raw_fd(3)`; FD names another, a later pre-open).
//! Connections are served one at a time, with
//! blocking `std::net` calls: every byte a client sends is written back until it shuts down
//! its write side. For each connection the server prints `connection N: echoed B bytes`, so a
//! test counts what reached the module; after CONNS connections (default: serve forever) it
//! exits 0.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;

/// The descriptor of the first pre-opened socket, as `wasmtime run --tcplisten` numbers it.
const FIRST_PREOPEN: i32 = 3;

fn main() {
    let mut args = std::env::args().skip(1);
    let conns: Option<u64> = args.next().map(|n| n.parse().expect("CONNS is a number"));
    let fd = args
        .next()
        .map_or(FIRST_PREOPEN, |fd| fd.parse().expect("FD is a number"));
    // SAFETY: the runtime hands the descriptor over as a listening socket and nothing else owns
    // it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let mut served = 0;
    while conns.is_none_or(|n| served < n) {
        let (mut stream, _) = listener.accept().expect("accept");
        served += 1;
        match echo(&mut stream) {
            Ok(bytes) => println!("connection {served}: echoed {bytes} bytes"),
            Err(e) => eprintln!("connection {served}: {e}"),
        }
    }
}

/// Writes back what `stream` sends until the peer closes its write side: the bytes echoed.
fn echo(stream: &mut TcpStream) -> std::io::Result<usize> {
    let mut buffer = [0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buffer[..n])?;
        total += n;
    }
}
