//! `p3-in-flight KIND N ...`, for `wasi:sockets@0.3.0`: keeps N calls of one kind in flight at
//! once, each in a task of its own, as a guest that wants the host to hold much for it would.
//! It prints `waiting on ADDR` and waits for a datagram to ADDR (so a test can measure the
//! host before the calls), then sets up its sockets and starts the calls. Once every call has
//! started it prints `in flight: N started, R refused (CODE)` (those the
//! host refused at once), then waits for the rest and prints `done: K ok, R refused (CODE)`.
//!
//! - `udp-receive N SOCKETS`: binds SOCKETS UDP sockets to 127.0.0.1:0 and prints `listening on
//!   ADDR` for each (their receive buffers set to 4 MiB, what the kernel allows of it), then
//!   keeps N receives in flight, spread over them.
//! - `udp-send N SOCKETS SIZE PEER`: N sends of SIZE bytes to PEER, spread over SOCKETS
//!   unbound sockets (the first send of each binds it).
//! - `tcp-connect N PEER`: N sockets connecting to PEER at once.
//! - `tcp-receive N PEER`: N connections to PEER, each with a read of its receive stream in
//!   flight; done when every stream ended.
//!
//! `p3-in-flight soak TCP_ECHO UDP_ECHO`, for `capnet-bench --soak`'s 0.3 step: for each line
//! `N` read from stdin it makes `N` rounds, then prints `done N`; at the end of stdin it exits
//! 0. One round keeps calls in flight: on a new UDP socket it starts 20 receives (the host's
//! `datagrams` limit, 16 under the soak, refuses 4 with `out-of-memory`), then sends 16
//! datagrams of 64 bytes to UDP_ECHO at once, whose echoes complete the receives; and 4 TCP
//! connections to TCP_ECHO at once each write 1 KiB and read it back.
//!
//! A failure of a setup step prints `error: OPERATION: CODE` and exits 1.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "command",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use p3_net::wasi::clocks::monotonic_clock;
use p3_net::wasi::sockets::types::{ErrorCode, IpAddressFamily, TcpSocket, UdpSocket};
use p3_net::{code_name, from_wit, to_wit};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;

struct InFlight;

/// What the calls came to: how many succeeded, and how many failed with each code.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: BTreeMap<String, usize>,
}

impl Tally {
    fn count(&mut self, result: Result<(), ErrorCode>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(code) => *self.failed.entry(code_name(&code)).or_default() += 1,
        }
    }

    fn refused(&self) -> String {
        let refused: usize = self.failed.values().sum();
        let codes: Vec<&str> = self.failed.keys().map(String::as_str).collect();
        format!("{refused} refused ({})", codes.join(", "))
    }
}

fn fail(operation: &str, code: ErrorCode) {
    eprintln!("error: {operation}: {}", code_name(&code));
}

fn parse<T: std::str::FromStr>(what: &str, text: Option<&String>) -> Result<T, ()> {
    text.and_then(|t| t.parse().ok()).ok_or_else(|| {
        eprintln!("error: expected {what}\nusage: p3-in-flight KIND N ...");
    })
}

impl bindings::exports::wasi::cli::run::Guest for InFlight {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let kind = args.first().cloned().unwrap_or_default();
        if kind == "soak" {
            let tcp: SocketAddr = parse("TCP_ECHO", args.get(1))?;
            let udp: SocketAddr = parse("UDP_ECHO", args.get(2))?;
            return soak(tcp, udp).await;
        }
        let n: usize = parse("N", args.get(1))?;
        let tally = Rc::new(RefCell::new(Tally::default()));
        let mut tasks = Vec::with_capacity(n);
        waiting()?.await?;
        match kind.as_str() {
            "udp-receive" => {
                let sockets: usize = parse("SOCKETS", args.get(2))?;
                let mut bound = Vec::new();
                for _ in 0..sockets.max(1) {
                    let socket =
                        UdpSocket::create(IpAddressFamily::Ipv4).map_err(|c| fail("create", c))?;
                    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
                    socket.bind(to_wit(local)).map_err(|c| fail("bind", c))?;
                    let _ = socket.set_receive_buffer_size(4 << 20);
                    let at = socket
                        .get_local_address()
                        .map_err(|c| fail("local-address", c))?;
                    println!("listening on {}", from_wit(at));
                    bound.push(Rc::new(socket));
                }
                for i in 0..n {
                    let socket = bound[i % bound.len()].clone();
                    let tally = tally.clone();
                    tasks.push(wit_bindgen::spawn_local(async move {
                        let got = socket.receive().await;
                        tally.borrow_mut().count(got.map(drop));
                    }));
                }
            }
            "udp-send" => {
                let sockets: usize = parse("SOCKETS", args.get(2))?;
                let size: usize = parse("SIZE", args.get(3))?;
                let peer: SocketAddr = parse("PEER", args.get(4))?;
                let unbound: Vec<Rc<UdpSocket>> = (0..sockets.max(1))
                    .map(|_| UdpSocket::create(IpAddressFamily::Ipv4).map(Rc::new))
                    .collect::<Result<_, _>>()
                    .map_err(|c| fail("create", c))?;
                for i in 0..n {
                    let socket = unbound[i % unbound.len()].clone();
                    let tally = tally.clone();
                    tasks.push(wit_bindgen::spawn_local(async move {
                        let datagram = vec![i as u8; size];
                        let sent = socket.send(datagram, Some(to_wit(peer))).await;
                        tally.borrow_mut().count(sent);
                    }));
                }
            }
            "tcp-connect" | "tcp-receive" => {
                let peer: SocketAddr = parse("PEER", args.get(2))?;
                let read = kind == "tcp-receive";
                for _ in 0..n {
                    let tally = tally.clone();
                    tasks.push(wit_bindgen::spawn_local(async move {
                        let result = connect_and_read(peer, read).await;
                        tally.borrow_mut().count(result);
                    }));
                }
            }
            _ => {
                eprintln!(
                    "error: unknown KIND {kind:?} (udp-receive, udp-send, tcp-connect, tcp-receive)"
                );
                return Err(());
            }
        }
        // Every task runs to its first wait meanwhile: each call has started, and those the
        // host refused at once are counted.
        monotonic_clock::wait_for(200_000_000).await;
        println!("in flight: {n} started, {}", tally.borrow().refused());
        let _ = std::io::stdout().flush();
        for task in tasks {
            task.await;
        }
        let tally = tally.borrow();
        println!("done: {} ok, {}", tally.ok, tally.refused());
        Ok(())
    }
}

