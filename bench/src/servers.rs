//! The three servers every scenario runs against: capnet, the wasmtime-wasi baseline, and
//! native tokio code with the guests' logic.

use capnet::CapnetCtx;
use capnet::policy::{Policy, Verdict};
use capnet_cli::host::{self, CommandHost};
use std::net::SocketAddr;
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
    Capnet,
    Baseline,
    Native,
}

impl Server {
    pub const ALL: [Server; 3] = [Server::Capnet, Server::Baseline, Server::Native];

    pub fn name(self) -> &'static str {
        match self {
            Server::Capnet => "capnet",
            Server::Baseline => "wasmtime-wasi",
            Server::Native => "native",
        }
    }

    pub fn from_name(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
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
}

impl Guest {
    pub fn name(self) -> &'static str {
        match self {
            Guest::Echo => "echo-server",
            Guest::Sink => "sink-server",
            Guest::PollEcho => "poll-echo",
            Guest::UdpEcho => "udp-echo",
        }
    }

    pub fn from_name(name: &str) -> Option<Guest> {
        [Guest::Echo, Guest::Sink, Guest::PollEcho, Guest::UdpEcho]
            .into_iter()
            .find(|g| g.name() == name)
    }
}

/// A server that runs until aborted.
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
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
    if server == Server::Native {
        return native(guest).await;
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
        // wasmtime-wasi 48 allows no TCP, UDP or lookup until told; then every address.
        wasi.inherit_network()
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
        let baseline = Baseline {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        };
        let linker = baseline_linker(&engine);
        tokio::spawn(async move {
            let mut store = wasmtime::Store::new(&engine, baseline);
            let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
                &mut store, &component, &linker,
            )
            .await
            .unwrap();
            let _ = command.wasi_cli_run().call_run(&mut store).await;
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
    Running { addr, task }
}

/// wasmtime-wasi's p2 world, plus an empty `capnet:sockets/preopens` so guests that ask for
/// pre-opened listeners link and then bind their own.
fn baseline_linker(engine: &Engine) -> Linker<Baseline> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
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
}

impl WasiView for Baseline {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

async fn native(guest: Guest) -> Running {
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
        return Running { addr, task };
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_native(stream, guest));
        }
    });
    Running { addr, task }
}

/// The guests' logic in tokio: read as much as the guest reads at once (256 KiB for the sink,
/// 64 KiB for the echoes), echo it back, or count it and answer with the count as the sink does.
async fn serve_native(mut stream: TcpStream, guest: Guest) {
    let size = if guest == Guest::Sink { 256 } else { 64 };
    let mut buf = vec![0; size * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if guest != Guest::Sink && stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    if guest == Guest::Sink {
        let _ = stream.write_all(format!("{total}\n").as_bytes()).await;
    }
}
