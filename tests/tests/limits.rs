//! Per-instance limits: a guest that takes every socket it can is stopped at its own limits
//! with the WIT's code, and another instance in the same host process goes on serving.

use capnet::CapnetCtx;
use capnet::policy::Policy;
use capnet_tests::{Running, ctx, pong_server};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A native server that accepts every connection and keeps it until the peer closes it;
/// counts the connections open and the ones that ever arrived.
async fn holding_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (open_, arrived_) = (open.clone(), arrived.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            arrived_.fetch_add(1, Ordering::SeqCst);
            open_.fetch_add(1, Ordering::SeqCst);
            let open = open_.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf).await, Ok(1..)) {}
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open, arrived)
}

/// Median time of `rounds` fresh connections to an echo server, each echoing one byte.
async fn median_round_trip(addr: SocketAddr, rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr).await.expect("the server accepts");
        stream.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .expect("the echo comes back");
        assert_eq!(&byte, b"x");
        times.push(start.elapsed());
    }
    times.sort();
    times[rounds / 2]
}

async fn wait_for_line(guest: &Running, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = guest.stdout().lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} line; stdout:\n{}\nstderr:\n{}",
            guest.stdout(),
            guest.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn policy_toml(text: &str) -> Policy {
    Policy::builder()
        .toml("policy.toml", text)
        .expect("test policy")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_instance_stops_at_its_limits_while_another_keeps_accepting_and_connecting() {
    // The server instance, with the default limits.
    let server_policy = policy_toml("[allow]\nlisten = [\"127.0.0.1:0\"]\n");
    let server = Running::start("poll-echo", &["127.0.0.1:0"], ctx(server_policy));
    let echo = server.listening().await;
    let before = median_round_trip(echo, 50).await;

    // The flooding instance: 32 connections, 64 sockets.
    let (sink, open, arrived) = holding_server().await;
    let flood_policy = policy_toml(&format!(
        "[allow]\nconnect = [\"{sink}\"]\nudp-bind = [\"127.0.0.1\"]\n\
         [limits]\nsockets = 64\nconnections = 32\n"
    ));
    let flood = Running::start(
        "flood",
        &[&sink.to_string(), "4000"],
        CapnetCtx::builder()
            .policy(flood_policy)
            .instance_name("flood")
            .build(),
    );
    let tcp = wait_for_line(&flood, "tcp:").await;
    let udp = wait_for_line(&flood, "udp:").await;
    assert_eq!(tcp, "tcp: 32 connected, then connect: new-socket-limit");
    // The 33rd TCP socket was given back when its connect was refused: 32 more sockets.
    assert_eq!(
        udp,
        "udp: 32 bound, then create-udp-socket: new-socket-limit"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrived.load(Ordering::SeqCst) < 32 {
        assert!(
            Instant::now() < deadline,
            "the 32 connections reach the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // While the flood holds all it got, the other instance accepts and connects as before.
    let during = median_round_trip(echo, 50).await;
    assert_eq!(
        arrived.load(Ordering::SeqCst),
        32,
        "a connect past the limit never reaches the network"
    );
    let (pong, served) = pong_server().await;
    let client_policy = policy_toml(&format!("[allow]\nconnect = [\"{pong}\"]\n"));
    let client = Running::start(
        "tcp-client",
        &[&pong.to_string(), "ping"],
        ctx(client_policy),
    );
    let done = client.finish().await;
    assert_eq!(
        (done.code, done.stdout.as_str()),
        (0, "pong:ping"),
        "{}",
        done.stderr
    );
    assert_eq!(served.await.unwrap(), 4);
    println!(
        "median accept+echo round trip of the other instance: {before:?} before the flood, {during:?} during it"
    );

    // The flood lets go of everything when it is done: every connection it held closes.
    let done = flood.finish().await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stdout.ends_with("released\n"), "{}", done.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.load(Ordering::SeqCst) > 0 {
        assert!(Instant::now() < deadline, "the held connections close");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_under_one_policy_each_count_their_own_sockets() {
    let (sink, _open, arrived) = holding_server().await;
    let policy = Arc::new(policy_toml(&format!(
        "[allow]\nconnect = [\"{sink}\"]\nudp-bind = [\"127.0.0.1\"]\n[limits]\nsockets = 3\n"
    )));
    let floods: Vec<Running> = (0..2)
        .map(|_| {
            let capnet = CapnetCtx::builder().policy(policy.clone()).build();
            Running::start("flood", &[&sink.to_string(), "0"], capnet)
        })
        .collect();
    for flood in floods {
        let done = flood.finish().await;
        assert_eq!(
            done.stdout,
            "tcp: 3 connected, then create-tcp-socket: new-socket-limit\n\
             udp: 0 bound, then create-udp-socket: new-socket-limit\nreleased\n",
            "{}",
            done.stderr
        );
    }
    // Each connect completed in the kernel; the server may be accepting the last ones still.
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrived.load(Ordering::SeqCst) < 6 {
        assert!(
            Instant::now() < deadline,
            "all six connections reach the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(arrived.load(Ordering::SeqCst), 6);
}
