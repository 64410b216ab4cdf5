//! `flood ADDR HOLD_MS`: takes every socket the host will give, the way a runaway or hostile
//! guest would, and reports where the host stopped it.
//!
//! 1. Connects to the TCP server at `ADDR` again and again, keeping every connection, until
//!    a call fails; prints `tcp: N connected, then CALL: CODE`.
//! 2. Creates and binds UDP sockets on `ADDR`'s IP, port 0, keeping them, until a call fails;
//!    prints `udp: M bound, then CALL: CODE`.
//! 3. Holds everything for `HOLD_MS` milliseconds, prints `released`, and exits 0.
//!
//! At most 100,000 of each are tried. The guest calls `wasi:sockets` directly so that the
//! codes are the WIT's (`new-socket-limit`, not an errno). A bad command line exits 2.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi_net::wasi::sockets::udp_create_socket::create_udp_socket;
use wasi_net::{tcp_connect, udp_bind};

const USAGE: &str = "flood ADDR HOLD_MS";

/// Where a flood gives up if the host never stops it.
const MOST: usize = 100_000;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(hold), None) = (args.next(), args.next(), args.next()) else {
        return guest_cli::usage(USAGE, "expected two arguments");
    };
    let (Ok(addr), Ok(hold)) = (addr.parse::<SocketAddr>(), hold.parse::<u64>()) else {
        return guest_cli::usage(USAGE, "ADDR is IP:PORT and HOLD_MS a number");
    };
    let network = instance_network();
    let family = wasi_net::family(&addr);

    let mut connections = Vec::new();
    let stop = loop {
        if connections.len() == MOST {
            break "nothing: the host never refused".to_owned();
        }
        let socket = match create_tcp_socket(family) {
            Ok(socket) => socket,
            Err(code) => break refused("create-tcp-socket", code),
        };
        match tcp_connect(&socket, &network, addr) {
            // Streams first: a child resource must drop before its socket.
            Ok(streams) => connections.push((streams, socket)),
            Err(code) => break refused("connect", code),
        }
    };
    println!("tcp: {} connected, then {stop}", connections.len());

    let mut bound = Vec::new();
    let local = SocketAddr::new(addr.ip(), 0);
    let stop = loop {
        if bound.len() == MOST {
            break "nothing: the host never refused".to_owned();
        }
        let socket = match create_udp_socket(family) {
            Ok(socket) => socket,
            Err(code) => break refused("create-udp-socket", code),
        };
        match udp_bind(&socket, &network, local) {
            Ok(()) => bound.push(socket),
            Err(code) => break refused("bind", code),
        }
    };
    println!("udp: {} bound, then {stop}", bound.len());

    std::thread::sleep(Duration::from_millis(hold));
    drop(connections);
    drop(bound);
    println!("released");
    ExitCode::SUCCESS
}

fn refused(call: &str, code: ErrorCode) -> String {
    format!("{call}: {}", wasi_net::error_name(code))
}
