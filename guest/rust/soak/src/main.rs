//! `soak TCP_ECHO UDP_ECHO NAME DENIED [MIX]`: a client that mixes every kind of network use, in
//! batches asked for on stdin, for `capnet-bench --soak`.
//!
//! For each line `N` read from stdin it makes `N` rounds, then prints `done N` and waits for
//! the next line; at the end of stdin it exits 0. One round:
//!
//! - connects to `TCP_ECHO`, writes 1 KiB, reads the echo back, checks it and closes;
//! - binds a new UDP socket on `127.0.0.1:0`, sends 64 bytes to `UDP_ECHO`, reads the echo back,
//!   checks it and closes;
//! - looks `NAME` up and connects to the first answer on `TCP_ECHO`'s port, writes 1 byte and
//!   reads it back (the answer must be an address the policy lets it reach);
//! - looks up `private.NAME`, which must fail: its answer is dropped by the DNS rebinding
//!   defence;
//! - connects to `DENIED`, which the policy must refuse (`access-denied`).
//!
//! `MIX` (default `tulpd`) picks the steps by their letters: `t` TCP echo, `u` UDP echo, `l`
//! lookup and connect, `p` dropped lookup, `d` refused connect; to find which one a growth
//! comes from.
//!
//! Any other outcome prints `error: OPERATION ADDR: CAUSE` and exits 1.

#![forbid(unsafe_code)]

use guest_cli::{Failure, OrFail};
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tcp, udp, name, denied, mix) = match args.as_slice() {
        [tcp, udp, name, denied] => (tcp, udp, name, denied, "tulpd"),
        [tcp, udp, name, denied, mix] => (tcp, udp, name, denied, mix.as_str()),
        _ => {
            return guest_cli::usage(
                "soak TCP_ECHO UDP_ECHO NAME DENIED [MIX]",
                "expected four or five arguments",
            );
        }
    };
    let parse = |a: &str| a.parse::<SocketAddr>();
    let (Ok(tcp), Ok(udp), Ok(denied)) = (parse(tcp), parse(udp), parse(denied)) else {
        return guest_cli::usage(
            "soak TCP_ECHO UDP_ECHO NAME DENIED",
            "addresses are IP:PORT",
        );
    };
    match run(tcp, udp, name, denied, mix) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn run(
    tcp: SocketAddr,
    udp: SocketAddr,
    name: &str,
    denied: SocketAddr,
    mix: &str,
) -> Result<(), Failure> {
    let step = |c: char| mix.contains(c);
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 251) as u8).collect();
    for line in std::io::stdin().lock().lines() {
        let line = line.or_fail("read", "stdin")?;
        let rounds: u64 = line
            .trim()
            .parse()
            .map_err(|_| Failure::new("parse", &line, "not a number of rounds"))?;
        for _ in 0..rounds {
            if step('t') {
                echo_tcp(tcp, &payload)?;
            }
            if step('u') {
                echo_udp(udp, &payload[..64])?;
            }
            if step('l') {
                lookup_and_connect(name, tcp.port())?;
            }
            if step('p') {
                lookup_dropped(name)?;
            }
            if step('d') {
                connect_denied(denied)?;
            }
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "done {rounds}").or_fail("write", "stdout")?;
        out.flush().or_fail("write", "stdout")?;
    }
    Ok(())
}

/// Connects, writes `payload`, reads the same bytes back, closes.
fn echo_tcp(addr: SocketAddr, payload: &[u8]) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(addr).or_fail("connect", addr)?;
    stream.write_all(payload).or_fail("write", addr)?;
    let mut back = vec![0; payload.len()];
    stream.read_exact(&mut back).or_fail("read", addr)?;
    if back != payload {
        return Err(Failure::new("read", addr, "the echo differs"));
    }
    Ok(())
}

/// Sends `payload` from a new socket and reads the same bytes back.
///
/// Each receive leaves the datagram's bytes allocated in this guest's memory: std's
/// `recv_from` is wasi-libc's `recvfrom`, whose generated bindings free the list of datagrams
/// but not each one's `data` (README, "Fuzzing and soak"). Kept as users write it.
fn echo_udp(addr: SocketAddr, payload: &[u8]) -> Result<(), Failure> {
    let socket = UdpSocket::bind("127.0.0.1:0").or_fail("bind", "127.0.0.1:0")?;
    socket.send_to(payload, addr).or_fail("send", addr)?;
    let mut back = [0; 128];
    let (n, from) = socket.recv_from(&mut back).or_fail("receive", addr)?;
    if from != addr || back[..n] != *payload {
        return Err(Failure::new("receive", addr, "the echo differs"));
    }
    Ok(())
}

/// Looks `name` up and echoes one byte through the first answer.
fn lookup_and_connect(name: &str, port: u16) -> Result<(), Failure> {
    let addr = (name, port)
        .to_socket_addrs()
        .or_fail("lookup", name)?
        .next()
        .ok_or_else(|| Failure::new("lookup", name, "no address"))?;
    echo_tcp(addr, b"x")
}

/// Looks up `private.NAME`, whose only answer the DNS rebinding defence must drop.
fn lookup_dropped(name: &str) -> Result<(), Failure> {
    let private = format!("private.{name}");
    match (private.as_str(), 80).to_socket_addrs() {
        Err(_) => Ok(()),
        Ok(answers) => {
            let answers: Vec<SocketAddr> = answers.collect();
            Err(Failure::new(
                "lookup",
                &private,
                format!("answered {answers:?}, which should have been dropped"),
            ))
        }
    }
}

/// Connects to `addr`, which the policy must refuse.
fn connect_denied(addr: SocketAddr) -> Result<(), Failure> {
    match TcpStream::connect(addr) {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(Failure::new(
            "connect",
            addr,
            format!("{e}, not access-denied"),
        )),
        Ok(_) => Err(Failure::new(
            "connect",
            addr,
            "connected, not access-denied",
        )),
    }
}
