//! 0.3 calls kept in flight: a guest that starts many calls at once, each in a task of its
//! own (guest `p3-in-flight`), makes the host hold little for each and no more of them than
//! `datagrams` on one socket and `calls-in-flight` in the instance (past them a call fails
//! at once with `out-of-memory`), and moves its bytes no faster than its `bytes-per-second`
//! however many calls it keeps waiting.
//!
//! The host's memory is what this process holds resident less the guest's linear memory,
//! before the calls and while they are in flight: the tests share one lock so that no other
//! test of this binary moves it meanwhile. Bounds are a few times what is measured; the code
//! before these limits held a 64 KiB buffer (at least a page of it resident) for every pending
//! receive, and a copy of every pending send's datagram, with no bound on their number, and
//! its calls in flight moved bytes faster than the rate. Rates are held by lower bounds on
//! time only.

use capnet::policy::Policy;
use capnet_tests::{Running, ctx, exports, guest};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Mutex;

/// One test of this binary at a time, so that each sees only its own guest's memory.
static ALONE: Mutex<()> = Mutex::const_new(());

const GUEST: &str = "p3-in-flight";

fn policy_toml(text: &str) -> Policy {
    Policy::builder()
        .toml("policy.toml", text)
        .expect("test policy")
        .build()
}

/// UDP on loopback, with `limits` (a `[limits]` table's lines).
fn udp_policy(limits: &str) -> Policy {
    policy_toml(&format!(
        "[allow]\nudp-bind = [\"127.0.0.1:0\"]\nudp-send = [\"127.0.0.1\"]\n\
         udp-receive = [\"127.0.0.1\"]\nconnect = [\"127.0.0.1\"]\n[limits]\n{limits}\n"
    ))
}

/// The guest, compiled, and run once to its end, so that what compiling and a first
/// instance cost the process is paid before a test measures.
async fn warmed() {
    exports(&guest(GUEST));
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = sink.local_addr().unwrap().to_string();
    let run = Running::start(
        GUEST,
        &["udp-send", "2", "1", "10", &to],
        ctx(udp_policy("")),
    );
    go(&run).await;
    let done = run.finish().await;
    assert_eq!(done.code, 0, "{}", done.stderr);
}

/// The host's memory once the guest waits before its calls, after which it starts them.
async fn go(run: &Running) -> i64 {
    let control: SocketAddr = run.line("waiting on ").await.parse().unwrap();
    // The guest waits in its receive by now; the last of its start-up settles meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = run.host_memory();
    let starter = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    starter.send_to(b"go", control).await.unwrap();
    before
}

/// `R refused (CODES)` of an `in flight:` or `done:` line: R.
fn refused(line: &str) -> usize {
    let (_, rest) = line.split_once(", ").expect("a tally");
    rest.split(' ').next().unwrap().parse().expect("a count")
}

/// The guest's `listening on ADDR` lines.
async fn listening(run: &Running, sockets: usize) -> Vec<SocketAddr> {
    run.line("in flight: ").await;
    let addrs: Vec<SocketAddr> = run
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("listening on "))
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(addrs.len(), sockets);
    addrs
}

