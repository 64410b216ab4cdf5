//! `udp-rounds ECHO ROUNDS WAY [SIZE]`: the soak's UDP step alone, ROUNDS times, with datagrams
//! of SIZE bytes (default 64, at most 1024), then prints how much the guest's own linear memory
//! grew: `memory START -> END bytes, PER bytes a round`.
//!
//! WAY picks how a round is made, to tell where a growth comes from:
//! - `std`: a new `std::net::UdpSocket` bound to `127.0.0.1:0`, 64 bytes sent to ECHO and read
//!   back, closed (the soak's step; std goes through wasi-libc);
//! - `std-reuse`: one `std::net::UdpSocket` for every round;
//! - `std-bind`: a new std socket bound and closed, nothing sent;
//! - `std-send`: a new std socket bound, 64 bytes sent, closed without reading the echo;
//! - `wasi`: the `std` round in `wasi:sockets` calls made directly (no wasi-libc): create,
//!   bind, `stream`, send, wait, receive, drop.
//!
//! Any failure prints `error: OPERATION ADDR: CAUSE` and exits 1.

#![forbid(unsafe_code)]

use guest_cli::{Failure, OrFail};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::network::{ErrorCode, Network};
use wasi_net::wasi::sockets::udp::OutgoingDatagram;
use wasi_net::wasi::sockets::udp_create_socket::create_udp_socket;

/// The largest datagram a round sends.
const MAX_SIZE: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    const USAGE: &str = "udp-rounds ECHO ROUNDS WAY [SIZE]";
    let (echo, rounds, way, size) = match args.as_slice() {
        [echo, rounds, way] => (echo, rounds, way, "64"),
        [echo, rounds, way, size] => (echo, rounds, way, size.as_str()),
        _ => return guest_cli::usage(USAGE, "expected three or four arguments"),
    };
    let (Ok(echo), Ok(rounds), Ok(size @ 1..=MAX_SIZE)) = (
        echo.parse::<SocketAddr>(),
        rounds.parse::<u64>(),
        size.parse::<usize>(),
    ) else {
        return guest_cli::usage(USAGE, "ECHO is IP:PORT, ROUNDS a number, SIZE 1 to 1024");
    };
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let payload = payload.as_slice();
    let network = instance_network();
    let round = |n: &Network, reused: &UdpSocket| -> Result<(), Failure> {
        match way.as_str() {
            "std" => std_round(echo, payload, None, true),
            "std-reuse" => std_round(echo, payload, Some(reused), true),
            "std-bind" => UdpSocket::bind("127.0.0.1:0")
                .map(drop)
                .or_fail("bind", "127.0.0.1:0"),
            "std-send" => std_round(echo, payload, None, false),
            "wasi" => wasi_round(n, echo, payload).or_fail("wasi round", echo),
            other => Err(Failure::new("parse", other, "no such way")),
        }
    };
    let reused = match UdpSocket::bind("127.0.0.1:0").or_fail("bind", "127.0.0.1:0") {
        Ok(s) => s,
        Err(failure) => return failure.exit(),
    };
    // One round first, so what a first use sets up once is not counted.
    if let Err(failure) = round(&network, &reused) {
        return failure.exit();
    }
    let start = memory();
    for _ in 0..rounds {
        if let Err(failure) = round(&network, &reused) {
            return failure.exit();
        }
    }
    let end = memory();
    println!(
        "memory {start} -> {end} bytes, {:.1} bytes a round",
        (end - start) as f64 / rounds.max(1) as f64
    );
    ExitCode::SUCCESS
}

/// The size of the guest's linear memory (memory 0, where its heap is).
fn memory() -> usize {
    core::arch::wasm32::memory_size::<0>() * 65_536
}

fn std_round(
    echo: SocketAddr,
    payload: &[u8],
    reused: Option<&UdpSocket>,
    read: bool,
) -> Result<(), Failure> {
    let fresh;
    let socket = match reused {
        Some(s) => s,
        None => {
            fresh = UdpSocket::bind("127.0.0.1:0").or_fail("bind", "127.0.0.1:0")?;
            &fresh
        }
    };
    socket.send_to(payload, echo).or_fail("send", echo)?;
    if read {
        let mut back = [0; MAX_SIZE];
        let (n, _) = socket.recv_from(&mut back).or_fail("receive", echo)?;
        if back[..n] != *payload {
            return Err(Failure::new("receive", echo, "the echo differs"));
        }
    }
    Ok(())
}

fn wasi_round(network: &Network, echo: SocketAddr, payload: &[u8]) -> Result<(), ErrorCode> {
    let socket = create_udp_socket(wasi_net::family(&echo))?;
    wasi_net::udp_bind(&socket, network, "127.0.0.1:0".parse().unwrap())?;
    let (incoming, outgoing) = socket.stream(None)?;
    let datagram = OutgoingDatagram {
        data: payload.to_vec(),
        remote_address: Some(wasi_net::to_wasi(echo)),
    };
    outgoing.subscribe().block();
    outgoing.check_send()?;
    outgoing.send(&[datagram])?;
    let ready = incoming.subscribe();
    loop {
        let got = incoming.receive(1)?;
        if let Some(d) = got.first() {
            if d.data != payload {
                return Err(ErrorCode::Unknown);
            }
            break;
        }
        ready.block();
    }
    Ok(())
}
