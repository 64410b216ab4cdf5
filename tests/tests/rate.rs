//! `bytes-per-second`: a guest under a rate moves its bytes no faster than the rate allows
//! past its one-second burst, over TCP and UDP, under 0.2 and 0.3; a library's rate holds
//! the library back and neither its app nor another instance.
//!
//! Only lower bounds are asserted: moving N bytes at R bytes a second, with a bucket that
//! starts full at one second's worth (R bytes), takes at least (N - R) / R seconds however
//! slow the machine is. The measured rates are printed, never bounded from above.

use capnet::CapnetCtx;
use capnet::policy::Policy;
use capnet_tests::{Running, ctx, lang_guest};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn policy_toml(text: &str) -> Policy {
    Policy::builder()
        .toml("policy.toml", text)
        .expect("test policy")
        .build()
}

/// A TCP server policy with `limits` appended.
fn listen_policy(limits: &str) -> Policy {
    policy_toml(&format!("[allow]\nlisten = [\"127.0.0.1:0\"]\n{limits}"))
}

/// [`listen_policy`] with the instance held to `rate` bytes a second.
fn rated_listen_policy(rate: usize) -> Policy {
    listen_policy(&format!("[limits]\nbytes-per-second = {rate}\n"))
}

/// Sends `len` bytes to a sink server, ends the stream and reads its count back: the time
/// from connecting to the answer, which comes only once the guest has read every byte.
async fn sink(addr: SocketAddr, len: usize) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("the sink accepts");
    stream.write_all(&vec![7u8; len]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer.trim(), len.to_string(), "the sink read every byte");
    start.elapsed()
}

/// The lower bound on moving `moved` bytes at `rate` with a full one-second burst and at
/// most `overdraft` bytes taken past an empty bucket (one datagram).
fn least_time(moved: usize, rate: usize, overdraft: usize) -> Duration {
    let past_burst = moved.saturating_sub(rate + overdraft);
    Duration::from_secs_f64(past_burst as f64 / rate as f64)
}

fn report(what: &str, moved: usize, rate: usize, took: Duration) {
    let past_burst = moved.saturating_sub(rate);
    println!(
        "{what}: {moved} bytes in {took:.2?} under bytes-per-second = {rate}: \
         {:.0} B/s past the one-second burst",
        past_burst as f64 / took.as_secs_f64()
    );
}