/// Sends a byte to each of `addrs` in turn until the guest is done receiving.
async fn feed_until_done(run: &Running, addrs: &[SocketAddr]) -> String {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let deadline = Instant::now() + capnet_tests::PATIENCE;
    loop {
        for addr in addrs {
            let _ = client.send_to(b"x", addr).await;
        }
        if let Some(done) = run.stdout().lines().find_map(|l| l.strip_prefix("done: ")) {
            return done.to_owned();
        }
        assert!(Instant::now() < deadline, "{}", run.stderr());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn per_call(what: &str, grown: i64, calls: usize) -> i64 {
    let each = grown / calls as i64;
    println!(
        "{what}: host memory grew {} KiB for {calls} calls in flight: {each} bytes a call",
        grown / 1024
    );
    each
}

/// Case 1: a pending 0.3 UDP receive holds no datagram buffer, only the call itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_udp_receive_holds_no_datagram_buffer() {
    let _alone = ALONE.lock().await;
    warmed().await;
    const CALLS: usize = 4000;
    let limits = "datagrams = 1000\ncalls-in-flight = 4000";
    let run = Running::start(
        GUEST,
        &["udp-receive", "4000", "4"],
        ctx(udp_policy(limits)),
    );
    let before = go(&run).await;
    let addrs = listening(&run, 4).await;
    let line = run.line("in flight: ").await;
    assert_eq!(refused(&line), 0, "{line}");
    let each = per_call("udp receive", run.host_memory() - before, CALLS);
    // About 1 KiB here. The code before made a zeroed 64 KiB buffer for each: calloc leaves
    // most of its pages untouched, but at least one a call, 5 to 55 KiB resident.
    assert!(
        each < 3 * 1024,
        "a pending receive holds {each} bytes of the host's"
    );
    let done = feed_until_done(&run, &addrs).await;
    assert!(done.starts_with("4000 ok"), "{done}");
    run.finish().await;
}

/// Case 1's bound: past `datagrams` receives on one socket, and past `calls-in-flight` in
/// the instance, a receive fails at once with `out-of-memory`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_past_the_socket_and_instance_limits_fail_with_out_of_memory() {
    let _alone = ALONE.lock().await;
    warmed().await;
    // 2000 on one socket: 64 (the default `datagrams`) wait, the rest are refused.
    let run = Running::start(GUEST, &["udp-receive", "2000", "1"], ctx(udp_policy("")));
    let before = go(&run).await;
    let addrs = listening(&run, 1).await;
    let line = run.line("in flight: ").await;
    assert_eq!(line, "2000 started, 1936 refused (out-of-memory)");
    let grown = run.host_memory() - before;
    per_call("udp receive, 64 of 2000 in flight", grown, 64);
    assert!(
        grown < 16 << 20,
        "2000 receives made the host hold {grown} bytes"
    );
    let done = feed_until_done(&run, &addrs).await;
    assert_eq!(done, "64 ok, 1936 refused (out-of-memory)");
    run.finish().await;

    // 600 over 20 sockets: 30 a socket, but 256 (the default `calls-in-flight`) in all.
    let run = Running::start(GUEST, &["udp-receive", "600", "20"], ctx(udp_policy("")));
    go(&run).await;
    let addrs = listening(&run, 20).await;
    let line = run.line("in flight: ").await;
    assert_eq!(line, "600 started, 344 refused (out-of-memory)");
    let done = feed_until_done(&run, &addrs).await;
    assert_eq!(done, "256 ok, 344 refused (out-of-memory)");
    run.finish().await;
}

/// Case 2: sends waiting on `bytes-per-second` hold their own datagram (the copy the
/// component model made of the guest's) and nothing more, and no more of them than
/// `datagrams` on one socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_sends_under_a_rate_hold_their_datagram_and_are_bounded() {
    let _alone = ALONE.lock().await;
    warmed().await;
    const SIZE: usize = 32 * 1024;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = peer.local_addr().unwrap().to_string();
    // A rate far below what 2000 datagrams need: the first goes, the others wait.
    let policy = udp_policy("bytes-per-second = 1000\ndatagrams = 16");
    let run = Running::start(
        GUEST,
        &["udp-send", "2000", "1", &SIZE.to_string(), &to],
        ctx(policy),
    );
    let before = go(&run).await;
    let line = run.line("in flight: ").await;
    let waiting = 2000 - refused(&line);
    assert!(
        (16..=17).contains(&waiting) && line.ends_with("(out-of-memory)"),
        "{line}"
    );
    let grown = run.host_memory() - before;
    let each = per_call("udp send of 32 KiB under a rate", grown, waiting);
    // Its datagram and the call: never the 2000 datagrams the guest handed over.
    assert!(
        grown < 8 << 20,
        "{waiting} waiting sends made the host hold {grown} bytes"
    );
    assert!(
        each < SIZE as i64 + 64 * 1024,
        "a waiting send holds {each} bytes"
    );
    run.stop().await;
}

