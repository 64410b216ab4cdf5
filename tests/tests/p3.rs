//! `wasi:sockets@0.3.0` guests (guest/rust/p3, async Rust with wit-bindgen) on capnet's 0.3
//! front, over real loopback sockets, under the same policy checks as 0.2 guests.

use capnet::policy::Verdict::{Allow, Deny};
use capnet_tests::{Running, assert_unreached, ctx, pattern, policy, pong_server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends `data`, ends the sending side, and returns all that came back.
async fn echo_through(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the guest");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.expect("write");
        wr.shutdown().await.expect("shutdown");
    });
    let mut back = Vec::new();
    rd.read_to_end(&mut back).await.expect("read the echo");
    writer.await.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_echo_server_serves_many_connections_at_once() {
    const CLIENTS: usize = 20;
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let server = Running::start("p3-echo-server", &["127.0.0.1:0", "20"], ctx(policy));
    let addr = server.listening().await;
    // Every client connects and sends part of its data before any of them ends its side:
    // a server that served one connection at a time would never answer the first.
    let mut streams = Vec::new();
    for i in 0..CLIENTS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&pattern(1000, i as u64)).await.unwrap();
        streams.push(stream);
    }
    let mut first = [0u8; 1000];
    streams[0].read_exact(&mut first).await.unwrap();
    assert_eq!(
        first.to_vec(),
        pattern(1000, 0),
        "echoed while 19 others are open"
    );
    let mut tasks = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let rest = pattern(64 * 1024, 100 + i as u64);
            stream.write_all(&rest).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            let mut sent = if i == 0 {
                Vec::new()
            } else {
                pattern(1000, i as u64)
            };
            sent.extend_from_slice(&rest);
            back == sent
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap(), "every connection comes back intact");
    }
    let done = server.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, format!("listening on {addr}\n"));
    assert_eq!(
        done.stderr, "",
        "the 0.3 entry point ran, not std's 0.2 one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_client_reaches_an_allowed_server_and_prints_its_reply() {
    let (addr, server) = pong_server().await;
    let policy = policy(&[(Allow, "connect", &addr.to_string())]);
    let done = Running::start("p3-tcp-client", &[&addr.to_string(), "ping"], ctx(policy))
        .finish()
        .await;

    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "pong:ping");
    assert_eq!(
        done.stderr, "",
        "the 0.3 entry point ran, not std's 0.2 one"
    );
    assert_eq!(server.await.unwrap(), 4, "the server read the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_connect_outside_the_policy_is_access_denied_and_reaches_no_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let policy = policy(&[(Allow, "connect", "127.0.0.1:1")]);
    let done = Running::start("p3-tcp-client", &[&target.to_string(), "x"], ctx(policy))
        .finish()
        .await;

    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr,
        format!("error: connect {target}: access-denied\n")
    );
    assert_unreached(&listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_bind_without_a_listen_right_is_access_denied() {
    let policy = policy(&[(Allow, "connect", "127.0.0.1")]);
    let done = Running::start("p3-echo-server", &["127.0.0.1:0", "1"], ctx(policy))
        .finish()
        .await;

    assert_eq!(done.code, 1);
    assert_eq!(done.stderr, "error: bind 127.0.0.1:0: access-denied\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_the_policy_refuses_never_reaches_a_p3_server() {
    let policy = policy(&[
        (Allow, "listen", "127.0.0.1:0"),
        (Deny, "accept", "127.0.0.1"),
    ]);
    let server = Running::start("p3-echo-server", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = server.listening().await;
    let back = tokio::time::timeout(Duration::from_secs(30), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(b"let me in").await;
        let _ = stream.shutdown().await;
        let mut back = Vec::new();
        let _ = stream.read_to_end(&mut back).await;
        back
    })
    .await
    .expect("the refused peer is closed");
    assert!(back.is_empty(), "nothing is echoed to a refused peer");
    assert!(server.stderr().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_server_and_a_p2_client_and_the_reverse_work_under_one_policy() {
    let rules = [
        (Allow, "listen", "127.0.0.1:0"),
        (Allow, "connect", "127.0.0.1"),
    ];
    // 0.3 server, 0.2 client.
    let server = Running::start("p3-echo-server", &["127.0.0.1:0", "1"], ctx(policy(&rules)));
    let addr = server.listening().await.to_string();
    let client = Running::start("tcp-client", &[&addr, "to 0.3"], ctx(policy(&rules)));
    let done = client.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "to 0.3");
    assert_eq!(server.finish().await.code, 0);
    // 0.2 server, 0.3 client.
    let server = Running::start("echo-server", &["127.0.0.1:0", "1"], ctx(policy(&rules)));
    let addr = server.listening().await.to_string();
    let client = Running::start("p3-tcp-client", &[&addr, "to 0.2"], ctx(policy(&rules)));
    let done = client.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "to 0.2");
    assert_eq!(server.finish().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_echo_of_one_mebibyte_comes_back_intact() {
    let policy = policy(&[(Allow, "listen", "127.0.0.1:0")]);
    let server = Running::start("p3-echo-server", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = server.listening().await;
    let data = pattern(1 << 20, 7);
    assert!(echo_through(addr, data.clone()).await == data);
    assert_eq!(server.finish().await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_udp_echo_returns_each_datagram_to_its_sender() {
    let server = Running::start(
        "p3-udp-echo",
        &["127.0.0.1:0", "2"],
        ctx(policy(&[(Allow, "udp", "127.0.0.1")])),
    );
    let addr = server.listening().await;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 100];
    for message in [&b"one"[..], b"two"] {
        client.send_to(message, addr).await.unwrap();
        let (n, from) = tokio::time::timeout(Duration::from_secs(30), client.recv_from(&mut buf))
            .await
            .expect("the echo comes back")
            .unwrap();
        assert_eq!((&buf[..n], from), (message, addr));
    }
    let done = server.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_udp_send_outside_the_policy_is_access_denied_and_nothing_leaves() {
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let policy = policy(&[
        (Allow, "udp-bind", "127.0.0.1"),
        (Allow, "udp-receive", "127.0.0.1"),
        (Allow, "udp-send", "127.0.0.1:1"),
    ]);
    let server = Running::start("p3-udp-echo", &["127.0.0.1:0", "1"], ctx(policy));
    let addr = server.listening().await;
    client.send_to(b"ping", addr).await.unwrap();
    let done = server.finish().await;
    assert_eq!(done.code, 1);
    assert_eq!(done.stderr, "error: send 127.0.0.1:0: access-denied\n");
    let mut buf = [0u8; 100];
    let nothing = tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf));
    assert!(nothing.await.is_err(), "no reply left the guest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_lookup_resolves_an_allowed_name_and_is_refused_another() {
    let allowed = policy(&[(Allow, "lookup", "localhost")]);
    let done = Running::start("p3-lookup", &["localhost"], ctx(allowed))
        .finish()
        .await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert!(
        done.stdout.lines().any(|l| l == "127.0.0.1" || l == "::1"),
        "{}",
        done.stdout
    );

    let refused = policy(&[(Allow, "lookup", "example.invalid")]);
    let done = Running::start("p3-lookup", &["localhost"], ctx(refused))
        .finish()
        .await;
    assert_eq!(done.code, 1);
    assert_eq!(
        done.stderr, "error: lookup localhost: access-denied\n",
        "0.3's lookup error type has access-denied, the code a policy's refusal is"
    );
}
