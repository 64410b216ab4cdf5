//! `capnet-bench --soak [--minutes N] [--rounds N] [--host capnet|wasmtime-wasi]`: N minutes
//! (default 10) of mixed TCP connect/echo, UDP echo and name lookups through one guest (`soak`)
//! under `capnet run`, a process of its own as users run it, watching that process's resident
//! memory, the guest's linear memory within it, its open file descriptors and its threads.
//!
//! The guest makes rounds in batches the soak asks for on its stdin (see
//! `guest/rust/soak/src/main.rs`): per round a TCP echo, a UDP echo from a new socket, a
//! lookup answered by a DNS server of the soak's own (with a 1 s TTL, so DNS pins come and go)
//! and a connect through the address it returned, a lookup whose answer the DNS rebinding
//! defence drops, and a connect the policy refuses. The peers are native tokio servers in this
//! process.
//!
//! The baseline is taken once a warm-up has run and the process has been idle for
//! [`SETTLE`]; the end is taken the same way after the last batch. The guest's linear memory is
//! what `capnet run` prints on SIGUSR1: the guest's own heap, which the host cannot free, so it
//! is reported but not counted against the host. The soak passes when, at the end, file
//! descriptors and threads are back to the baseline, the host's memory (resident memory less
//! the guest's linear memory) is within [`HOST_SLACK`] of the baseline's, every round
//! succeeded, and the guest exits 0 at the end of its input.
//!
//! The 0.3 step (`f`) keeps calls in flight: after the others, in a `capnet run` process of its
//! own (a component runs one generation), the `p3-in-flight` guest makes rounds the same way,
//! each with 20 UDP receives in flight on a new socket (4 of them past the socket's
//! `datagrams` limit, 16 here, so refused with `out-of-memory` and logged), 16 sends at once
//! whose echoes complete the others, and 4 TCP echoes at once. It passes on the same terms,
//! with every refusal logged once.
//!
//! `CAPNET_SOAK_MIX` (letters of `tulpdf`, see the guests) runs some of the steps only.
//! `--rounds N` ends the run after N rounds past the baseline instead of after N minutes (which
//! still set the warm-up and how often a line is printed), so two runs compare round for round.
//! `--host wasmtime-wasi` runs the same guest under the baseline host on wasmtime-wasi's own
//! sockets (this binary again, `--run-wasmtime-wasi`) instead of `capnet run`, to tell what the
//! guest does from what capnet does; it has no policy and no DNS server of the soak's, so only
//! the `t` and `u` steps run there (the default mix there is `tu`).

use crate::servers::{self, Guest};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Rounds per batch.
const BATCH: u64 = 50;

/// Idle time before a baseline or end sample: long enough for tokio's blocking threads (which
/// served the lookups) to time out, so they are counted in neither.
const SETTLE: Duration = Duration::from_secs(12);

/// How much the host's memory at the end (resident memory less the guest's linear memory) may
/// exceed the baseline's: allocator caches settle, but a leak of a few bytes a round grows past
/// this within the ten minutes. Also covers the guest's pages that were not yet resident at the
/// baseline (the guest's memory is counted by size, resident or not).
const HOST_SLACK: f64 = 0.10;

/// The name the soak's DNS server answers with 127.0.0.1; `private.NAME` gets 10.11.12.13.
const NAME: &str = "echo.soak.test";

/// Who runs the soak guest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `capnet run`, as users run it.
    Capnet,
    /// The bench's baseline host on wasmtime-wasi's own sockets, in a process of its own.
    WasmtimeWasi,
}

/// What `--soak` was asked for.
pub struct Options {
    minutes: f64,
    rounds: Option<u64>,
    host: Host,
}

