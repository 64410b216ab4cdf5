//! The capability checks, observed from outside: what a guest is refused never touches the
//! network, and what it is allowed works.

use capnet::policy::Verdict::{Allow, Deny};
use capnet_tests::{Running, assert_unreached, ctx, policy, pong_server};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_outside_the_policy_is_access_denied_and_reaches_no_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    // A rule for another port of the same host must not cover this one.
    let policy = policy(&[(Allow, "connect", "127.0.0.1:1")]);
    let guest = Running::start("tcp-client", &[&target.to_string(), "hello"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr.trim(),
        format!("error: connect {target}: access-denied")
    );
    assert_unreached(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_connect_reaches_the_server_and_gets_its_reply() {
    let (addr, server) = pong_server().await;
    let policy = policy(&[(Allow, "connect", &addr.to_string())]);
    let guest = Running::start("tcp-client", &[&addr.to_string(), "ping"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "pong:ping");
    assert_eq!(server.await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rule_wins_over_a_broader_allow() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let policy = policy(&[
        (Allow, "connect", "127.0.0.0/8"),
        (Deny, "connect", &target.to_string()),
    ]);
    let guest = Running::start("tcp-client", &[&target.to_string(), "x"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(
        done.stderr.trim(),
        format!("error: connect {target}: access-denied")
    );
    assert_unreached(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_mapped_ipv6_target_is_checked_as_ipv4() {
    // A v6 socket may not connect to a mapped address at all (WIT: invalid-argument), and the
    // policy never sees it as anything but the IPv4 address it names.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mapped = format!("[::ffff:127.0.0.1]:{port}");
    let policy = policy(&[
        (Allow, "connect", "127.0.0.2:1"),
        (Deny, "connect", "127.0.0.1"),
    ]);
    let guest = Running::start("tcp-client", &[&mapped, "x"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert!(
        done.stderr.contains("invalid-argument") || done.stderr.contains("access-denied"),
        "stderr: {}",
        done.stderr
    );
    assert_unreached(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_outside_the_policy_is_a_permanent_resolver_failure() {
    // What wasmtime-wasi 48 answers when lookups are not allowed, from `resolve-addresses`.
    let policy = policy(&[
        (Allow, "lookup", "*.example.org"),
        (Allow, "connect", "any:80"),
    ]);
    let guest = Running::start("tcp-client", &["example.com:80", "x"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr.trim(),
        "error: lookup example.com: permanent-resolver-failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_no_tcp_right_is_refused_at_create_tcp_socket() {
    // As wasmtime-wasi refuses a component that may not use TCP; UDP and lookup rights are
    // not TCP rights.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let policy = policy(&[
        (Allow, "udp", "127.0.0.1"),
        (Allow, "lookup", "localhost"),
        (Deny, "connect", "any"),
    ]);
    let guest = Running::start("tcp-client", &[&target.to_string(), "x"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr,
        format!("error: create-tcp-socket {target}: access-denied\n")
    );
    assert_unreached(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_lookup_of_localhost_resolves_and_connects() {
    let (addr, server) = pong_server().await;
    let policy = policy(&[
        (Allow, "lookup", "localhost"),
        (Allow, "connect", &addr.to_string()),
    ]);
    let target = format!("localhost:{}", addr.port());
    let guest = Running::start("tcp-client", &[&target, "hi"], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "pong:hi");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_without_a_right_is_refused_before_the_port_is_taken() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    // A TCP right for something else, so the socket is created and the bind is what is refused.
    let policy = policy(&[(Allow, "connect", "127.0.0.1:1")]);
    let guest = Running::start("echo-server", &[&addr.to_string()], ctx(policy));
    let done = guest.finish().await;

    assert_eq!(done.code, 1);
    assert!(
        done.stderr.starts_with(&format!("error: bind {addr}:")),
        "{}",
        done.stderr
    );
    // Nothing was bound: the port is still free.
    std::net::TcpListener::bind(addr).expect("the denied bind left the port free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_from_a_denied_peer_never_reaches_the_guest() {
    let policy = policy(&[
        (Allow, "listen", "127.0.0.1:0"),
        (Deny, "accept", "127.0.0.2"),
    ]);
    // The guest serves exactly one connection, then exits.
    let guest = Running::start("echo-server", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = guest.listening().await;

    // From 127.0.0.2: the kernel completes the handshake, capnet closes it unseen.
    let denied = TcpSocket::new_v4().unwrap();
    denied.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut denied = denied.connect(addr).await.unwrap();
    let _ = denied.write_all(b"should not echo").await;
    let mut buf = [0; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), denied.read(&mut buf))
        .await
        .expect("the denied connection is closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "a denied peer gets no echo");

    // From 127.0.0.1: served; it is the guest's one connection.
    let mut allowed = tokio::net::TcpStream::connect(addr).await.unwrap();
    allowed.write_all(b"echo me").await.unwrap();
    allowed.shutdown().await.unwrap();
    let mut back = Vec::new();
    allowed.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"echo me");

    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}
