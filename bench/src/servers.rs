//! The servers every scenario runs against: capnet in this process and `capnet run` as a
//! process of its own, the wasmtime-wasi baseline in this process and in one of its own, and the
//! guests' logic built natively: in tokio (in this process, and in one of its own on a
//! current-thread runtime, as `capnet run` runs) and in blocking `std` (a process of its own,
//! one connection at a time, as the guests serve).

use capnet::CapnetCtx;
use capnet::policy::{Policy, Verdict};
use capnet_cli::host::{self, CommandHost, GuestMemory};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Who serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Server {
    /// capnet's host in this process, on the bench's runtime.
    Capnet,
    /// `capnet run`, the release binary, in a process of its own: what users run.
    CapnetRun,
    /// A host on `wasmtime-wasi`'s own p2 sockets, in this process.
    Baseline,
    /// The same host in a process of its own, run as `capnet run` runs (the guest on the
    /// thread of the reactor that wakes it).
    BaselineRun,
    /// The guests' logic in tokio, in this process.
    Native,
    /// The guests' logic in tokio, in a process of its own on one thread with its reactor, as
    /// `capnet run` runs: what the `capnet run` rows compare with.
    NativeRun,
    /// The guests' logic in blocking `std`, one connection at a time, in a process of its own.
    NativeStd,
}

impl Server {
    pub const ALL: [Server; 7] = [
        Server::Capnet,
        Server::CapnetRun,
        Server::Baseline,
        Server::BaselineRun,
        Server::Native,
        Server::NativeRun,
        Server::NativeStd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Server::Capnet => "capnet",
            Server::CapnetRun => "capnet-run",
            Server::Baseline => "wasmtime-wasi",
            Server::BaselineRun => "wasmtime-wasi-run",
            Server::Native => "native",
            Server::NativeRun => "native-tokio",
            Server::NativeStd => "native-std",
        }
    }

    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether this server has `guest`'s logic: blocking `std` has no `poll` loop. The 0.3
    /// guests run as users run them, under `capnet run` and wasmtime-wasi's p3 sockets in a
    /// process of their own, against native tokio in one of its own.
    pub fn serves(self, guest: Guest) -> bool {
        if guest.is_p3() {
            return matches!(
                self,
                Server::CapnetRun | Server::BaselineRun | Server::NativeRun
            );
        }
        self != Server::NativeStd || guest != Guest::PollEcho
    }
}

/// A guest program and the native code that does what it does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Guest {
    /// `echo-server`: std::net, one connection at a time.
    Echo,
    /// `sink-server`: reads everything, answers with the byte count.
    Sink,
    /// `poll-echo`: many connections from one `poll` loop.
    PollEcho,
    /// `udp-echo`: std::net UDP.
    UdpEcho,
    /// `p3-echo-server`: `wasi:sockets@0.3.0` streams, every connection at once.
    P3Echo,
    /// `p3-sink-server`: the sink over `wasi:sockets@0.3.0` streams.
    P3Sink,
}

impl Guest {
    pub fn name(self) -> &'static str {
        match self {
            Guest::Echo => "echo-server",
            Guest::Sink => "sink-server",
            Guest::PollEcho => "poll-echo",
            Guest::UdpEcho => "udp-echo",
            Guest::P3Echo => "p3-echo-server",
            Guest::P3Sink => "p3-sink-server",
        }
    }

    pub const ALL: [Guest; 6] = [
        Guest::Echo,
        Guest::Sink,
        Guest::PollEcho,
        Guest::UdpEcho,
        Guest::P3Echo,
        Guest::P3Sink,
    ];

    pub fn from_name(name: &str) -> Option<Guest> {
        Guest::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Whether the guest is a `wasi:sockets@0.3.0` one (an engine with the async ABI).
    pub fn is_p3(self) -> bool {
        matches!(self, Guest::P3Echo | Guest::P3Sink)
    }

    /// Whether the guest counts what it reads instead of echoing it.
    fn sinks(self) -> bool {
        matches!(self, Guest::Sink | Guest::P3Sink)
    }
}

/// A server that runs until dropped: a task of this process, or a process of its own.
pub struct Running {
    pub addr: SocketAddr,
    serving: Serving,
}

enum Serving {
    Task(JoinHandle<()>),
    Process(Child),
}

