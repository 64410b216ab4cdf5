//! `poll-mix TCP_ADDR UDP_ADDR TIMER_MS`: one `wasi:io/poll.poll` waits on a TCP listener, a UDP
//! socket, a monotonic-clock timer and stdin together, and reports each wake-up.
//!
//! It binds and listens on `TCP_ADDR`, binds `UDP_ADDR`, prints `listening on <tcp>` and
//! `udp on <udp>`, arms a timer of `TIMER_MS` milliseconds, then polls all four. For each ready
//! pollable it prints one line and consumes the event so it does not fire again:
//!
//! - `ready: timer` (the timer is not re-armed),
//! - `ready: tcp <peer>` (the connection is accepted and closed),
//! - `ready: udp <payload>` (the datagrams are received),
//! - `ready: stdin <line>` (what was read, trimmed).
//!
//! It exits 0 once each of the four has fired once. Any failure prints
//! `error: OPERATION ADDR: CODE` and exits 1. The test drives the events one at a time and
//! checks the guest woke for exactly the one it caused.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use guest_cli::{Failure, OrFail};
use wasi_net::wasi::cli::stdin::get_stdin;
use wasi_net::wasi::clocks::monotonic_clock::subscribe_duration;
use wasi_net::wasi::io::poll::poll;
use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi_net::wasi::sockets::udp_create_socket::create_udp_socket;
use wasi_net::{block_on, family, from_wasi, to_wasi};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tcp, udp, ms] = args.as_slice() else {
        return guest_cli::usage(
            "poll-mix TCP_ADDR UDP_ADDR TIMER_MS",
            "expected three arguments",
        );
    };
    match run(tcp, udp, ms) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn parse(addr: &str) -> Result<SocketAddr, Failure> {
    addr.parse()
        .map_err(|_| Failure::new("parse", addr, "not an IP socket address"))
}

fn run(tcp_addr: &str, udp_addr: &str, ms: &str) -> Result<(), Failure> {
    let ms: u64 = ms
        .parse()
        .map_err(|_| Failure::new("parse", ms, "not a number of milliseconds"))?;
    let (tcp_at, udp_at) = (parse(tcp_addr)?, parse(udp_addr)?);
    let network = instance_network();

    let listener = create_tcp_socket(family(&tcp_at)).or_fail("create-tcp-socket", tcp_at)?;
    let listener_ready = listener.subscribe();
    listener
        .start_bind(&network, to_wasi(tcp_at))
        .or_fail("bind", tcp_at)?;
    block_on(&listener_ready, || listener.finish_bind()).or_fail("bind", tcp_at)?;
    listener.start_listen().or_fail("listen", tcp_at)?;
    block_on(&listener_ready, || listener.finish_listen()).or_fail("listen", tcp_at)?;
    let tcp_local = from_wasi(listener.local_address().or_fail("local-address", tcp_at)?);

    let udp = create_udp_socket(family(&udp_at)).or_fail("create-udp-socket", udp_at)?;
    let udp_ready = udp.subscribe();
    udp.start_bind(&network, to_wasi(udp_at))
        .or_fail("bind", udp_at)?;
    block_on(&udp_ready, || udp.finish_bind()).or_fail("bind", udp_at)?;
    let (incoming, _outgoing) = udp.stream(None).or_fail("stream", udp_at)?;
    let incoming_ready = incoming.subscribe();
    let udp_local = from_wasi(udp.local_address().or_fail("local-address", udp_at)?);

    say(&format!("listening on {tcp_local}"));
    say(&format!("udp on {udp_local}"));

    let stdin = get_stdin();
    let stdin_ready = stdin.subscribe();
    let timer = subscribe_duration(ms * 1_000_000);

    let (mut timer_fired, mut tcp_fired, mut udp_fired, mut stdin_fired) =
        (false, false, false, false);
    let mut line = Vec::new();
    while !(timer_fired && tcp_fired && udp_fired && stdin_fired) {
        // Only what has not fired yet is waited on, so each event is seen exactly once.
        let mut waiting = Vec::new();
        let mut names = Vec::new();
        for (fired, pollable, name) in [
            (timer_fired, &timer, "timer"),
            (tcp_fired, &listener_ready, "tcp"),
            (udp_fired, &incoming_ready, "udp"),
            (stdin_fired, &stdin_ready, "stdin"),
        ] {
            if !fired {
                waiting.push(pollable);
                names.push(name);
            }
        }
        for index in poll(&waiting) {
            match names[index as usize] {
                "timer" => {
                    timer_fired = true;
                    say("ready: timer");
                }
                "tcp" => match listener.accept() {
                    Ok((client, _, _)) => {
                        let peer = client.remote_address().map(from_wasi);
                        tcp_fired = true;
                        say(&format!(
                            "ready: tcp {}",
                            peer.map(|p| p.to_string()).unwrap_or_default()
                        ));
                    }
                    Err(wasi_net::wasi::sockets::network::ErrorCode::WouldBlock) => {}
                    Err(code) => {
                        return Err(Failure::new(
                            "accept",
                            tcp_local,
                            wasi_net::error_name(code),
                        ));
                    }
                },
                "udp" => {
                    let datagrams = incoming.receive(16).or_fail("receive", udp_local)?;
                    if let Some(first) = datagrams.first() {
                        udp_fired = true;
                        say(&format!(
                            "ready: udp {}",
                            String::from_utf8_lossy(&first.data)
                        ));
                    }
                }
                _ => match stdin.read(4096) {
                    Ok(bytes) => {
                        line.extend_from_slice(&bytes);
                        if line.contains(&b'\n') {
                            stdin_fired = true;
                            say(&format!(
                                "ready: stdin {}",
                                String::from_utf8_lossy(&line).trim()
                            ));
                        }
                    }
                    Err(_) => return Err(Failure::new("read", "stdin", "closed")),
                },
            }
        }
    }
    Ok(())
}
