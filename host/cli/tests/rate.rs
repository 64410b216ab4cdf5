//! `--limit bytes-per-second=R` and `--library-limit NAME.bytes-per-second=R` as a user gives
//! them: the guest, or the library, moves its bytes no faster than R past its one-second
//! burst, and each wait is logged at debug naming the limit. Only lower bounds are asserted;
//! the measured rates are printed.

mod support;

use support::{capnet, serving};

use capnet_tests::{guest, lang_guest};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Moving `moved` bytes at `rate`, with a full one-second burst, takes at least this long.
fn least_time(moved: usize, rate: usize) -> Duration {
    Duration::from_secs_f64(moved.saturating_sub(rate) as f64 / rate as f64)
}

#[test]
fn limit_flag_holds_a_guest_to_its_bytes_per_second() {
    const RATE: usize = 100_000;
    const LEN: usize = 250_000;
    let (child, addr) = serving(
        capnet()
            .env("CAPNET_LOG", "capnet::limit=debug")
            .args(["run", "--allow-listen", "127.0.0.1:0"])
            .arg(format!("--limit=bytes-per-second={RATE}"))
            .arg(guest("sink-server"))
            .args(["127.0.0.1:0", "1"]),
    );
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&vec![7u8; LEN]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let took = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(answer.trim(), LEN.to_string());
    println!(
        "{LEN} bytes in {took:.2?} under --limit bytes-per-second={RATE}: {:.0} B/s past the burst",
        (LEN - RATE) as f64 / took.as_secs_f64()
    );
    assert!(took >= least_time(LEN, RATE), "took only {took:?}");
    assert!(
        stderr.contains(&format!(
            "waiting for the rate: limit bytes-per-second = {RATE}"
        )),
        "a wait is logged at debug, naming the limit:\n{stderr}"
    );
}

/// A TCP server that answers each connection with `len` bytes once the request has ended,
/// and sends when it accepted each.
fn reply_server(len: usize) -> (std::net::SocketAddr, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = tx.send(Instant::now());
            let mut request = Vec::new();
            let _ = stream.read_to_end(&mut request);
            let _ = stream.write_all(&vec![b'x'; len]);
        }
    });
    (addr, rx)
}

#[test]
fn library_limit_flag_holds_that_library_to_its_bytes_per_second() {
    const RATE: usize = 20_000;
    const REPLY: usize = 40_000;
    let (weather, weather_accepted) = reply_server(REPLY);
    let (app, app_accepted) = reply_server(REPLY);
    let out = capnet()
        .env("CAPNET_LOG", "capnet::limit=debug")
        .arg("run")
        .arg(format!("--allow-connect={weather},{app}"))
        .arg(format!("--library-allow=weather=connect {weather}"))
        .arg(format!("--library-limit=weather.bytes-per-second={RATE}"))
        .arg(lang_guest("rust", "nano-app"))
        .arg(format!("weather={weather}"))
        .arg(format!("app={app}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = |step: String| {
        let prefix = format!("{step}: ok ");
        stdout
            .lines()
            .any(|l| l.len() == prefix.len() + REPLY && l.starts_with(&prefix))
    };
    assert!(ok(format!("weather={weather}")) && ok(format!("app={app}")));
    // The app's step begins when the library has read its whole reply.
    let took = app_accepted
        .recv()
        .unwrap()
        .duration_since(weather_accepted.recv().unwrap());
    println!(
        "library weather: {REPLY} bytes in {took:.2?} under --library-limit \
         weather.bytes-per-second={RATE}: {:.0} B/s past the burst",
        (REPLY - RATE) as f64 / took.as_secs_f64()
    );
    assert!(took >= least_time(REPLY, RATE), "took only {took:?}");
    assert!(
        stderr.contains(&format!(
            "waiting for the rate: limit of library weather bytes-per-second = {RATE}"
        )),
        "the wait names the library:\n{stderr}"
    );
}

#[test]
fn policy_check_shows_the_rate_of_the_instance_and_of_a_library() {
    let dir = std::env::temp_dir().join(format!("capnet-cli-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.toml");
    std::fs::write(
        &file,
        "[limits]\nbytes-per-second = 1000000\n[library.weather.limits]\nbytes-per-second = 4096\n",
    )
    .unwrap();
    let out = capnet()
        .args(["policy", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("lookups 64, calls-in-flight 256, bytes-per-second 1000000\n")
            && stdout.contains("library weather: 0 allow, 0 deny rules, within the app's; limits: bytes-per-second 4096\n"),
        "{stdout}"
    );
}
