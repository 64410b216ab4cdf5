//! UDP on capnet: datagrams echoed to real clients, and every refused send or receive kept off
//! the wire or away from the guest.

use capnet::policy::Verdict::{Allow, Deny};
use capnet_tests::{Running, ctx, pattern, policy};
use std::time::Duration;
use tokio::net::UdpSocket;

async fn socket_on(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

async fn recv_within(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_returns_every_datagram_intact() {
    let policy = policy(&[
        (Allow, "udp-bind", "127.0.0.1:0"),
        (Allow, "udp-receive", "127.0.0.1"),
        (Allow, "udp-send", "127.0.0.1"),
    ]);
    let sizes = [1usize, 100, 1400, 9000, 60_000];
    let guest = Running::start(
        "udp-echo",
        &["127.0.0.1:0", &sizes.len().to_string()],
        ctx(policy),
    );
    let addr = guest.listening().await;

    let client = socket_on("127.0.0.1").await;
    client.connect(addr).await.unwrap();
    for (i, size) in sizes.into_iter().enumerate() {
        let data = pattern(size, i as u64 + 1);
        client.send(&data).await.unwrap();
        let back = recv_within(&client, Duration::from_secs(20)).await;
        assert_eq!(back.as_deref(), Some(&data[..]), "datagram of {size} bytes");
    }
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_send_outside_the_policy_is_refused_and_nothing_arrives() {
    let target = socket_on("127.0.0.1").await;
    let addr = target.local_addr().unwrap();
    let policy = policy(&[(Allow, "udp-send", "127.0.0.1:1")]);
    let guest = Running::start("udp-client", &[&addr.to_string(), "leak"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    // std reports WASI's access-denied as EACCES.
    assert!(
        done.stderr
            .starts_with(&format!("error: send {addr}: Permission denied")),
        "{}",
        done.stderr
    );
    assert_eq!(recv_within(&target, Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_reaches_an_allowed_peer_and_hears_its_reply() {
    let server = socket_on("127.0.0.1").await;
    let addr = server.local_addr().unwrap();
    let reply = tokio::spawn(async move {
        let mut buf = [0; 64];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        let mut answer = b"pong:".to_vec();
        answer.extend_from_slice(&buf[..n]);
        server.send_to(&answer, from).await.unwrap();
    });
    let policy = policy(&[
        (Allow, "udp-send", &addr.to_string()),
        (Allow, "udp-receive", &addr.to_string()),
    ]);
    let guest = Running::start("udp-client", &[&addr.to_string(), "ping"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "pong:ping");
    reply.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_from_a_denied_peer_never_reach_the_guest() {
    let policy = policy(&[
        (Allow, "udp-bind", "127.0.0.1:0"),
        (Allow, "udp-receive", "127.0.0.0/8"),
        (Deny, "udp-receive", "127.0.0.2"),
        (Allow, "udp-send", "127.0.0.0/8"),
    ]);
    // The guest echoes exactly one datagram, then exits.
    let guest = Running::start("udp-echo", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = guest.listening().await;

    let denied = socket_on("127.0.0.2").await;
    denied.send_to(b"from a denied peer", addr).await.unwrap();
    assert_eq!(recv_within(&denied, Duration::from_millis(300)).await, None);

    let allowed = socket_on("127.0.0.1").await;
    allowed
        .send_to(b"from an allowed peer", addr)
        .await
        .unwrap();
    let back = recv_within(&allowed, Duration::from_secs(20)).await;
    assert_eq!(back.as_deref(), Some(&b"from an allowed peer"[..]));

    let done = guest.finish().await;
    assert_eq!(
        done.code, 0,
        "the denied datagram was not the one echoed: {}",
        done.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_bind_to_a_fixed_address_needs_the_udp_bind_right() {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    // A UDP right for something else, so the socket is created and the bind is what is refused.
    let policy = policy(&[(Allow, "udp-send", "127.0.0.1:1")]);
    let guest = Running::start("udp-echo", &[&addr.to_string()], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert!(
        done.stderr.starts_with(&format!("error: bind {addr}:")),
        "{}",
        done.stderr
    );
    std::net::UdpSocket::bind(addr).expect("the denied bind left the port free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_no_udp_right_is_refused_at_create_udp_socket() {
    // As wasmtime-wasi refuses a component that may not use UDP; TCP rights are not UDP rights.
    let target = socket_on("127.0.0.1").await;
    let addr = target.local_addr().unwrap();
    let policy = policy(&[
        (Allow, "connect", "127.0.0.1"),
        (Allow, "listen", "127.0.0.1"),
    ]);
    let guest = Running::start("udp-client", &[&addr.to_string(), "leak"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert!(
        done.stderr.starts_with("error: bind 0.0.0.0:0: ")
            && done.stderr.contains("ermission denied"),
        "the socket is refused before its bind: {}",
        done.stderr
    );
    assert_eq!(recv_within(&target, Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_works_over_ipv6_loopback() {
    let Ok(client) = UdpSocket::bind("[::1]:0").await else {
        eprintln!("skipped: this machine has no ::1");
        return;
    };
    let policy = policy(&[
        (Allow, "udp-bind", "[::1]:0"),
        (Allow, "udp-receive", "::1"),
        (Allow, "udp-send", "::1"),
    ]);
    let guest = Running::start("udp-echo", &["[::1]:0", "1"], ctx(policy));
    let addr = guest.listening().await;
    client.send_to(b"over v6", addr).await.unwrap();
    let back = recv_within(&client, Duration::from_secs(20)).await;
    assert_eq!(back.as_deref(), Some(&b"over v6"[..]));
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}
