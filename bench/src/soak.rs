//! `capnet-bench --soak [--minutes N]`: N minutes (default 10) of mixed TCP connect/echo, UDP
//! echo and name lookups through one guest (`soak`) under `capnet run`, a process of its own as
//! users run it, watching that process's resident memory and open file descriptors.
//!
//! The guest makes rounds in batches the soak asks for on its stdin (see
//! `guest/rust/soak/src/main.rs`): per round a TCP echo, a UDP echo from a new socket, a
//! lookup answered by a DNS server of the soak's own (with a 1 s TTL, so DNS pins come and go)
//! and a connect through the address it returned, a lookup whose answer the DNS rebinding
//! defence drops, and a connect the policy refuses. The peers are native tokio servers in this
//! process.
//!
//! The baseline is taken once a warm-up has run and the process has been idle for
//! [`SETTLE`]; the end is taken the same way after the last batch. The soak passes when the
//! end has no more file descriptors than the baseline and its resident memory is within
//! [`RSS_SLACK`] of it, every round succeeded, and the guest exits 0 at the end of its input.
//! `CAPNET_SOAK_MIX` (letters of `tulpd`, see the guest) runs some of the steps only.

use crate::servers::{self, Guest};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Rounds per batch.
const BATCH: u64 = 50;

/// Idle time before a baseline or end sample: long enough for tokio's blocking threads (which
/// served the lookups) to time out, so they are counted in neither.
const SETTLE: Duration = Duration::from_secs(12);

/// How much the end's resident memory may exceed the baseline's: allocator caches and the
/// guest's linear memory settle, but an unbounded leak grows past this in minutes.
const RSS_SLACK: f64 = 0.10;

/// The name the soak's DNS server answers with 127.0.0.1; `private.NAME` gets 10.11.12.13.
const NAME: &str = "echo.soak.test";

/// What the capnet process holds at one moment.
#[derive(Clone, Copy)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    Sample {
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:") as usize,
    }
}