/// What one waiting send holds, measured over many: its datagram and the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_send_holds_its_datagram_and_little_more() {
    let _alone = ALONE.lock().await;
    warmed().await;
    const SIZE: usize = 1024;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = peer.local_addr().unwrap().to_string();
    let policy = udp_policy(
        "bytes-per-second = 1000
datagrams = 1000
calls-in-flight = 4000",
    );
    let run = Running::start(
        GUEST,
        &["udp-send", "4000", "4", &SIZE.to_string(), &to],
        ctx(policy),
    );
    let before = go(&run).await;
    let line = run.line("in flight: ").await;
    assert!(line.ends_with(", 0 refused ()"), "{line}");
    let each = per_call(
        "udp send of 1 KiB under a rate",
        run.host_memory() - before,
        4000,
    );
    assert!(
        each < SIZE as i64 + 16 * 1024,
        "a waiting send holds {each} bytes"
    );
    run.stop().await;
}

/// The same with many sockets: the instance's `calls-in-flight` bounds them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_over_many_sockets_stop_at_calls_in_flight() {
    let _alone = ALONE.lock().await;
    warmed().await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = peer.local_addr().unwrap().to_string();
    let policy = udp_policy("bytes-per-second = 1000\ncalls-in-flight = 100");
    let run = Running::start(GUEST, &["udp-send", "1000", "50", "4096", &to], ctx(policy));
    go(&run).await;
    let line = run.line("in flight: ").await;
    let waiting = 1000 - refused(&line);
    // The first send of a socket or two may go at once, on the burst.
    assert!((100..=110).contains(&waiting), "{line}");
    run.stop().await;
}

/// Case 3: sends in flight at once on a fresh socket take their bytes before they go, so
/// together they move no faster than the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sends_in_flight_at_once_move_no_faster_than_the_rate() {
    let _alone = ALONE.lock().await;
    const RATE: usize = 100_000;
    const SIZE: usize = 10_000;
    const SENDS: usize = 40;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = peer.local_addr().unwrap().to_string();
    let counting = tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        let mut bytes = 0;
        while bytes < SENDS * SIZE {
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            bytes += n;
        }
        bytes
    });
    let policy = udp_policy(&format!("bytes-per-second = {RATE}"));
    let start = Instant::now();
    let args = ["udp-send", &SENDS.to_string(), "1", &SIZE.to_string(), &to];
    let run = Running::start(GUEST, &args, ctx(policy));
    go(&run).await;
    let done = run.finish().await;
    let took = start.elapsed();
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("done: 40 ok, 0 refused"),
        "{}",
        done.stdout
    );
    let moved = tokio::time::timeout(Duration::from_secs(5), counting)
        .await
        .expect("every datagram arrived")
        .unwrap();
    report("40 udp sends in flight", moved, RATE, took);
    assert!(
        took >= least_time(moved, RATE, SIZE),
        "{moved} bytes in {took:?}"
    );
}

/// Case 4: receives in flight at once are charged as they read, so a burst the kernel holds
/// reaches the guest no faster than the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_receives_in_flight_at_once_move_no_faster_than_the_rate() {
    let _alone = ALONE.lock().await;
    const RATE: usize = 32_000;
    const SIZE: usize = 8_000;
    const DATAGRAMS: usize = 16;
    let policy = udp_policy(&format!("bytes-per-second = {RATE}"));
    let run = Running::start(GUEST, &["udp-receive", "16", "1"], ctx(policy));
    go(&run).await;
    let addrs = listening(&run, 1).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let start = Instant::now();
    for _ in 0..DATAGRAMS {
        client.send_to(&[9; SIZE], addrs[0]).await.unwrap();
    }
    let done = run.line("done: ").await;
    let took = start.elapsed();
    assert_eq!(done, "16 ok, 0 refused ()");
    let moved = DATAGRAMS * SIZE;
    report("16 udp receives in flight", moved, RATE, took);
    assert!(
        took >= least_time(moved, RATE, SIZE),
        "{moved} bytes in {took:?}"
    );
    run.finish().await;
}

