//! `cargo run --release -p capnet-bench [-- --quick]`: the same guest `.wasm` served by capnet
//! (behind a 1,000-rule policy whose allowing rule is last), by a baseline host on
//! `wasmtime-wasi`'s own p2 sockets with `inherit_network`, and by native tokio code with the
//! same logic, each driven by the same native client. Prints medians with min-max over the runs
//! and the ratios capnet/baseline and capnet/native.
//!
//! On these 2-vCPU machines a wake-up across CPUs costs ~100 µs: run it pinned,
//! `taskset -c 0 cargo run --release -p capnet-bench`, and say which pinning a figure is from.

use capnet::CapnetCtx;
use capnet::policy::{Policy, Verdict};
use capnet_cli::host::{self, CommandHost};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Capnet,
    Baseline,
    Native,
}

const SERVERS: [Server; 3] = [Server::Capnet, Server::Baseline, Server::Native];

struct Sizes {
    runs: usize,
    bulk: usize,
    round_trips: usize,
    connections: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            runs: 3,
            bulk: 64 << 20,
            round_trips: 2_000,
            connections: 200,
        }
    } else {
        Sizes {
            runs: 5,
            bulk: 1 << 30,
            round_trips: 20_000,
            connections: 2_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(sizes));
}

/// One scenario's figures per server, higher is better.
struct Row {
    name: String,
    unit: &'static str,
    figures: Vec<Vec<f64>>,
}

async fn run(sizes: Sizes) {
    let engine = host::engine().unwrap();
    let echo = component(&engine, "echo-server");
    let sink = component(&engine, "sink-server");
    let mut rows = Vec::new();

    let mut echo_rows = [
        Row {
            name: format!("echo {} MiB, 256 KiB writes", sizes.bulk >> 20),
            unit: "MB/s",
            figures: vec![],
        },
        Row {
            name: "1-byte ping-pong".into(),
            unit: "round trips/s",
            figures: vec![],
        },
        Row {
            name: "1 KiB request/response".into(),
            unit: "round trips/s",
            figures: vec![],
        },
        Row {
            name: "connection rate (connect, 1 byte each way, close)".into(),
            unit: "conn/s",
            figures: vec![],
        },
    ];
    let mut sink_row = Row {
        name: format!("sink {} MiB", sizes.bulk >> 20),
        unit: "MB/s",
        figures: vec![],
    };

    for server in SERVERS {
        eprintln!("bench: {}", name(server));
        let (addr, task) = start(server, &engine, &echo, Logic::Echo).await;
        let mut bulk = Vec::new();
        let mut ping = Vec::new();
        let mut kib = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..sizes.runs {
            bulk.push(echo_bulk(addr, sizes.bulk).await);
            ping.push(ping_pong(addr, 1, sizes.round_trips).await);
            kib.push(ping_pong(addr, 1024, sizes.round_trips / 2).await);
            conns.push(connection_rate(addr, sizes.connections).await);
        }
        echo_rows[0].figures.push(bulk);
        echo_rows[1].figures.push(ping);
        echo_rows[2].figures.push(kib);
        echo_rows[3].figures.push(conns);
        task.abort();

        let (addr, task) = start(server, &engine, &sink, Logic::Sink).await;
        sink_row
            .figures
            .push((0..sizes.runs).map(|_| 0.0).collect());
        for run in 0..sizes.runs {
            sink_row.figures.last_mut().unwrap()[run] = sink_bulk(addr, sizes.bulk).await;
        }
        task.abort();
    }
    rows.extend(echo_rows);
    rows.push(sink_row);
    print_table(&rows, sizes.runs);
}

fn name(server: Server) -> &'static str {
    match server {
        Server::Capnet => "capnet",
        Server::Baseline => "wasmtime-wasi",
        Server::Native => "native",
    }
}

fn component(engine: &Engine, name: &str) -> Component {
    Component::from_file(engine, capnet_tests::guest(name)).unwrap()
}

#[derive(Clone, Copy)]
enum Logic {
    Echo,
    Sink,
}

