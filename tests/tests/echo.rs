//! Echo servers on capnet, driven by real tokio clients over loopback.

use capnet::policy::Verdict::Allow;
use capnet_tests::{Running, ctx, pattern, policy};
use std::hash::{DefaultHasher, Hasher};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `data` and reads the echo concurrently; returns (bytes back, hash of them).
async fn echo_through(addr: SocketAddr, data: Vec<u8>) -> (usize, u64) {
    let stream = TcpStream::connect(addr).await.expect("connect to guest");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(256 * 1024) {
            wr.write_all(chunk).await.expect("write");
        }
        wr.shutdown().await.expect("shutdown");
    });
    let mut hasher = DefaultHasher::new();
    let mut total = 0;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = rd.read(&mut buf).await.expect("read echo");
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
        total += n;
    }
    writer.await.unwrap();
    (total, hasher.finish())
}

fn digest(data: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(data);
    hasher.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_echo_server_returns_64_mib_intact() {
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let guest = Running::start("echo-server", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = guest.listening().await;

    let data = pattern(64 << 20, 7);
    let sent = digest(&data);
    let (len, got) = echo_through(addr, data).await;
    assert_eq!(len, 64 << 20, "every byte comes back");
    assert_eq!(got, sent, "the bytes come back unchanged and in order");

    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_echo_serves_several_connections_at_once() {
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let guest = Running::start("poll-echo", &["127.0.0.1:0", "9"], ctx(policy));
    let addr = guest.listening().await;

    // An idle connection stays open while eight others are served: one poll loop serves all.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let clients: Vec<_> = (0..8u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = pattern(4 << 20, 100 + i);
                let sent = digest(&data);
                let (len, got) = echo_through(addr, data).await;
                assert_eq!(len, 4 << 20);
                assert_eq!(got, sent);
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    idle.write_all(b"last").await.unwrap();
    idle.shutdown().await.unwrap();
    let mut back = Vec::new();
    idle.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"last");

    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_echo_server_works_over_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no ::1");
        return;
    }
    let policy = policy(&[(Allow, "listen", "[::1]:0")]);
    let guest = Running::start("echo-server", &["[::1]:0", "1"], ctx(policy));
    let addr = guest.listening().await;
    assert!(addr.is_ipv6());
    let data = pattern(1 << 20, 3);
    let sent = digest(&data);
    let (len, got) = echo_through(addr, data).await;
    assert_eq!((len, got), (1 << 20, sent));
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}