/// TCP's cousins: connects pending on a full accept queue hold little each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_tcp_connect_holds_little() {
    let _alone = ALONE.lock().await;
    warmed().await;
    const CALLS: usize = 500;
    // A listener whose queue fills at once and that never accepts: the handshakes wait.
    let full = tokio::net::TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = full.listen(1).unwrap();
    let to = full.local_addr().unwrap().to_string();
    let run = Running::start(GUEST, &["tcp-connect", "500", &to], ctx(udp_policy("")));
    let before = go(&run).await;
    let line = run.line("in flight: ").await;
    assert_eq!(refused(&line), 0, "{line}");
    let each = per_call("tcp connect", run.host_memory() - before, CALLS);
    assert!(
        each < 16 * 1024,
        "a pending connect holds {each} bytes of the host's"
    );
    run.stop().await;
}

/// And connections whose receive streams wait for bytes hold little each, and many
/// streams at once move no faster than the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_tcp_receives_hold_little_and_keep_to_the_rate() {
    let _alone = ALONE.lock().await;
    warmed().await;
    const CONNS: usize = 200;
    const RATE: usize = 100_000;
    const EACH: usize = 2_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = listener.local_addr().unwrap().to_string();
    let policy = udp_policy(&format!("bytes-per-second = {RATE}"));
    let run = Running::start(GUEST, &["tcp-receive", "200", &to], ctx(policy));
    let before = go(&run).await;
    let mut peers = Vec::new();
    while peers.len() < CONNS {
        peers.push(listener.accept().await.unwrap().0);
    }
    let line = run.line("in flight: ").await;
    assert_eq!(refused(&line), 0, "{line}");
    let each = per_call("tcp receive stream", run.host_memory() - before, CONNS);
    assert!(
        each < 32 * 1024,
        "a connection reading holds {each} bytes of the host's"
    );
    let start = Instant::now();
    for peer in &mut peers {
        tokio::io::AsyncWriteExt::write_all(peer, &[5; EACH])
            .await
            .unwrap();
    }
    drop(peers);
    let done = run.finish().await;
    let took = start.elapsed();
    assert!(done.stdout.contains("done: 200 ok"), "{}", done.stdout);
    let moved = CONNS * EACH;
    report("200 tcp receive streams", moved, RATE, took);
    assert!(
        took >= least_time(moved, RATE, 0),
        "{moved} bytes in {took:?}"
    );
}

/// 0.2's cousin: a server that reads and writes many connections from one poll loop (each
/// `check-write` takes what it permits) moves their bytes, both ways, no faster than the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_2_poll_loop_over_many_connections_keeps_to_the_rate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _alone = ALONE.lock().await;
    const RATE: usize = 200_000;
    const CONNS: usize = 10;
    const EACH: usize = 30_000;
    let policy = policy_toml(&format!(
        "[allow]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nbytes-per-second = {RATE}\n"
    ));
    let server = Running::start("poll-echo", &["127.0.0.1:0", "10"], ctx(policy));
    let addr = server.listening().await;
    let start = Instant::now();
    let clients: Vec<_> = (0..CONNS)
        .map(|_| {
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut from, mut to) = stream.into_split();
                let writing = tokio::spawn(async move {
                    to.write_all(&[3; EACH]).await.unwrap();
                    to.shutdown().await.unwrap();
                });
                let mut echoed = Vec::new();
                from.read_to_end(&mut echoed).await.unwrap();
                writing.await.unwrap();
                echoed.len()
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), EACH, "every byte came back");
    }
    let took = start.elapsed();
    // Each byte is read and written by the guest: twice through its bucket.
    let moved = 2 * CONNS * EACH;
    report("10 connections of a 0.2 poll loop", moved, RATE, took);
    assert!(
        took >= least_time(moved, RATE, 0),
        "{moved} bytes in {took:?}"
    );
    server.finish().await;
}

/// The lower bound on moving `moved` bytes at `rate` with a full one-second burst and at
/// most `overdraft` bytes taken past an empty bucket (one datagram).
fn least_time(moved: usize, rate: usize, overdraft: usize) -> Duration {
    let past_burst = moved.saturating_sub(rate + overdraft);
    Duration::from_secs_f64(past_burst as f64 / rate as f64)
}

fn report(what: &str, moved: usize, rate: usize, took: Duration) {
    println!(
        "{what}: {moved} bytes in {took:.2?} under bytes-per-second = {rate}: {:.0} B/s past \
         the one-second burst",
        moved.saturating_sub(rate) as f64 / took.as_secs_f64()
    );
}