impl Options {
    /// `[--minutes N] [--rounds N] [--host capnet|wasmtime-wasi]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            minutes: 10.0,
            rounds: None,
            host: Host::Capnet,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--minutes" => {
                    options.minutes = value
                        .parse()
                        .ok()
                        .filter(|n: &f64| *n > 0.0)
                        .ok_or("--minutes takes a positive number")?;
                }
                "--rounds" => {
                    options.rounds = Some(value.parse().map_err(|_| "--rounds takes a number")?);
                }
                "--host" => {
                    options.host = match value.as_str() {
                        "capnet" => Host::Capnet,
                        "wasmtime-wasi" => Host::WasmtimeWasi,
                        other => return Err(format!("no host {other:?}: capnet or wasmtime-wasi")),
                    };
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

/// What the guest's process holds at one moment.
#[derive(Clone, Copy)]
struct Sample {
    rss_kib: u64,
    /// The guest's linear memory, as the process reported it on SIGUSR1.
    guest_kib: u64,
    fds: usize,
    threads: usize,
}

impl Sample {
    /// Resident memory that is not the guest's linear memory: the host's own.
    fn host_kib(&self) -> u64 {
        self.rss_kib.saturating_sub(self.guest_kib)
    }
}

/// Samples process `pid`: /proc for its resident memory, fds and threads, and SIGUSR1 for the
/// guest's linear memory, which the process prints to its stderr (read into `guest_memory`).
fn sample(pid: u32, guest_memory: &Receiver<u64>) -> Sample {
    while guest_memory.try_recv().is_ok() {}
    let signalled = Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    let guest_kib = match signalled {
        true => guest_memory
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or(0),
        false => 0,
    };
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
        guest_kib,
        fds,
        threads: field("Threads:") as usize,
    }
}

/// The guest in its host's process, fed batches on stdin.
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

/// Lines of the host's stderr: how many said what, and the last few.
#[derive(Default)]
struct Log {
    denied: u64,
    dropped: u64,
    /// 0.3 receives refused past the socket's `datagrams` limit.
    refused_receives: u64,
    other: u64,
    last: Vec<String>,
}

