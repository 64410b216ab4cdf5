//! Cancellation and teardown under `wasi:sockets@0.3.0`: a guest (p3-teardown) walks away
//! from its sockets mid-operation (a connect given up, a receive stream dropped with data in
//! flight, a send stream ended early, an exit or a return with sockets open, a trap mid-echo).
//! Each time the host closes exactly what the guest let go of, nothing panics, and the peer
//! sees the close.
//!
//! The host runs in this process, so `open_sockets` counts its sockets beside the test's own;
//! the tests take turns (`alone`) so that no other test's sockets are counted.

use capnet::policy::Verdict::Allow;
use capnet_tests::{PATIENCE, Running, ctx, open_sockets, policy};
use std::io::ErrorKind;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Held by each test for its whole run: socket counts are per process.
async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}

/// The test's end of the guest's control connection: a line per step, a byte to go on.
struct Control(BufReader<TcpStream>);

impl Control {
    async fn next(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, self.0.read_line(&mut line))
            .await
            .expect("the guest reports its next step")
            .expect("read the control connection");
        line.trim_end().to_owned()
    }

    async fn expect(&mut self, step: &str) {
        assert_eq!(self.next().await, step);
    }

    async fn go(&mut self) {
        self.0.get_mut().write_all(b"g").await.expect("go on");
    }
}

/// Starts p3-teardown in `mode` against `target`, and takes its control connection.
async fn start(mode: &str, target: SocketAddr) -> (Running, Control) {
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules = [
        (Allow, "connect", "127.0.0.1"),
        (Allow, "listen", "127.0.0.1:0"),
        (Allow, "udp", "127.0.0.1"),
    ];
    let guest = Running::start(
        "p3-teardown",
        &[
            mode,
            &control.local_addr().unwrap().to_string(),
            &target.to_string(),
        ],
        ctx(policy(&rules)),
    );
    let (stream, _) = tokio::time::timeout(PATIENCE, control.accept())
        .await
        .unwrap_or_else(|_| panic!("the guest never called; stderr:\n{}", guest.stderr()))
        .unwrap();
    (guest, Control(BufReader::new(stream)))
}

/// A listener for the guest to reach, and the one connection it accepts from it.
async fn target() -> (SocketAddr, impl Future<Output = TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = async move {
        let (peer, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .expect("the guest connects")
            .unwrap();
        peer
    };
    (addr, accepted)
}

/// Reads `from` until the guest's side closes, by an end of stream or a reset: all it got.
async fn read_until_closed(from: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let read = tokio::time::timeout(PATIENCE, from.read(&mut buf))
            .await
            .expect("the peer sees the close");
        match read {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading until the close: {e}"),
        }
    }
}

/// Streams bytes to the guest until the connection fails, as it must once the guest's side
/// is closed: how it failed.
async fn write_until_refused(mut to: OwnedWriteHalf) -> ErrorKind {
    let chunk = vec![0x5a; 64 * 1024];
    for _ in 0..(1 << 30) / chunk.len() {
        if let Err(e) = to.write_all(&chunk).await {
            return e.kind();
        }
    }
    panic!("1 GiB went to a guest that does not read it");
}