async fn a_sink_reads_no_faster_than_its_rate(guest: &str) {
    const RATE: usize = 100_000;
    const LEN: usize = 250_000;
    let server = Running::start(guest, &["127.0.0.1:0", "1"], ctx(rated_listen_policy(RATE)));
    let addr = server.listening().await;
    let took = sink(addr, LEN).await;
    report(guest, LEN, RATE, took);
    assert!(
        took >= least_time(LEN, RATE, 0),
        "{LEN} bytes at {RATE} B/s took only {took:?}"
    );
    let done = server.finish().await;
    assert_eq!(done.code, 0, "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_2_tcp_guest_reads_no_faster_than_its_rate() {
    a_sink_reads_no_faster_than_its_rate("sink-server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_tcp_guest_reads_no_faster_than_its_rate() {
    a_sink_reads_no_faster_than_its_rate("p3-sink-server").await;
}

/// Echoes `len` bytes off a TCP echo guest: what it reads it writes back, so twice the bytes
/// draw on its bucket, half of them through `check-write` (0.2) or the send stream (0.3).
async fn an_echo_writes_no_faster_than_its_rate(guest: &str) {
    const RATE: usize = 100_000;
    const LEN: usize = 125_000;
    let server = Running::start(guest, &["127.0.0.1:0", "1"], ctx(rated_listen_policy(RATE)));
    let addr = server.listening().await;
    let start = Instant::now();
    let stream = TcpStream::connect(addr)
        .await
        .expect("the echo server accepts");
    let (mut from, mut to) = stream.into_split();
    let writer = tokio::spawn(async move {
        to.write_all(&vec![5u8; LEN]).await.unwrap();
        to.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    from.read_to_end(&mut back).await.unwrap();
    let took = start.elapsed();
    writer.await.unwrap();
    assert_eq!(back.len(), LEN, "every byte came back");
    report(guest, 2 * LEN, RATE, took);
    assert!(
        took >= least_time(2 * LEN, RATE, 0),
        "{} bytes at {RATE} B/s took only {took:?}",
        2 * LEN
    );
    let done = server.finish().await;
    assert_eq!(done.code, 0, "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_2_tcp_guest_writes_no_faster_than_its_rate() {
    an_echo_writes_no_faster_than_its_rate("echo-server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_tcp_guest_writes_no_faster_than_its_rate() {
    an_echo_writes_no_faster_than_its_rate("p3-echo-server").await;
}

/// Echoes `count` datagrams of `size` bytes off a UDP echo guest, one at a time: the guest
/// receives and sends each, so twice the bytes move through its bucket.
async fn a_udp_echo_moves_no_faster_than_its_rate(guest: &str) {
    const RATE: usize = 100_000;
    const SIZE: usize = 1000;
    const COUNT: usize = 125;
    let policy = policy_toml(&format!(
        "[allow]\nudp-bind = [\"127.0.0.1:0\"]\nudp-send = [\"127.0.0.1\"]\n\
         udp-receive = [\"127.0.0.1\"]\n[limits]\nbytes-per-second = {RATE}\n"
    ));
    let server = Running::start(guest, &["127.0.0.1:0", &COUNT.to_string()], ctx(policy));
    let addr = server.listening().await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(addr).await.unwrap();
    let datagram = vec![3u8; SIZE];
    let mut back = vec![0u8; SIZE + 1];
    let start = Instant::now();
    for i in 0..COUNT {
        client.send(&datagram).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(20), client.recv(&mut back))
            .await
            .unwrap_or_else(|_| panic!("datagram {i} came back"))
            .unwrap();
        assert_eq!(n, SIZE);
    }
    let took = start.elapsed();
    let moved = 2 * SIZE * COUNT;
    report(guest, moved, RATE, took);
    assert!(
        took >= least_time(moved, RATE, SIZE),
        "{moved} bytes at {RATE} B/s took only {took:?}"
    );
    let done = server.finish().await;
    assert_eq!(done.code, 0, "{}", done.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_2_udp_guest_moves_no_faster_than_its_rate() {
    a_udp_echo_moves_no_faster_than_its_rate("udp-echo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_udp_guest_moves_no_faster_than_its_rate() {
    a_udp_echo_moves_no_faster_than_its_rate("p3-udp-echo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_sets_a_rate_slows_a_connection_already_open() {
    const RATE: usize = 100_000;
    const LEN: usize = 250_000;
    let capnet = CapnetCtx::builder().policy(listen_policy("")).build();
    let handle = capnet.policy_handle();
    let server = Running::start("sink-server", &["127.0.0.1:0", "1"], capnet);
    let addr = server.listening().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"before the reload").await.unwrap();
    handle.replace(rated_listen_policy(RATE));
    let start = Instant::now();
    stream.write_all(&vec![7u8; LEN]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let took = start.elapsed();
    assert_eq!(answer.trim(), (LEN + 17).to_string());
    report("sink-server after a reload", LEN, RATE, took);
    assert!(
        took >= least_time(LEN + 17, RATE, 0),
        "{LEN} bytes at {RATE} B/s took only {took:?}"
    );
    assert_eq!(server.finish().await.code, 0);
}

/// A TCP server that answers each connection with `len` bytes of `x` once the request has
/// ended, and reports when it accepted each.
async fn reply_server(len: usize) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = tx.send(Instant::now());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let _ = stream.read_to_end(&mut request).await;
                let _ = stream.write_all(&vec![b'x'; len]).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_rate_slows_the_library_and_neither_its_app_nor_another_instance() {
    const LIBRARY_RATE: usize = 20_000;
    const LIBRARY_REPLY: usize = 40_000;
    const APP_REPLY: usize = 400_000;
    const OTHER: usize = 4_000_000;
    let (weather, mut weather_times) = reply_server(LIBRARY_REPLY).await;
    let (app, mut app_times) = reply_server(APP_REPLY).await;
    let policy = policy_toml(&format!(
        "[allow]\nconnect = [\"{weather}\", \"{app}\"]\n\
         [library.weather.allow]\nconnect = [\"{weather}\"]\n\
         [library.weather.limits]\nbytes-per-second = {LIBRARY_RATE}\n"
    ));
    let other = Running::start("sink-server", &["127.0.0.1:0", "1"], ctx(listen_policy("")));
    let other_addr = other.listening().await;
    let nano = Running::start_path(
        &lang_guest("rust", "nano-app"),
        &[&format!("weather={weather}"), &format!("app={app}")],
        ctx(policy),
    );
    // Another instance moves its bytes while the library waits for its rate.
    let other_took = sink(other_addr, OTHER).await;
    let done = nano.finish().await;
    let ended = Instant::now();
    assert_eq!(done.code, 0, "{}", done.stderr);
    let weather_accepted = weather_times.recv().await.unwrap();
    let app_accepted = app_times.recv().await.unwrap();
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", done.stdout);
    assert!(
        lines[0].starts_with(&format!("weather={weather}: ok xxx")) && lines[0].ends_with('x'),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1].len(),
        format!("app={app}: ok ").len() + APP_REPLY,
        "the app got its whole reply"
    );
    // The app's step starts when the library's has read its whole reply.
    let library_took = app_accepted.duration_since(weather_accepted);
    let app_took = ended.duration_since(app_accepted);
    assert!(
        library_took >= least_time(LIBRARY_REPLY, LIBRARY_RATE, 0),
        "the library's {LIBRARY_REPLY} bytes at {LIBRARY_RATE} B/s took only {library_took:?}"
    );
    assert_eq!(other.finish().await.code, 0);
    report(
        "the weather library",
        LIBRARY_REPLY,
        LIBRARY_RATE,
        library_took,
    );
    println!(
        "its app read {APP_REPLY} bytes (and exited) in {app_took:.2?} ({:.0} B/s); another instance read \
         {OTHER} bytes in {other_took:.2?} ({:.0} B/s)",
        APP_REPLY as f64 / app_took.as_secs_f64(),
        OTHER as f64 / other_took.as_secs_f64()
    );
}