impl Log {
    /// Counts `line`, or passes the guest memory it reports (KiB) to `guest_memory`.
    fn take(&mut self, line: String, guest_memory: &Sender<u64>) {
        if let Some(kib) = line
            .strip_prefix("capnet: guest memory ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
        {
            let _ = guest_memory.send(kib);
        } else if line.contains("denied tcp-connect") {
            self.denied += 1;
        } else if line.contains("dropped answer") {
            self.dropped += 1;
        } else if line.contains("denied udp-socket.receive: out-of-memory") {
            self.refused_receives += 1;
        } else {
            self.other += 1;
            self.last.push(line);
            let n = self.last.len();
            self.last.drain(..n.saturating_sub(10));
        }
    }
}

/// Receives of a 0.3 round that the socket's `datagrams` limit refuses (see the guest).
const REFUSED_PER_ROUND: u64 = 4;

/// Runs the soak and returns whether it passed: the 0.2 steps of the mix in one process, then
/// the 0.3 step in another. The peers run on `runtime`'s workers while this thread drives the
/// guest.
pub fn run(runtime: &tokio::runtime::Runtime, options: &Options) -> bool {
    let default_mix = match options.host {
        Host::Capnet => "tulpdf",
        Host::WasmtimeWasi => "tu",
    };
    let mix = std::env::var("CAPNET_SOAK_MIX").unwrap_or_else(|_| default_mix.into());
    if options.host == Host::WasmtimeWasi && !mix.chars().all(|c| "tu".contains(c)) {
        println!("soak: FAIL: under wasmtime-wasi only the t and u steps run, not {mix:?}");
        return false;
    }
    let steps: String = mix.chars().filter(|c| *c != 'f').collect();
    let mut passed = true;
    if !steps.is_empty() {
        passed &= run_phase(runtime, options, &steps);
    }
    if mix.contains('f') {
        passed &= run_phase(runtime, options, "f");
    }
    passed
}

/// One process of the soak: the `soak` guest with the 0.2 steps of `mix`, or for `f` the
/// `p3-in-flight` guest.
fn run_phase(runtime: &tokio::runtime::Runtime, options: &Options, mix: &str) -> bool {
    let minutes = options.minutes;
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let in_flight = mix == "f";
    let (tcp, udp, dns_addr, dns_task) = runtime.block_on(async {
        let tcp = servers::native(Guest::Echo).await;
        let udp = servers::native(Guest::UdpEcho).await;
        let dns = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns_addr = dns.local_addr().unwrap();
        (tcp, udp, dns_addr, tokio::spawn(serve_dns(dns)))
    });
    let denied: SocketAddr = "127.0.0.1:9".parse().unwrap();

    let guest_args = match in_flight {
        true => vec!["soak".into(), tcp.addr.to_string(), udp.addr.to_string()],
        false => vec![
            tcp.addr.to_string(),
            udp.addr.to_string(),
            NAME.to_string(),
            denied.to_string(),
            mix.to_owned(),
        ],
    };
    let guest_name = if in_flight { "p3-in-flight" } else { "soak" };
    let (mut command, host_name) = match options.host {
        Host::Capnet => {
            let binary = servers::capnet_binary();
            assert!(
                binary.exists(),
                "{} is missing: cargo build --release --workspace",
                binary.display()
            );
            let mut command = Command::new(&binary);
            command
                .arg("run")
                .arg("--cache-dir")
                .arg(std::env::temp_dir().join("capnet-bench-cache"))
                .args(["--allow-connect", &tcp.addr.to_string()])
                .args(["--allow-udp", "127.0.0.1"])
                .args(["--allow-lookup", "*.soak.test"])
                .args(["--dns-server", &dns_addr.to_string()])
                .args(if in_flight {
                    &["--limit", "datagrams=16"][..]
                } else {
                    &[]
                })
                .arg(capnet_tests::guest(guest_name))
                .args(&guest_args);
            (command, "capnet run")
        }
        Host::WasmtimeWasi => {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .arg("--run-wasmtime-wasi")
                .arg(capnet_tests::guest(guest_name))
                .args(&guest_args);
            (command, "wasmtime-wasi")
        }
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = Arc::new(Mutex::new(Log::default()));
    let (memory_tx, memory_rx) = channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                log.lock().unwrap().take(line, &memory_tx);
            }
        })
    };
    let mut guest = SoakGuest {
        stdin: child.stdin.take(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };

    let until = match options.rounds {
        Some(n) => format!("{n} rounds"),
        None => format!("{minutes} min"),
    };
    println!(
        "soak: {host_name} (pid {pid}) with the {guest_name} guest for {until}, steps {mix:?} \
         (t TCP echo, u UDP echo, l lookup and a connect to its answer, p a lookup whose \
         answer is dropped, d a refused connect, f 0.3 calls in flight); batches of {BATCH}"
    );
    println!(
        "soak: {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>7}",
        "time", "rounds", "rounds/s", "RSS KiB", "guest KiB", "host KiB", "fds", "threads"
    );
    let print = |label: &str, rounds: u64, rate: f64, s: Sample| {
        println!(
            "soak: {label:>9} {rounds:>9} {rate:>9.0} {:>9} {:>9} {:>9} {:>5} {:>7}",
            s.rss_kib,
            s.guest_kib,
            s.host_kib(),
            s.fds,
            s.threads
        );
    };
    // The first batch shows the host is up and its signal handler in place.
    let mut failure = guest.batch(1).err();
    let mut rounds = 1u64;
    let start = sample(pid, &memory_rx);
    print("start", rounds, 0.0, start);

    // Warm-up: a tenth of the run (at most a minute), so caches, pools and the guest's heap
    // reach their working size before the baseline.
    let warm_up = (duration / 10).min(Duration::from_secs(60));
    let began = Instant::now();
    while began.elapsed() < warm_up && failure.is_none() {
        match guest.batch(BATCH) {
            Ok(()) => rounds += BATCH,
            Err(e) => failure = Some(e),
        }
    }
    std::thread::sleep(SETTLE);
    let baseline = sample(pid, &memory_rx);
    let baseline_rounds = rounds;
    print("baseline", rounds, 0.0, baseline);

    let began = Instant::now();
    let every = (duration / 10).max(Duration::from_secs(5));
    let mut next = every;
    let mut since = (Instant::now(), rounds);
    let more = |rounds: u64| match options.rounds {
        Some(n) => rounds - baseline_rounds < n,
        None => began.elapsed() < duration,
    };
    while more(rounds) && failure.is_none() {
        let batch = options
            .rounds
            .map_or(BATCH, |n| BATCH.min(n - (rounds - baseline_rounds)));
        match guest.batch(batch) {
            Ok(()) => rounds += batch,
            Err(e) => failure = Some(e),
        }
        if began.elapsed() >= next {
            let rate = (rounds - since.1) as f64 / since.0.elapsed().as_secs_f64();
            let t = began.elapsed().as_secs();
            print(
                &format!("{}:{:02}", t / 60, t % 60),
                rounds,
                rate,
                sample(pid, &memory_rx),
            );
            since = (Instant::now(), rounds);
            next += every;
        }
    }
    let measured = rounds - baseline_rounds;
    let rate = measured as f64 / began.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let end = sample(pid, &memory_rx);
    print("end", rounds, rate, end);

    // The end of input ends the guest, and its host with it.
    drop(guest.stdin.take());
    let exited = wait(&mut guest.child, Duration::from_secs(10));
    reader.join().unwrap();
    dns_task.abort();
    runtime.block_on(async { drop((tcp, udp)) });

    let log = log.lock().unwrap();
    let growth = |end: u64, base: u64| end as f64 / base.max(1) as f64 - 1.0;
    let host_growth = growth(end.host_kib(), baseline.host_kib());
    let mut problems = Vec::new();
    if let Some(e) = failure {
        problems.push(e);
    }
    if end.guest_kib == 0 || baseline.guest_kib == 0 {
        problems.push("the host did not report the guest's memory on SIGUSR1".into());
    }
    if end.fds > baseline.fds {
        problems.push(format!(
            "{} fds at the end, {} at the baseline",
            end.fds, baseline.fds
        ));
    }
    if end.threads > baseline.threads {
        problems.push(format!(
            "{} threads at the end, {} at the baseline",
            end.threads, baseline.threads
        ));
    }
    if host_growth > HOST_SLACK {
        problems.push(format!(
            "the host's memory (resident less the guest's) grew {:.1} % from the baseline (at \
             most {:.0} %)",
            host_growth * 100.0,
            HOST_SLACK * 100.0
        ));
    }
    // One refused connect and one dropped answer per round, each logged once; four refused
    // receives a 0.3 round.
    let expect = |step: char| if mix.contains(step) { rounds } else { 0 };
    if log.denied != expect('d')
        || log.dropped != expect('p')
        || log.refused_receives != expect('f') * REFUSED_PER_ROUND
    {
        problems.push(format!(
            "{} rounds but {} refusals, {} dropped answers and {} refused receives logged",
            rounds, log.denied, log.dropped, log.refused_receives
        ));
    }
    match exited {
        Some(status) if status.success() => {}
        Some(status) => problems.push(format!("{host_name} exited with {status}")),
        None => problems.push(format!("{host_name} did not exit at the end of its input")),
    }
    if !problems.is_empty() || log.other > 0 {
        for line in &log.last {
            println!("soak: {host_name} said: {line}");
        }
    }
    let guest_growth = end.guest_kib.saturating_sub(baseline.guest_kib);
    println!(
        "soak: guest memory {} -> {} KiB over {measured} rounds past the baseline: {:.1} bytes a \
         round, the guest's own (reported, not counted against the host)",
        baseline.guest_kib,
        end.guest_kib,
        guest_growth as f64 * 1024.0 / measured.max(1) as f64
    );
    let summary = format!(
        "host memory {} -> {} KiB ({:+.1} %; RSS {} -> {} KiB less the guest's), fds {} -> {}, \
         threads {} -> {}, {rounds} rounds",
        baseline.host_kib(),
        end.host_kib(),
        host_growth * 100.0,
        baseline.rss_kib,
        end.rss_kib,
        baseline.fds,
        end.fds,
        baseline.threads,
        end.threads,
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
