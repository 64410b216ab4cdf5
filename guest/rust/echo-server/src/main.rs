//! `echo-server ADDR [MAX_CONNS]`: a TCP echo server written against plain `std::net`.
//!
//! Binds `ADDR` with `TcpListener::bind`, prints `listening on <actual local address>`, then
//! serves connections one at a time: every byte a client sends is written back until the client
//! shuts down its write side, and then the server closes the connection. `std` on
//! `wasm32-wasip2` has no threads, so a second client waits in the listen backlog until the
//! first is done; `poll-echo` is the guest that serves many at once.
//!
//! After `MAX_CONNS` connections it exits 0 (default: serve forever). A failed bind prints
//! `error: bind ADDR: <cause>` to stderr and exits 1.
//!
//! This guest exercises the `wasi:sockets` imports that Rust's `std` (through wasi-libc) links.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use guest_cli::{Failure, OrFail};

/// How much is read (and then written back) at a time.
const BUFFER_SIZE: usize = 64 * 1024;

fn main() -> ExitCode {
    let mut buffer = vec![0; BUFFER_SIZE];
    guest_cli::run_std("echo-server", |mut stream, peer| {
        echo(&mut stream, peer, &mut buffer)
    })
}

/// Writes back everything read from `stream` until the peer closes its write side; the
/// connection is closed when `stream` is dropped.
fn echo(stream: &mut TcpStream, peer: SocketAddr, buffer: &mut [u8]) -> Result<(), Failure> {
    loop {
        let n = match stream.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::new("read", peer, e)),
        };
        stream.write_all(&buffer[..n]).or_fail("write", peer)?;
    }
    stream.flush().or_fail("write", peer)
}