impl Running {
    /// The server's process id when it runs in a process of its own.
    pub fn pid(&self) -> Option<u32> {
        match &self.serving {
            Serving::Task(_) => None,
            Serving::Process(child) => Some(child.id()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        match &mut self.serving {
            Serving::Task(task) => task.abort(),
            Serving::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The voluntary and involuntary context switches of every thread of process `pid` so far.
pub fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// The CPU time all threads of process `pid` have had so far, in nanoseconds (the first field
/// of each thread's `schedstat`: exact, where `stat`'s ticks are 10 ms).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A policy of realistic size: 999 rules that do not apply, then the ones that do.
fn realistic_policy() -> Policy {
    let mut builder = Policy::builder();
    for i in 0..999u32 {
        let target = format!("10.{}.{}.0/24:443", i / 256, i % 256);
        builder = builder.rule(Verdict::Allow, "connect", &target).unwrap();
    }
    builder
        .rule(Verdict::Allow, "listen", "127.0.0.1:0")
        .unwrap()
        .rule(Verdict::Allow, "udp", "127.0.0.1")
        .unwrap()
        .build()
}

/// Starts `guest` (compiled as `component`) under `server` on 127.0.0.1, port 0.
pub async fn start(
    server: Server,
    engine: &Engine,
    guest: Guest,
    component: &Component,
) -> Running {
    match server {
        Server::Native => return native(guest).await,
        Server::CapnetRun | Server::BaselineRun | Server::NativeRun | Server::NativeStd => {
            return process(server, guest);
        }
        Server::Capnet | Server::Baseline => {}
    }
    let stdout = MemoryOutputPipe::new(4096);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&[guest.name(), "127.0.0.1:0"])
        .stdout(stdout.clone())
        .inherit_stderr();
    let (engine, component) = (engine.clone(), component.clone());
    let task = if server == Server::Capnet {
        let capnet = CapnetCtx::builder().policy(realistic_policy()).build();
        let host = CommandHost::new(wasi.build(), capnet);
        let linker = host::linker(&engine).unwrap();
        tokio::spawn(async move {
            host::run_command(&engine, &linker, &component, host).await;
        })
    } else {
        let (baseline, linker) = baseline(wasi, &engine, guest);
        tokio::spawn(async move {
            run_baseline(&engine, &linker, &component, baseline).await;
        })
    };
    let addr = loop {
        let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
        if let Some(addr) = out.lines().find_map(|l| l.strip_prefix("listening on ")) {
            break addr.trim().parse().unwrap();
        }
        assert!(
            !task.is_finished(),
            "{} ended before listening",
            guest.name()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    Running {
        addr,
        serving: Serving::Task(task),
    }
}

/// Where `capnet run` comes from: `CAPNET_BENCH_CAPNET`, else the `capnet` built beside this
/// benchmark (`target/release/capnet`).
pub fn capnet_binary() -> std::path::PathBuf {
    std::env::var_os("CAPNET_BENCH_CAPNET")
        .map(Into::into)
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("capnet"))
}

/// The baseline host's store data and linker for `guest` with the `wasi` context given.
fn baseline(
    mut wasi: WasiCtxBuilder,
    engine: &Engine,
    guest: Guest,
) -> (Baseline, Linker<Baseline>) {
    // wasmtime-wasi 48 allows no TCP, UDP or lookup until told; then every address.
    wasi.inherit_network()
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(true);
    let baseline = Baseline {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        memory: GuestMemory::default(),
    };
    (baseline, baseline_linker(engine, guest.is_p3()))
}

/// Runs the command to its end; whether it ended with success.
async fn run_baseline(
    engine: &Engine,
    linker: &Linker<Baseline>,
    component: &Component,
    baseline: Baseline,
) -> bool {
    let mut store = wasmtime::Store::new(engine, baseline);
    store.limiter(|baseline| &mut baseline.memory);
    if host::is_p3_command(engine, component) {
        let command =
            wasmtime_wasi::p3::bindings::Command::instantiate_async(&mut store, component, linker)
                .await
                .unwrap();
        let result = store
            .run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await)
            .await;
        return matches!(result, Ok(Ok(Ok(()))));
    }
    let command =
        wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut store, component, linker)
            .await
            .unwrap();
    matches!(
        command.wasi_cli_run().call_run(&mut store).await,
        Ok(Ok(()))
    )
}

/// The child of [`process`] for [`Server::BaselineRun`]: the baseline host serving `guest` on
/// 127.0.0.1, port 0, in this process, on one thread with its reactor as `capnet run` does.
pub fn serve_baseline(guest: Guest) {
    let engine = &crate::baseline_engine_for(guest);
    let component = crate::compile(engine, &capnet_tests::guest(guest.name()));
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&[guest.name(), "127.0.0.1:0"])
        .inherit_stdout()
        .inherit_stderr();
    let (baseline, linker) = baseline(wasi, engine, guest);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_baseline(engine, &linker, &component, baseline));
}

/// `capnet-bench --run-wasmtime-wasi COMPONENT ARGS...`, the child of the soak under `--host
/// wasmtime-wasi`: a WASI 0.2 command under the baseline host with every network use allowed,
/// its stdio inherited, printing its memory on SIGUSR1 as `capnet run` does. Exits 0 when the
/// command succeeds, else 1.
pub fn run_command_baseline(component: &std::path::Path, args: &[String]) -> ! {
    let engine = &crate::engine();
    let compiled = crate::compile(engine, component);
    let name = component
        .file_stem()
        .map_or("command".into(), |n| n.to_string_lossy());
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(name).args(args).inherit_stdio();
    // Any 0.2 guest: the linker of one.
    let (baseline, linker) = baseline(wasi, engine, Guest::Echo);
    let memory = baseline.memory.clone();
    let succeeded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            host::print_memory_on_sigusr1(memory).unwrap();
            run_baseline(engine, &linker, &compiled, baseline).await
        });
    std::process::exit(if succeeded { 0 } else { 1 })
}