/// Rounds in batches asked for on stdin; see the module's doc.
async fn soak(tcp: SocketAddr, udp: SocketAddr) -> Result<(), ()> {
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| eprintln!("error: reading stdin: {e}"))?;
        let rounds: usize = parse("N", Some(&line.trim().to_owned()))?;
        for _ in 0..rounds {
            udp_round(udp).await?;
            let connections: Vec<_> = (0..4)
                .map(|_| wit_bindgen::spawn_local(echo_round(tcp)))
                .collect();
            for connection in connections {
                connection.await.unwrap_or(Err(()))?;
            }
        }
        println!("done {rounds}");
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

/// 20 receives in flight on a new socket (4 refused), then 16 sends at once to `echo`.
async fn udp_round(echo: SocketAddr) -> Result<(), ()> {
    let socket = Rc::new(UdpSocket::create(IpAddressFamily::Ipv4).map_err(|c| fail("create", c))?);
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(to_wit(local)).map_err(|c| fail("bind", c))?;
    let receives: Vec<_> = (0..20)
        .map(|_| {
            let socket = socket.clone();
            wit_bindgen::spawn_local(async move { socket.receive().await.map(|(d, _)| d.len()) })
        })
        .collect();
    let sends: Vec<_> = (0..16u8)
        .map(|i| {
            let socket = socket.clone();
            wit_bindgen::spawn_local(
                async move { socket.send(vec![i; 64], Some(to_wit(echo))).await },
            )
        })
        .collect();
    for send in sends {
        let sent = send
            .await
            .ok_or_else(|| eprintln!("error: send: cancelled"))?;
        sent.map_err(|c| fail("send", c))?;
    }
    let mut tally = Tally::default();
    for receive in receives {
        match receive
            .await
            .ok_or_else(|| eprintln!("error: receive: cancelled"))?
        {
            Ok(64) => tally.ok += 1,
            Ok(n) => {
                eprintln!("error: receive: {n} bytes, not 64");
                return Err(());
            }
            Err(code) => tally.count(Err(code)),
        }
    }
    if tally.ok != 16 || tally.refused() != "4 refused (out-of-memory)" {
        eprintln!("error: receive: {} ok, {}", tally.ok, tally.refused());
        return Err(());
    }
    Ok(())
}

/// Connects to `echo`, writes 1 KiB and reads it back.
async fn echo_round(echo: SocketAddr) -> Result<(), ()> {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).map_err(|c| fail("create", c))?;
    socket
        .connect(to_wit(echo))
        .await
        .map_err(|c| fail("connect", c))?;
    let (mut to_peer, outgoing) = p3_net::wit_stream::new::<u8>();
    let sent = socket.send(outgoing);
    let (mut from_peer, received) = socket.receive();
    let request = vec![7u8; 1024];
    let rest = to_peer.write_all(request).await;
    drop(to_peer);
    if !rest.is_empty() {
        eprintln!("error: send: the stream closed");
        return Err(());
    }
    sent.await.map_err(|c| fail("send", c))?;
    let mut echoed = 0;
    let mut buffer = Vec::with_capacity(4096);
    while echoed < 1024 {
        let (result, chunk) = from_peer.read(buffer).await;
        echoed += chunk.len();
        buffer = chunk;
        buffer.clear();
        if let wit_bindgen::StreamResult::Dropped = result {
            break;
        }
    }
    drop(from_peer);
    let _ = received.await;
    if echoed != 1024 {
        eprintln!("error: receive: {echoed} bytes echoed, not 1024");
        return Err(());
    }
    Ok(())
}

/// Binds the socket whose first datagram starts the calls and prints `waiting on ADDR`; the
/// returned future ends when that datagram is there.
fn waiting() -> Result<impl std::future::Future<Output = Result<(), ()>>, ()> {
    let control = UdpSocket::create(IpAddressFamily::Ipv4).map_err(|c| fail("create", c))?;
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    control.bind(to_wit(local)).map_err(|c| fail("bind", c))?;
    let at = control
        .get_local_address()
        .map_err(|c| fail("local-address", c))?;
    println!("waiting on {}", from_wit(at));
    let _ = std::io::stdout().flush();
    Ok(async move {
        control.receive().await.map_err(|c| fail("receive", c))?;
        Ok(())
    })
}

/// Connects to `peer`; with `read`, then reads its receive stream to the end.
async fn connect_and_read(peer: SocketAddr, read: bool) -> Result<(), ErrorCode> {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4)?;
    socket.connect(to_wit(peer)).await?;
    if read {
        let (mut bytes, done) = socket.receive();
        let mut buffer = Vec::with_capacity(4096);
        loop {
            let (result, chunk) = bytes.read(buffer).await;
            buffer = chunk;
            buffer.clear();
            if let wit_bindgen::StreamResult::Dropped = result {
                break;
            }
        }
        done.await?;
    }
    Ok(())
}

bindings::export!(InFlight with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