/// A policy of realistic size: 999 rules that do not apply, then the one that does.
fn realistic_policy() -> Policy {
    let mut builder = Policy::builder();
    for i in 0..999u32 {
        let target = format!("10.{}.{}.0/24:443", i / 256, i % 256);
        builder = builder.rule(Verdict::Allow, "connect", &target).unwrap();
    }
    builder
        .rule(Verdict::Allow, "listen", "127.0.0.1:0")
        .unwrap()
        .build()
}

async fn start(
    server: Server,
    engine: &Engine,
    guest: &Component,
    logic: Logic,
) -> (SocketAddr, JoinHandle<()>) {
    if server == Server::Native {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(native(stream, logic));
            }
        });
        return (addr, task);
    }
    let stdout = MemoryOutputPipe::new(4096);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&["guest", "127.0.0.1:0"])
        .stdout(stdout.clone())
        .inherit_stderr();
    let task = if server == Server::Capnet {
        let capnet = CapnetCtx::builder().policy(realistic_policy()).build();
        let host = CommandHost::new(wasi.build(), capnet);
        let linker = host::linker(engine).unwrap();
        let (engine, guest) = (engine.clone(), guest.clone());
        tokio::spawn(async move {
            host::run_command(&engine, &linker, &guest, host).await;
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
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        let (engine, guest) = (engine.clone(), guest.clone());
        tokio::spawn(async move {
            let mut store = Store::new(&engine, baseline);
            let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
                &mut store, &guest, &linker,
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    (addr, task)
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

async fn native(mut stream: TcpStream, logic: Logic) {
    let mut buf = vec![0; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if let Logic::Echo = logic
            && stream.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
    if let Logic::Sink = logic {
        let _ = stream.write_all(format!("{total}\n").as_bytes()).await;
    }
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

async fn echo_bulk(addr: SocketAddr, total: usize) -> f64 {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5a; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            wr.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        wr.shutdown().await.unwrap();
    });
    let mut buf = vec![0; 256 * 1024];
    let mut got = 0;
    while got < total {
        let n = rd.read(&mut buf).await.unwrap();
        assert!(n > 0, "echo closed early after {got} bytes");
        got += n;
    }
    let took = start.elapsed();
    writer.await.unwrap();
    mb_per_s(total, took)
}

async fn sink_bulk(addr: SocketAddr, total: usize) -> f64 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let chunk = vec![0x5a; 256 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        stream.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let took = start.elapsed();
    assert_eq!(
        reply.trim(),
        total.to_string(),
        "the sink counted every byte"
    );
    mb_per_s(total, took)
}

async fn ping_pong(addr: SocketAddr, size: usize, round_trips: usize) -> f64 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let msg = vec![7u8; size];
    let mut back = vec![0u8; size];
    let start = Instant::now();
    for _ in 0..round_trips {
        stream.write_all(&msg).await.unwrap();
        stream.read_exact(&mut back).await.unwrap();
    }
    round_trips as f64 / start.elapsed().as_secs_f64()
}

async fn connection_rate(addr: SocketAddr, connections: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).await.unwrap();
    }
    connections as f64 / start.elapsed().as_secs_f64()
}

fn median_min_max(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn print_table(rows: &[Row], runs: usize) {
    println!("medians of {runs} runs (min-max); higher is better");
    println!(
        "{:<52} {:>24} {:>24} {:>24} {:>9} {:>9}",
        "scenario", "capnet", "wasmtime-wasi", "native", "/baseline", "/native"
    );
    for row in rows {
        let cells: Vec<(f64, f64, f64)> = row.figures.iter().map(|f| median_min_max(f)).collect();
        let cell = |(m, lo, hi): (f64, f64, f64)| format!("{m:.0} ({lo:.0}-{hi:.0})");
        println!(
            "{:<52} {:>24} {:>24} {:>24} {:>9.2} {:>9.2}",
            format!("{} [{}]", row.name, row.unit),
            cell(cells[0]),
            cell(cells[1]),
            cell(cells[2]),
            cells[0].0 / cells[1].0,
            cells[0].0 / cells[2].0,
        );
    }
}