/// Starts `guest` under `capnet run`, under the baseline host (this binary again, with
/// `--wasmtime-wasi`) or as its logic in tokio (`--native-tokio`) or blocking `std`
/// (`--native-std`), as a process of its own whose stdout says where it listens. Each inherits
/// this process's CPU pinning.
fn process(server: Server, guest: Guest) -> Running {
    let mut command = if server == Server::CapnetRun {
        let binary = capnet_binary();
        assert!(
            binary.exists(),
            "{} is missing: cargo build --release --workspace",
            binary.display()
        );
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--cache-dir")
            .arg(std::env::temp_dir().join("capnet-bench-cache"))
            .args(["--allow-listen", "127.0.0.1:0", "--allow-udp", "127.0.0.1"])
            .arg(capnet_tests::guest(guest.name()))
            .arg("127.0.0.1:0");
        command
    } else {
        let flag = match server {
            Server::BaselineRun => "--wasmtime-wasi",
            Server::NativeRun => "--native-tokio",
            _ => "--native-std",
        };
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([flag, guest.name()]);
        command
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "{} under {}: no address in {line:?}",
                guest.name(),
                server.name()
            )
        })
        .parse()
        .unwrap();
    Running {
        addr,
        serving: Serving::Process(child),
    }
}

/// The child of [`process`] for [`Server::NativeStd`]: `guest`'s logic in blocking `std` on
/// 127.0.0.1, port 0, one connection at a time, reading as much at once as the guest does.
pub fn serve_std(guest: Guest) {
    if guest == Guest::UdpEcho {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        announce(socket.local_addr().unwrap());
        let mut buf = vec![0; 65_535];
        loop {
            let (n, from) = socket.recv_from(&mut buf).unwrap();
            let _ = socket.send_to(&buf[..n], from);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    announce(listener.local_addr().unwrap());
    let size = if guest == Guest::Sink { 256 } else { 64 };
    let mut buf = vec![0; size * 1024];
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut total = 0u64;
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            total += n as u64;
            if guest != Guest::Sink && stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if guest == Guest::Sink {
            let _ = writeln!(stream, "{total}");
        }
    }
}

fn announce(addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}").unwrap();
    stdout.flush().unwrap();
}

/// wasmtime-wasi's p2 and p3 worlds (a 0.3 Rust guest takes its arguments and stdio from
/// 0.2 and its sockets from 0.3), plus an empty `capnet:sockets/preopens` so guests that ask
/// for pre-opened listeners link and then bind their own.
fn baseline_linker(engine: &Engine, p3: bool) -> Linker<Baseline> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    if p3 {
        wasmtime_wasi::p3::add_to_linker(&mut linker).unwrap();
    }
    linker
        .instance("capnet:sockets/preopens@0.1.0")
        .unwrap()
        .func_new("take-tcp-listeners", |_, _, _, results| {
            results[0] = Val::List(Vec::new());
            Ok(())
        })
        .unwrap();
    linker
}

/// The baseline host's store data: `wasmtime-wasi` alone, sockets included.
struct Baseline {
    wasi: WasiCtx,
    table: ResourceTable,
    /// What the guest's linear memory takes, as `capnet run` counts it.
    memory: GuestMemory,
}

impl WasiView for Baseline {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The child of [`process`] for [`Server::NativeRun`]: `guest`'s logic in tokio on 127.0.0.1,
/// port 0, on a current-thread runtime as `capnet run` uses, every connection a task.
pub fn serve_tokio(guest: Guest) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let running = native(guest).await;
            announce(running.addr);
            // Served by its tasks until the bench kills this process.
            std::future::pending::<()>().await;
            drop(running);
        });
}

pub async fn native(guest: Guest) -> Running {
    if guest == Guest::UdpEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 65_535];
            loop {
                let (n, from) = socket.recv_from(&mut buf).await.unwrap();
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        return Running {
            addr,
            serving: Serving::Task(task),
        };
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_native(stream, guest));
        }
    });
    Running {
        addr,
        serving: Serving::Task(task),
    }
}

/// The guests' logic in tokio: read as much as the guest reads at once (256 KiB for the sink,
/// 64 KiB for the echoes), echo it back, or count it and answer with the count as the sink does.
async fn serve_native(mut stream: TcpStream, guest: Guest) {
    let size = if guest.sinks() { 256 } else { 64 };
    let mut buf = vec![0; size * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if !guest.sinks() && stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    if guest.sinks() {
        let _ = stream.write_all(format!("{total}\n").as_bytes()).await;
    }
}
