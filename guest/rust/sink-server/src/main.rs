//! `sink-server ADDR [MAX_CONNS]`: reads each connection to its end, discarding the bytes, then
//! answers with the number of bytes it read (`<count>\n`) and closes. Plain `std::net`, one
//! connection at a time; the benchmark's receive-throughput guest.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use guest_cli::{Failure, OrFail};

fn main() -> ExitCode {
    let mut buffer = vec![0; 256 * 1024];
    guest_cli::run_std("sink-server", |mut stream, peer| {
        sink(&mut stream, peer, &mut buffer)
    })
}

fn sink(stream: &mut TcpStream, peer: SocketAddr, buffer: &mut [u8]) -> Result<(), Failure> {
    let mut total: u64 = 0;
    loop {
        match stream.read(buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::new("read", peer, e)),
        }
    }
    writeln!(stream, "{total}").or_fail("write", peer)
}
