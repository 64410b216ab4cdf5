//! `udp-client ADDR MESSAGE`: sends MESSAGE in one datagram to ADDR with plain `std::net`, waits
//! for one datagram back and prints it to stdout.
//!
//! The socket is bound to the unspecified address and port 0 first, as `std` requires: capnet
//! allows that ephemeral bind with no `udp-bind` right and checks the send against `udp-send`.
//! A failure prints `error: OPERATION ADDR: <cause>` to stderr and exits 1.

#![forbid(unsafe_code)]

use guest_cli::OrFail;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(message), None) = (args.next(), args.next(), args.next()) else {
        return guest_cli::usage("udp-client ADDR MESSAGE", "expected two arguments");
    };
    match run(&addr, &message) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn run(addr: &str, message: &str) -> Result<(), guest_cli::Failure> {
    let peer: SocketAddr = addr
        .parse()
        .map_err(|_| guest_cli::Failure::new("parse", addr, "not an IP socket address"))?;
    let local = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).or_fail("bind", local)?;
    socket
        .send_to(message.as_bytes(), peer)
        .or_fail("send", peer)?;
    let mut buf = vec![0; 65_535];
    let (len, _) = socket.recv_from(&mut buf).or_fail("receive", peer)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&buf[..len]).or_fail("print", peer)?;
    stdout.flush().or_fail("print", peer)
}
