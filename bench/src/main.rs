//! `cargo run --release -p capnet-bench [-- OPTIONS]`: the same guest `.wasm` served by capnet
//! in this process (behind a 1,000-rule policy whose allowing rules come last), by `capnet run`
//! as a process of its own (as users run it), by a baseline host on `wasmtime-wasi`'s own p2
//! sockets with `inherit_network` (in this process, and in one of its own run as `capnet run`
//! runs), and by the same logic built natively: in tokio (in this process, and in one of its own
//! on one thread as `capnet run` runs) and in blocking `std` (a process of its own), each driven
//! by the same native client. Prints medians
//! with min-max over the runs, the ratios capnet/baseline and capnet/native, and then the
//! ratios `capnet run`/native std and `capnet run`/wasmtime-wasi with the CPU time (per round
//! trip or connection, or per MiB moved) and context switches per
//! operation of each server process. The `0.3` rows run the `wasi:sockets@0.3.0` guests
//! (p3-echo-server, p3-sink-server) under `capnet run` and under the baseline host on
//! wasmtime-wasi's p3 sockets, against native tokio, each a process of its own, in a table of
//! their own (`--only 0.3` for those alone).
//!
//! Options: `--quick` (small sizes, 3 runs), `--runs N`, `--only TEXT` (scenarios whose name
//! contains TEXT), `--concurrent N` (connections at once, default 1,000), `--servers
//! capnet,capnet-run,wasmtime-wasi,wasmtime-wasi-run,native,native-tokio,native-std`, `--json FILE`, `--svg FILE`,
//! `--markdown FILE` (the tables as the README shows them).
//! `CAPNET_BENCH_CAPNET=PATH` runs another `capnet` binary than `target/release/capnet`.
//!
//! `--soak [--minutes N] [--rounds N] [--host capnet|wasmtime-wasi]` runs the soak instead (see
//! `soak.rs`): N minutes (default 10) of mixed TCP, UDP and lookups through one guest under
//! `capnet run`, with that process's memory (the guest's linear memory apart), file descriptors
//! and threads at the start, periodically and at the end, and a PASS or FAIL line.
//!
//! `--run-wasmtime-wasi COMPONENT ARGS...` runs a WASI 0.2 command under the baseline host alone
//! (every network use allowed), as `capnet run` runs one, printing the guest's memory on SIGUSR1.
//!
//! On these 2-vCPU machines a wake-up across CPUs costs ~100 µs: run it pinned,
//! `taskset -c 0 cargo run --release -p capnet-bench`, and say which pinning a figure is from.

mod clients;
mod report;
mod servers;
mod soak;

use capnet_cli::host;
use report::Row;
use servers::{Guest, Server};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Component;

