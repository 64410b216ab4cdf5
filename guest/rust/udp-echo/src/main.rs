//! `udp-echo ADDR [MAX_DATAGRAMS]`: a UDP echo server written against plain `std::net`.
//!
//! Binds `ADDR` with `UdpSocket::bind`, prints `listening on <actual local address>`, then sends
//! every datagram it receives back to its sender, unchanged. After `MAX_DATAGRAMS` datagrams it
//! exits 0 (default: forever). A failed bind prints `error: bind ADDR: <cause>` and exits 1.

#![forbid(unsafe_code)]

use guest_cli::{OrFail, ServerArgs};
use std::net::UdpSocket;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match ServerArgs::from_env("udp-echo") {
        Ok(args) => args,
        Err(code) => return code,
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn serve(args: &ServerArgs) -> Result<(), guest_cli::Failure> {
    let socket = UdpSocket::bind(&args.addr).or_fail("bind", &args.addr)?;
    let local = socket.local_addr().or_fail("local-address", &args.addr)?;
    guest_cli::announce(local);
    // The largest UDP payload: nothing that arrives is cut short.
    let mut buf = vec![0; 65_535];
    let mut echoed = 0;
    while !args.done(echoed) {
        let (len, peer) = socket.recv_from(&mut buf).or_fail("receive", local)?;
        socket.send_to(&buf[..len], peer).or_fail("send", peer)?;
        echoed += 1;
    }
    Ok(())
}
