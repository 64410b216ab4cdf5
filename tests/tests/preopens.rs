//! Pre-opened listeners: a guest serves on a socket the runtime bound, with no bind or
//! listen right of its own.

use capnet::CapnetCtx;
use capnet::policy::Policy;
use capnet_tests::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_once(addr: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(msg).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_guest_binding_the_preopened_address_serves_without_any_right() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = CapnetCtx::builder()
        .policy(Policy::deny_all())
        .tcp_listener(listener, None)
        .unwrap()
        .build();
    let guest = Running::start("echo-server", &[&addr.to_string(), "1"], ctx);
    assert_eq!(guest.listening().await, addr);

    assert_eq!(echo_once(addr, b"pre-opened").await, b"pre-opened");
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_knows_a_mapped_preopen_by_its_guest_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let real = listener.local_addr().unwrap();
    // The guest binds 0.0.0.0:80 (no such right, nothing bound there) and gets the pre-open.
    let ctx = CapnetCtx::builder()
        .tcp_listener(listener, Some("0.0.0.0:80".parse().unwrap()))
        .unwrap()
        .build();
    let guest = Running::start("echo-server", &["0.0.0.0:80", "1"], ctx);
    assert_eq!(guest.listening().await.to_string(), "0.0.0.0:80");

    assert_eq!(echo_once(real, b"mapped").await, b"mapped");
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capnet_aware_guest_takes_the_preopened_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = CapnetCtx::builder()
        .tcp_listener(listener, None)
        .unwrap()
        .build();
    let guest = Running::start("poll-echo", &[&addr.to_string(), "2"], ctx);
    assert_eq!(guest.listening().await, addr);

    let (a, b) = tokio::join!(echo_once(addr, b"one"), echo_once(addr, b"two"));
    assert_eq!((a.as_slice(), b.as_slice()), (&b"one"[..], &b"two"[..]));
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
}