/// The guest under `capnet run`, fed batches on stdin.
struct SoakGuest {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl SoakGuest {
    /// Asks for `rounds` rounds and waits for `done`; `Err` with what the guest said instead.
    fn batch(&mut self, rounds: u64) -> Result<(), String> {
        let stdin = self.stdin.as_mut().expect("stdin is open during the soak");
        writeln!(stdin, "{rounds}").map_err(|e| format!("writing to the guest: {e}"))?;
        stdin
            .flush()
            .map_err(|e| format!("writing to the guest: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading the guest: {e}"))?;
        if line.trim() == format!("done {rounds}") {
            Ok(())
        } else {
            Err(format!(
                "the guest said {line:?} instead of \"done {rounds}\""
            ))
        }
    }
}

/// Lines of capnet's stderr: how many said what, and the last few.
#[derive(Default)]
struct Log {
    denied: u64,
    dropped: u64,
    other: u64,
    last: Vec<String>,
}

/// Runs the soak and returns whether it passed. The peers run on `runtime`'s workers while
/// this thread drives the guest.
pub fn run(runtime: &tokio::runtime::Runtime, minutes: f64) -> bool {
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let (tcp, udp, dns_addr, dns_task) = runtime.block_on(async {
        let tcp = servers::native(Guest::Echo).await;
        let udp = servers::native(Guest::UdpEcho).await;
        let dns = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns_addr = dns.local_addr().unwrap();
        (tcp, udp, dns_addr, tokio::spawn(serve_dns(dns)))
    });
    let denied: SocketAddr = "127.0.0.1:9".parse().unwrap();

    let binary = servers::capnet_binary();
    assert!(
        binary.exists(),
        "{} is missing: cargo build --release --workspace",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .arg("run")
        .arg("--cache-dir")
        .arg(std::env::temp_dir().join("capnet-bench-cache"))
        .args(["--allow-connect", &tcp.addr.to_string()])
        .args(["--allow-udp", "127.0.0.1"])
        .args(["--allow-lookup", "*.soak.test"])
        .args(["--dns-server", &dns_addr.to_string()])
        .arg(capnet_tests::guest("soak"))
        .args([&tcp.addr.to_string(), &udp.addr.to_string(), NAME])
        .arg(denied.to_string())
        .args(std::env::var("CAPNET_SOAK_MIX").ok())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = Arc::new(Mutex::new(Log::default()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                if line.contains("denied tcp-connect") {
                    log.denied += 1;
                } else if line.contains("dropped answer") {
                    log.dropped += 1;
                } else {
                    log.other += 1;
                    log.last.push(line);
                    let n = log.last.len();
                    log.last.drain(..n.saturating_sub(10));
                }
            }
        })
    };
    let mut guest = SoakGuest {
        stdin: child.stdin.take(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };

    println!(
        "soak: capnet run (pid {pid}) with the soak guest for {minutes} min: per round a TCP \
         echo, a UDP echo, a lookup and a connect to its answer, a lookup whose answer is \
         dropped, a refused connect; batches of {BATCH}"
    );
    println!(
        "soak: {:>9} {:>9} {:>9} {:>9} {:>5} {:>7}",
        "time", "rounds", "rounds/s", "RSS KiB", "fds", "threads"
    );
    let print = |label: &str, rounds: u64, rate: f64, s: Sample| {
        println!(
            "soak: {label:>9} {rounds:>9} {rate:>9.0} {:>9} {:>5} {:>7}",
            s.rss_kib, s.fds, s.threads
        );
    };
    let start = sample(pid);
    print("start", 0, 0.0, start);

    // Warm-up: a tenth of the run (at most a minute), so caches, pools and the guest's heap
    // reach their working size before the baseline.
    let warm_up = (duration / 10).min(Duration::from_secs(60));
    let mut rounds = 0u64;
    let mut failure = None;
    let began = Instant::now();
    while began.elapsed() < warm_up && failure.is_none() {
        match guest.batch(BATCH) {
            Ok(()) => rounds += BATCH,
            Err(e) => failure = Some(e),
        }
    }
    std::thread::sleep(SETTLE);
    let baseline = sample(pid);
    print("baseline", rounds, 0.0, baseline);

    let began = Instant::now();
    let every = (duration / 10).max(Duration::from_secs(5));
    let mut next = every;
    let mut since = (Instant::now(), rounds);
    while began.elapsed() < duration && failure.is_none() {
        match guest.batch(BATCH) {
            Ok(()) => rounds += BATCH,
            Err(e) => failure = Some(e),
        }
        if began.elapsed() >= next {
            let rate = (rounds - since.1) as f64 / since.0.elapsed().as_secs_f64();
            let t = began.elapsed().as_secs();
            print(
                &format!("{}:{:02}", t / 60, t % 60),
                rounds,
                rate,
                sample(pid),
            );
            since = (Instant::now(), rounds);
            next += every;
        }
    }
    std::thread::sleep(SETTLE);
    let end = sample(pid);
    print("end", rounds, 0.0, end);

    // The end of input ends the guest, and capnet with it.
    drop(guest.stdin.take());
    let exited = wait(&mut guest.child, Duration::from_secs(10));
    reader.join().unwrap();
    dns_task.abort();
    runtime.block_on(async { drop((tcp, udp)) });

    let log = log.lock().unwrap();
    let rss_growth = end.rss_kib as f64 / baseline.rss_kib.max(1) as f64 - 1.0;
    let mut problems = Vec::new();
    if let Some(e) = failure {
        problems.push(e);
    }
    if end.fds > baseline.fds {
        problems.push(format!(
            "{} fds at the end, {} at the baseline",
            end.fds, baseline.fds
        ));
    }
    if rss_growth > RSS_SLACK {
        problems.push(format!(
            "resident memory grew {:.1} % from the baseline (at most {:.0} %)",
            rss_growth * 100.0,
            RSS_SLACK * 100.0
        ));
    }
    // One refused connect and one dropped answer per round, each logged once.
    let mix = std::env::var("CAPNET_SOAK_MIX").unwrap_or_else(|_| "tulpd".into());
    let expect = |step: char| if mix.contains(step) { rounds } else { 0 };
    if log.denied != expect('d') || log.dropped != expect('p') {
        problems.push(format!(
            "{} rounds but {} refusals and {} dropped answers logged",
            rounds, log.denied, log.dropped
        ));
    }
    match exited {
        Some(status) if status.success() => {}
        Some(status) => problems.push(format!("capnet run exited with {status}")),
        None => problems.push("capnet run did not exit at the end of its input".into()),
    }
    if !problems.is_empty() || log.other > 0 {
        for line in &log.last {
            println!("soak: capnet said: {line}");
        }
    }
    let summary = format!(
        "fds {} -> {}, RSS {} -> {} KiB ({:+.1} %), {rounds} rounds",
        baseline.fds,
        end.fds,
        baseline.rss_kib,
        end.rss_kib,
        rss_growth * 100.0
    );
    if problems.is_empty() {
        println!("soak: PASS: {summary}; back to the baseline");
        true
    } else {
        println!("soak: FAIL: {summary}: {}", problems.join("; "));
        false
    }
}

/// Waits up to `limit` for `child` to exit, then kills it.
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A DNS server for the soak: A for [`NAME`] is 127.0.0.1 and for `private.NAME` 10.11.12.13,
/// both with a TTL of 1 s; AAAA for either has no records; any other name does not exist.
async fn serve_dns(socket: UdpSocket) {
    let mut buf = [0u8; 1232];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = dns_reply(&buf[..n]) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// The reply to one query, or `None` for what is not a query of one question.
fn dns_reply(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let name = labels.join(".");
    let private = format!("private.{NAME}");
    let address: Option<[u8; 4]> = match name.as_str() {
        NAME => Some([127, 0, 0, 1]),
        n if n == private => Some([10, 11, 12, 13]),
        _ => None,
    };
    let answers = u8::from(address.is_some() && qtype == 1);
    let mut reply = Vec::with_capacity(question.len() + 28);
    reply.extend_from_slice(&query[..2]);
    reply.push(0x80 | query[2] & 0x01); // a response; recursion desired as asked
    reply.push(0x80 | if address.is_some() { 0 } else { 3 }); // recursion available; NXDOMAIN
    reply.extend_from_slice(&[0, 1, 0, answers, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let (1, Some(address)) = (answers, address) {
        // The question's name, type A, class IN, TTL 1 s, four bytes.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        reply.extend_from_slice(&address);
    }
    Some(reply)
}