fn assert_closed_by_peer(kind: ErrorKind) {
    assert!(
        matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "writes fail with a reset or a broken pipe, not {kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_given_up_mid_handshake_leaves_no_socket_once_dropped() {
    let _alone = alone().await;
    let before = open_sockets();
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connect to
    // it stays in its handshake until given up.
    let full = TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap();
    let filler = TcpStream::connect(full_addr).await.unwrap();
    let (guest, mut ctl) = start("connect-cancel", full_addr).await;
    let test_side = 2 + 1; // the backlog's listener and filler, the control connection's end

    ctl.expect("connect cancelled").await;
    assert_eq!(
        open_sockets(),
        before + test_side + 2,
        "the host holds the control connection and the socket whose connect was given up"
    );
    ctl.go().await;
    ctl.expect("socket dropped").await;
    assert_eq!(
        open_sockets(),
        before + test_side + 1,
        "dropping the socket closed it while the guest runs on"
    );
    ctl.go().await;
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    drop((ctl, filler, full));
    assert_eq!(open_sockets(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_stream_dropped_with_data_in_flight_leaves_sending_open_until_the_socket_goes() {
    let _alone = alone().await;
    let before = open_sockets();
    let (addr, accepted) = target().await;
    let (guest, mut ctl) = start("receive-drop", addr).await;
    let (mut from_guest, to_guest) = accepted.await.into_split();
    let flood = tokio::spawn(write_until_refused(to_guest));

    ctl.expect("receive dropped").await;
    assert_eq!(
        open_sockets(),
        before + 2 + 2,
        "both ends of the control connection and of the guest's connection"
    );
    ctl.go().await;
    ctl.expect("sent: ok").await;
    assert_eq!(
        read_until_closed(&mut from_guest).await,
        b"still here",
        "the sending side works after the receiving side is gone, and ends with the stream"
    );
    ctl.go().await;
    ctl.expect("socket dropped").await;
    assert_eq!(
        open_sockets(),
        before + 2 + 1,
        "the guest's socket is closed"
    );
    assert_closed_by_peer(flood.await.unwrap());
    ctl.go().await;
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    drop((ctl, from_guest));
    assert_eq!(open_sockets(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_stream_ended_mid_write_delivers_what_was_taken_then_the_end() {
    let _alone = alone().await;
    let before = open_sockets();
    let (addr, accepted) = target().await;
    let (guest, mut ctl) = start("send-close", addr).await;
    // The peer reads nothing until the guest has given up its 64 MiB write.
    let mut peer = accepted.await;

    ctl.expect("send ended: ok").await;
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, peer.read_to_end(&mut got))
        .await
        .expect("the end of the stream follows the bytes")
        .expect("an end of stream, not a reset");
    assert!(
        !got.is_empty() && got.len() < 64 << 20,
        "part of the write went out: {} bytes",
        got.len()
    );
    let intact = got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8);
    assert!(intact, "what went out is the start of what was written");
    assert_eq!(open_sockets(), before + 2 + 2);
    peer.write_all(b"reply").await.unwrap();
    peer.shutdown().await.unwrap();
    ctl.go().await;
    ctl.expect("received: reply").await;
    ctl.go().await;
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    drop((ctl, peer));
    assert_eq!(open_sockets(), before);
}

/// Runs p3-teardown's `mode` (`exit-open` or `return-open`): after the guest ends with a
/// listener, a connection and a UDP socket open, all three are closed.
async fn ending_with_sockets_open_closes_them(mode: &str) {
    let _alone = alone().await;
    let before = open_sockets();
    let (addr, accepted) = target().await;
    let (guest, mut ctl) = start(mode, addr).await;
    let mut peer = accepted.await;

    let line = ctl.next().await;
    let listening: SocketAddr = line
        .strip_prefix("open ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    assert_eq!(
        open_sockets(),
        before + 2 + 2 + 2,
        "the control connection, the guest's connection, its listener and its UDP socket"
    );
    ctl.go().await;
    let done = guest.finish().await;
    assert_eq!(done.code, 0, "stderr: {}", done.stderr);
    assert_eq!(read_until_closed(&mut peer).await, b"hello");
    let refused = TcpStream::connect(listening).await.map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "the guest's listener is gone"
    );
    drop((ctl, peer));
    assert_eq!(open_sockets(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_exits_with_sockets_open_leaves_none_behind() {
    ending_with_sockets_open_closes_them("exit-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_returns_while_a_task_holds_sockets_leaves_none_behind() {
    ending_with_sockets_open_closes_them("return-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_mid_echo_closes_the_connection_and_spares_other_guests() {
    let _alone = alone().await;
    let before = open_sockets();
    let echo = Running::start(
        "p3-echo-server",
        &["127.0.0.1:0", "1"],
        ctx(policy(&[(Allow, "listen", "127.0.0.1:0")])),
    );
    let echo_addr = echo.listening().await;
    let (addr, accepted) = target().await;
    let (guest, mut ctl) = start("trap", addr).await;
    let (mut from_guest, to_guest) = accepted.await.into_split();

    ctl.expect("echoing").await;
    assert_eq!(
        open_sockets(),
        before + 1 + 2 + 2,
        "with the echo server's listener"
    );
    let flood = tokio::spawn(write_until_refused(to_guest));
    ctl.go().await;
    let trap = guest.trapped().await;
    assert!(format!("{trap:?}").contains("unreachable"), "{trap:?}");
    assert_closed_by_peer(flood.await.unwrap());
    // What was echoed but not read yet may be lost to the reset; the close is not.
    let echoed = read_until_closed(&mut from_guest).await;
    assert!(
        echoed.iter().all(|b| *b == 0x5a),
        "only what was sent came back"
    );

    // Another instance in the same host serves on.
    let mut client = TcpStream::connect(echo_addr).await.unwrap();
    client.write_all(b"after the trap").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_until_closed(&mut client).await, b"after the trap");
    assert_eq!(echo.finish().await.code, 0);
    drop((ctl, from_guest, client));
    assert_eq!(open_sockets(), before);
}