struct Options {
    runs: usize,
    bulk: usize,
    round_trips: usize,
    connections: usize,
    concurrent: usize,
    only: Option<String>,
    servers: Vec<Server>,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    markdown: Option<PathBuf>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            runs: 5,
            bulk: 1 << 30,
            round_trips: 20_000,
            connections: 2_000,
            concurrent: 1_000,
            only: None,
            servers: Server::ALL.to_vec(),
            json: None,
            svg: None,
            markdown: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    options.runs = 3;
                    options.bulk = 64 << 20;
                    options.round_trips = 2_000;
                    options.connections = 200;
                }
                "--runs" => {
                    options.runs = value()?.parse().map_err(|_| "--runs takes a number")?;
                }
                "--only" => options.only = Some(value()?),
                "--concurrent" => {
                    options.concurrent = value()?
                        .parse()
                        .map_err(|_| "--concurrent takes a number")?;
                }
                "--servers" => {
                    options.servers = value()?
                        .split(',')
                        .map(|name| Server::from_name(name).ok_or(format!("no server {name:?}")))
                        .collect::<Result<_, _>>()?;
                }
                "--json" => options.json = Some(value()?.into()),
                "--svg" => options.svg = Some(value()?.into()),
                "--markdown" => options.markdown = Some(value()?.into()),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| scenario.contains(only.as_str()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The children of the servers that run in a process of their own.
    if let [flag, guest] = args.as_slice()
        && let Some(guest) = Guest::from_name(guest)
    {
        match flag.as_str() {
            "--native-std" => return servers::serve_std(guest),
            "--native-tokio" => return servers::serve_tokio(guest),
            "--wasmtime-wasi" => return servers::serve_baseline(guest),
            _ => {}
        }
    }
    // A command under the baseline host (the child of a soak under it).
    if let [flag, component, guest_args @ ..] = args.as_slice()
        && flag == "--run-wasmtime-wasi"
    {
        servers::run_command_baseline(Path::new(component), guest_args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The child side of the memory scenario: one server alone in its process.
    if let [flag, server, guest] = args.as_slice()
        && flag == "--serve"
    {
        let server = Server::from_name(server).expect("a server name");
        let guest = Guest::from_name(guest).expect("a guest name");
        serve_and_report_memory(&runtime, server, guest);
        return;
    }
    if args.first().is_some_and(|a| a == "--soak") {
        let options = match soak::Options::parse(&args[1..]) {
            Ok(options) => options,
            Err(problem) => {
                eprintln!("capnet-bench: --soak: {problem}");
                std::process::exit(2);
            }
        };
        let passed = soak::run(&runtime, &options);
        std::process::exit(if passed { 0 } else { 1 });
    }
    let options = match Options::parse(args.into_iter()) {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("capnet-bench: {problem}");
            std::process::exit(2);
        }
    };
    // Leaked: the measurements run as tasks, which need 'static options.
    runtime.block_on(run(Box::leak(Box::new(options))));
}

/// An engine whose compiled code outlives the run, so a rerun starts at once.
fn engine() -> Engine {
    host::engine_with_cache(&std::env::temp_dir().join("capnet-bench-cache")).unwrap()
}

/// The engine for `guest`: [`engine`], or for a 0.3 guest one with the async ABI (which
/// `capnet run` enables only for such a guest too).
pub(crate) fn engine_for(guest: Guest) -> Engine {
    if !guest.is_p3() {
        return engine();
    }
    let cache = std::env::temp_dir().join("capnet-bench-cache");
    host::engine_for(host::Abi::P3, Some(&cache)).unwrap()
}

/// The engine the wasmtime-wasi baseline runs `guest` on as a process of its own: capnet's,
/// but for a 0.2 guest with wasmtime's concurrency support left on, as the wasmtime CLI leaves
/// it (capnet's 0.2 engine turns it off, which spares every host call wasmtime's task
/// bookkeeping); the baseline is the runtime as users run it, not one tuned as capnet is.
pub(crate) fn baseline_engine_for(guest: Guest) -> Engine {
    if guest.is_p3() {
        return engine_for(guest);
    }
    let mut config = host::config_for(host::Abi::P2);
    config.concurrency_support(true);
    Engine::new(&config).unwrap()
}

pub(crate) fn compile(engine: &Engine, path: &Path) -> Component {
    Component::from_file(engine, path)
        .unwrap_or_else(|e| panic!("cannot compile {}: {e:?}", path.display()))
}

/// How long one measurement may take before the server counts as stalled.
const STALL: Duration = Duration::from_secs(120);

/// A scenario measured against one running server.
type Measure =
    fn(SocketAddr, &'static Options) -> std::pin::Pin<Box<dyn Future<Output = f64> + Send>>;

struct Scenario {
    name: String,
    unit: &'static str,
    guest: Guest,
    measure: Measure,
    /// How many operations (round trips, connections) one measurement makes, for the context
    /// switches per operation; `None` for the bulk transfers.
    ops: Option<fn(&Options) -> usize>,
}

fn scenarios(options: &Options) -> Vec<Scenario> {
    let scenario = |name: String, unit, guest, measure: Measure| Scenario {
        name,
        unit,
        guest,
        measure,
        ops: None,
    };
    let counted = |ops: fn(&Options) -> usize, s: Scenario| Scenario {
        ops: Some(ops),
        ..s
    };
    vec![
        scenario(
            format!("echo {} MiB, 256 KiB writes", options.bulk >> 20),
            "MB/s",
            Guest::Echo,
            |a, o| Box::pin(clients::echo_bulk(a, o.bulk)),
        ),
        counted(
            |o| o.round_trips,
            scenario(
                "1-byte ping-pong".into(),
                "round trips/s",
                Guest::Echo,
                |a, o| Box::pin(clients::ping_pong(a, 1, o.round_trips)),
            ),
        ),
        counted(
            |o| o.round_trips / 2,
            scenario(
                "1 KiB request/response".into(),
                "round trips/s",
                Guest::Echo,
                |a, o| Box::pin(clients::ping_pong(a, 1024, o.round_trips / 2)),
            ),
        ),
        counted(
            |o| o.connections,
            scenario(
                "connection rate (connect, 1 byte each way, close)".into(),
                "conn/s",
                Guest::Echo,
                |a, o| Box::pin(clients::connection_rate(a, o.connections)),
            ),
        ),
        scenario(
            format!("sink {} MiB", options.bulk >> 20),
            "MB/s",
            Guest::Sink,
            |a, o| Box::pin(clients::sink_bulk(a, o.bulk)),
        ),
        counted(
            |o| o.round_trips / 2,
            scenario(
                "poll-echo, 1 connection, 1 KiB req/resp".into(),
                "round trips/s",
                Guest::PollEcho,
                |a, o| Box::pin(clients::ping_pong(a, 1024, o.round_trips / 2)),
            ),
        ),
        scenario(
            format!(
                "poll-echo, {} connections at once, 1 KiB",
                options.concurrent
            ),
            "round trips/s",
            Guest::PollEcho,
            |a, o| {
                Box::pin(clients::concurrent(
                    a,
                    o.concurrent,
                    (o.round_trips / 1000).max(5),
                ))
            },
        ),
        counted(
            |o| o.round_trips,
            scenario(
                "UDP 64-byte datagram round trips".into(),
                "datagrams/s",
                Guest::UdpEcho,
                |a, o| Box::pin(clients::udp_ping_pong(a, o.round_trips)),
            ),
        ),
        // wasi:sockets@0.3.0: the same clients against the 0.3 guests.
        scenario(
            format!("0.3 echo {} MiB, 256 KiB writes", options.bulk >> 20),
            "MB/s",
            Guest::P3Echo,
            |a, o| Box::pin(clients::echo_bulk(a, o.bulk)),
        ),
        scenario(
            format!("0.3 sink {} MiB", options.bulk >> 20),
            "MB/s",
            Guest::P3Sink,
            |a, o| Box::pin(clients::sink_bulk(a, o.bulk)),
        ),
        counted(
            |o| o.round_trips,
            scenario(
                "0.3 1-byte ping-pong".into(),
                "round trips/s",
                Guest::P3Echo,
                |a, o| Box::pin(clients::ping_pong(a, 1, o.round_trips)),
            ),
        ),
        counted(
            |o| o.concurrent * (o.round_trips / 1000).max(5),
            scenario(
                format!(
                    "0.3 echo, {} connections at once, 1 KiB",
                    options.concurrent
                ),
                "round trips/s",
                Guest::P3Echo,
                |a, o| {
                    Box::pin(clients::concurrent(
                        a,
                        o.concurrent,
                        (o.round_trips / 1000).max(5),
                    ))
                },
            ),
        ),
    ]
}

async fn run(options: &'static Options) {
    let engine = engine();
    let scenarios = scenarios(options);
    let mut rows: Vec<Row> = scenarios
        .iter()
        .map(|s| Row {
            p3: s.guest.is_p3(),
            ..Row::new(s.name.clone(), s.unit, true)
        })
        .collect();
    let mut notes = Vec::new();
    for guest in Guest::ALL {
        let wanted: Vec<usize> = (0..scenarios.len())
            .filter(|&i| scenarios[i].guest == guest && options.wants(&scenarios[i].name))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let engine = if guest.is_p3() {
            engine_for(guest)
        } else {
            engine.clone()
        };
        let component = compile(&engine, &capnet_tests::guest(guest.name()));
        // The in-process baseline runs on the engine wasmtime's CLI would use, as its process
        // of its own does, not on capnet's.
        let baseline = options.servers.contains(&Server::Baseline).then(|| {
            let engine = baseline_engine_for(guest);
            let component = compile(&engine, &capnet_tests::guest(guest.name()));
            (engine, component)
        });
        for &server in options.servers.iter().filter(|s| s.serves(guest)) {
            eprintln!("bench: {} under {}", guest.name(), server.name());
            let (engine, component) = match (&baseline, server) {
                (Some((engine, component)), Server::Baseline) => (engine, component),
                _ => (&engine, &component),
            };
            let running = servers::start(server, engine, guest, component).await;
            let mut stalled = vec![false; scenarios.len()];
            for _ in 0..options.runs {
                for &i in &wanted {
                    if stalled[i] {
                        continue;
                    }
                    let switched = running.pid().map(servers::context_switches);
                    let spent = running.pid().map(servers::cpu_ns);
                    // The client runs as a task on the runtime's workers, as the servers do,
                    // not on the thread that waits for the whole run.
                    let measure = tokio::spawn((scenarios[i].measure)(running.addr, options));
                    let abort = measure.abort_handle();
                    match tokio::time::timeout(STALL, measure).await {
                        Ok(figure) => {
                            rows[i].figures_mut(server).push(figure.unwrap());
                            if let (Some(pid), Some(before), Some(ops)) =
                                (running.pid(), switched, scenarios[i].ops)
                            {
                                let switches = servers::context_switches(pid) - before;
                                rows[i]
                                    .switches
                                    .entry(server.name())
                                    .or_default()
                                    .push(switches as f64 / ops(options) as f64);
                            }
                            // CPU per round trip or connection, or per MiB moved.
                            let units = match scenarios[i].ops {
                                Some(ops) => Some(ops(options) as f64),
                                None if scenarios[i].unit == "MB/s" => {
                                    Some((options.bulk >> 20) as f64)
                                }
                                None => None,
                            };
                            if let (Some(pid), Some(before), Some(units)) =
                                (running.pid(), spent, units)
                            {
                                let micros = (servers::cpu_ns(pid) - before) as f64 / 1e3;
                                rows[i]
                                    .cpu
                                    .entry(server.name())
                                    .or_default()
                                    .push(micros / units);
                            }
                        }
                        Err(_) => {
                            abort.abort();
                            // A stalled server may stay wedged: ask nothing more of it.
                            stalled.iter_mut().for_each(|s| *s = true);
                            notes.push(format!(
                                "{}: {} under {} made no progress in {} s; abandoned, with what came after",
                                scenarios[i].name,
                                guest.name(),
                                server.name(),
                                STALL.as_secs()
                            ));
                        }
                    }
                }
            }
        }
    }

    let memory = format!(
        "host memory per idle connection ({} poll-echo)",
        options.concurrent
    );
    if options.wants(&memory) {
        let mut row = Row::new(memory, "KiB", false);
        // The processes of their own are measured by the in-process servers' figures.
        for &server in options.servers.iter().filter(|s| in_process(**s)) {
            eprintln!("bench: idle connections under {}", server.name());
            for _ in 0..options.runs {
                let kib = memory_per_idle_connection(server, options.concurrent).await;
                row.figures_mut(server).push(kib);
            }
        }
        rows.push(row);
    }

    if options.wants("start-up") && options.servers.contains(&Server::Capnet) {
        startup(options, &mut rows, &mut notes).await;
    }

    report::print_tables(&rows, options.runs, &notes);
    if let Some(path) = &options.json {
        std::fs::write(path, report::json(&rows, &notes)).unwrap();
    }
    if let Some(path) = &options.svg {
        std::fs::write(path, report::svg(&rows)).unwrap();
    }
    if let Some(path) = &options.markdown {
        std::fs::write(path, report::markdown(&rows, options.runs, &notes)).unwrap();
    }
}

/// Whether `server` runs in this process (and so has a child mode for the memory scenario).
fn in_process(server: Server) -> bool {
    matches!(server, Server::Capnet | Server::Baseline | Server::Native)
}

/// Time from loading the 18 MB Python guest to its `listening on` line, with an empty
/// compiled-code cache and then with the cache the first start filled, each in a new engine,
/// as two `capnet run`s would.
async fn startup(options: &Options, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let python = capnet_tests::lang_guest("python", "echo-server");
    if !python.exists() {
        notes.push(format!(
            "start-up skipped: {} is missing (scripts/build-guests makes it)",
            python.display()
        ));
        return;
    }
    let size = std::fs::metadata(&python).map_or(0, |m| m.len()) >> 20;
    let mut first = Row::new(
        format!("start-up, {size} MiB Python guest, empty cache"),
        "s",
        false,
    );
    let mut second = Row::new(
        format!("start-up, {size} MiB Python guest, cached"),
        "s",
        false,
    );
    for run in 0..options.runs {
        let dir =
            std::env::temp_dir().join(format!("capnet-bench-startup-{}-{run}", std::process::id()));
        for row in [&mut first, &mut second] {
            let started = Instant::now();
            let engine = host::engine_with_cache(&dir).unwrap();
            let component = compile(&engine, &python);
            let running = servers::start(Server::Capnet, &engine, Guest::Echo, &component).await;
            row.capnet.push(started.elapsed().as_secs_f64());
            drop(running);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    rows.push(first);
    rows.push(second);
}

/// Starts `server` in a child process (so no other server's memory is counted or reused), opens
/// `connections` idle connections to it, and returns how much its resident memory grew per
/// connection, in KiB.
async fn memory_per_idle_connection(server: Server, connections: usize) -> f64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", server.name(), Guest::PollEcho.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let addr: SocketAddr = line().parse().expect("the child's address");
    let mut rss = |stdin: &mut std::process::ChildStdin| {
        writeln!(stdin, "rss").unwrap();
        line().parse::<f64>().expect("the child's resident KiB")
    };
    let before = rss(&mut stdin);
    let idle = clients::idle_connections(addr, connections).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss(&mut stdin);
    drop(idle);
    drop(stdin);
    child.kill().unwrap();
    child.wait().unwrap();
    (after - before) / connections as f64
}

/// The child of [`memory_per_idle_connection`]: serves, prints its address, then answers each
/// line on stdin with its resident memory in KiB. The server runs on the runtime's workers
/// while this thread waits on stdin.
fn serve_and_report_memory(runtime: &tokio::runtime::Runtime, server: Server, guest: Guest) {
    let running = runtime.block_on(async {
        let engine = match server {
            Server::Baseline => baseline_engine_for(guest),
            _ => engine(),
        };
        let component = compile(&engine, &capnet_tests::guest(guest.name()));
        servers::start(server, &engine, guest, &component).await
    });
    println!("{}", running.addr);
    for _ in std::io::stdin().lock().lines() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/self/status");
        println!("{kib}");
    }
}
