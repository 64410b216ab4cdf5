//! An embedder that builds its own linker: wasmtime-wasi's whole 0.2 world, capnet's sockets
//! over it, then capnet's socket streams, serving a guest over real sockets.

use capnet::policy::Verdict::Allow;
use capnet::{CapnetCtx, CapnetCtxView, CapnetView};
use capnet_tests::{guest, pattern, policy};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct Host {
    wasi: WasiCtx,
    capnet: CapnetCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CapnetView for Host {
    fn capnet(&mut self) -> CapnetCtxView<'_> {
        CapnetCtxView {
            ctx: &mut self.capnet,
            table: &mut self.table,
        }
    }
}

/// wasmtime-wasi's 0.2 world with its sockets replaced by capnet's, and then the socket
/// streams: the order an embedder with its own `wasi:io` follows.
fn embedder_linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.allow_shadowing(true);
    capnet::add_to_linker(&mut linker).unwrap();
    linker.allow_shadowing(false);
    capnet::add_socket_streams_to_linker(&mut linker).unwrap();
    linker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_streams_over_an_embedders_own_wasi_echo_intact_and_leave_stdout_to_wasi() {
    let engine = capnet_cli::host::engine().unwrap();
    let component = Component::from_file(&engine, guest("echo-server")).unwrap();
    let linker = embedder_linker(&engine);
    let stdout = MemoryOutputPipe::new(4096);
    let host = Host {
        wasi: WasiCtxBuilder::new()
            .args(&["echo-server", "127.0.0.1:0", "1"])
            .stdout(stdout.clone())
            .build(),
        capnet: CapnetCtx::builder()
            .policy(policy(&[(Allow, "listen", "127.0.0.1:0")]))
            .build(),
        table: ResourceTable::new(),
    };
    let served = tokio::spawn(async move {
        let mut store = Store::new(&engine, host);
        let command = Command::instantiate_async(&mut store, &component, &linker)
            .await
            .unwrap();
        command.wasi_cli_run().call_run(&mut store).await.unwrap()
    });
    // The guest's stdout is a wasmtime-wasi stream: its `listening on` line comes through the
    // replaced `write` unchanged.
    let addr = loop {
        let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
        if let Some(addr) = out.lines().find_map(|l| l.strip_prefix("listening on ")) {
            break addr.trim().parse::<std::net::SocketAddr>().unwrap();
        }
        assert!(!served.is_finished(), "the guest ended before listening");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    // Large reads go straight from the socket into the guest's lists, small ones through the
    // scratch buffer: both sizes, in order.
    let data = pattern(8 << 20, 3);
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent[..1]).await.unwrap();
        for chunk in sent[1..].chunks(300 * 1024) {
            wr.write_all(chunk).await.unwrap();
        }
        wr.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    rd.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len(), "every byte comes back");
    assert!(back == data, "the bytes come back unchanged and in order");
    assert_eq!(served.await.unwrap(), Ok(()), "the guest ends well");
}
