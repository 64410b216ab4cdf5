//! `p3-teardown MODE CONTROL TARGET`, for `wasi:sockets@0.3.0`: a guest that walks away from
//! its sockets mid-operation, so a test can check that the host closes what it held and the
//! peer sees the close. It first connects to CONTROL; at each step it writes a line there
//! naming the step and waits for one byte back, so the test can look at the host in between.
//!
//! MODE is one of:
//! - `connect-cancel`: a connect to TARGET (a listener whose backlog is full) is given up after
//!   200 ms, its future dropped mid-handshake (`connect cancelled`); then the socket is
//!   dropped (`socket dropped`).
//! - `receive-drop`: connects to TARGET, reads at least 64 KiB of what it streams, then drops
//!   the receive stream with more in flight (`receive dropped`); the send side still works:
//!   it sends `still here` and ends (`sent: ok`); then the socket is dropped (`socket dropped`).
//! - `send-close`: connects to TARGET, which does not read, writes 64 MiB of `i % 251` bytes
//!   and gives up after 300 ms, ending the stream with the write unfinished (`send ended:
//!   ok`); the receive side still works: it reads all TARGET sends (`received: TEXT`).
//! - `exit-open` and `return-open`: opens a listener on 127.0.0.1:0, a connection to TARGET
//!   (greeting it with `hello`, its receive stream read by a task that never finishes) and a
//!   UDP socket (`open LISTENER`), then exits with `exit(0)` or returns from `run` with all of
//!   them still open.
//! - `trap`: connects to TARGET, says `echoing`, echoes what it streams, and traps after
//!   1 MiB with both streams busy.
//!
//! The program is the component's `wasi:cli/run@0.3.0` (see p3-tcp-client for std's 0.2 one).

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "command",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use p3_net::wasi::sockets::types::{ErrorCode, IpAddressFamily, TcpSocket, UdpSocket};
use p3_net::wit_stream;
use std::net::SocketAddr;
use wit_bindgen::{StreamReader, StreamResult, StreamWriter};

use p3_net::{code_name, family, from_wit, to_wit, within};

type Outcome<T> = Result<T, String>;

/// `operation: code` for a failed call.
fn failed(operation: &'static str) -> impl Fn(ErrorCode) -> String {
    move |code| format!("{operation}: {}", code_name(&code))
}

/// The test's side channel: a line per step, one byte back to go on.
struct Control {
    to_test: StreamWriter<u8>,
    from_test: StreamReader<u8>,
    _socket: TcpSocket,
}

impl Control {
    async fn connect(addr: SocketAddr) -> Outcome<Control> {
        let socket = connected(addr).await?;
        let (to_test, outgoing) = wit_stream::new::<u8>();
        // The outcome future is not needed: a broken control channel shows in the test.
        drop(socket.send(outgoing));
        let (from_test, _) = socket.receive();
        Ok(Control {
            to_test,
            from_test,
            _socket: socket,
        })
    }

    /// Tells the test `what` happened and waits for its go-ahead.
    async fn step(&mut self, what: &str) {
        let _ = self
            .to_test
            .write_all(format!("{what}\n").into_bytes())
            .await;
        let _ = self.from_test.read(Vec::with_capacity(1)).await;
    }
}

async fn connected(addr: SocketAddr) -> Outcome<TcpSocket> {
    let socket = TcpSocket::create(family(&addr)).map_err(failed("create"))?;
    socket
        .connect(to_wit(addr))
        .await
        .map_err(failed("connect"))?;
    Ok(socket)
}

/// Reads `from` to its end, as text.
async fn read_to_end(from: &mut StreamReader<u8>) -> String {
    let mut all = Vec::new();
    loop {
        let (result, chunk) = from.read(Vec::with_capacity(64 * 1024)).await;
        all.extend_from_slice(&chunk);
        if let StreamResult::Dropped = result {
            return String::from_utf8_lossy(&all).into_owned();
        }
    }
}

async fn connect_cancel(ctl: &mut Control, target: SocketAddr) -> Outcome<()> {
    let socket = TcpSocket::create(family(&target)).map_err(failed("create"))?;
    match within(200, socket.connect(to_wit(target))).await {
        None => ctl.step("connect cancelled").await,
        Some(result) => return Err(format!("connect finished: {result:?}")),
    }
    drop(socket);
    ctl.step("socket dropped").await;
    Ok(())
}

async fn receive_drop(ctl: &mut Control, target: SocketAddr) -> Outcome<()> {
    let socket = connected(target).await?;
    let (mut from_peer, received) = socket.receive();
    let mut got = 0;
    while got < 64 * 1024 {
        let (result, chunk) = from_peer.read(Vec::with_capacity(16 * 1024)).await;
        got += chunk.len();
        if let StreamResult::Dropped = result {
            return Err(format!("the peer ended after {got} bytes"));
        }
    }
    drop(from_peer);
    drop(received);
    ctl.step("receive dropped").await;
    let (mut to_peer, outgoing) = wit_stream::new::<u8>();
    let sent = socket.send(outgoing);
    to_peer.write_all(b"still here".to_vec()).await;
    drop(to_peer);
    sent.await.map_err(failed("send"))?;
    ctl.step("sent: ok").await;
    drop(socket);
    ctl.step("socket dropped").await;
    Ok(())
}

async fn send_close(ctl: &mut Control, target: SocketAddr) -> Outcome<()> {
    let socket = connected(target).await?;
    let (mut to_peer, outgoing) = wit_stream::new::<u8>();
    let sent = socket.send(outgoing);
    let data: Vec<u8> = (0..64 << 20).map(|i: u32| (i % 251) as u8).collect();
    if within(300, to_peer.write_all(data)).await.is_some() {
        return Err("the peer took 64 MiB without reading".into());
    }
    drop(to_peer);
    match sent.await {
        Ok(()) => ctl.step("send ended: ok").await,
        Err(code) => ctl.step(&format!("send ended: {}", code_name(&code))).await,
    }
    let (mut from_peer, received) = socket.receive();
    let text = read_to_end(&mut from_peer).await;
    received.await.map_err(failed("receive"))?;
    ctl.step(&format!("received: {text}")).await;
    Ok(())
}

async fn leave_open(ctl: &mut Control, target: SocketAddr, exit: bool) -> Outcome<()> {
    let listener = TcpSocket::create(IpAddressFamily::Ipv4).map_err(failed("create"))?;
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(to_wit(local)).map_err(failed("bind"))?;
    let accepts = listener.listen().map_err(failed("listen"))?;
    let bound = listener
        .get_local_address()
        .map_err(failed("local-address"))?;
    let conn = connected(target).await?;
    let (mut to_peer, outgoing) = wit_stream::new::<u8>();
    let sent = conn.send(outgoing);
    to_peer.write_all(b"hello".to_vec()).await;
    let (mut from_peer, received) = conn.receive();
    let udp = UdpSocket::create(IpAddressFamily::Ipv4).map_err(failed("udp create"))?;
    udp.bind(to_wit(local)).map_err(failed("udp bind"))?;
    // A task that waits for bytes that never come, holding everything.
    wit_bindgen::spawn_local(async move {
        let _held = (listener, accepts, conn, to_peer, sent, received, udp);
        let _ = from_peer.read(Vec::with_capacity(1)).await;
    });
    ctl.step(&format!("open {}", from_wit(bound))).await;
    if exit {
        std::process::exit(0);
    }
    Ok(())
}

async fn trap(ctl: &mut Control, target: SocketAddr) -> Outcome<()> {
    let socket = connected(target).await?;
    let (mut from_peer, _received) = socket.receive();
    let (mut to_peer, outgoing) = wit_stream::new::<u8>();
    let _sent = socket.send(outgoing);
    ctl.step("echoing").await;
    let mut echoed = 0;
    loop {
        let (result, chunk) = from_peer.read(Vec::with_capacity(64 * 1024)).await;
        echoed += chunk.len();
        if !to_peer.write_all(chunk).await.is_empty() || matches!(result, StreamResult::Dropped) {
            return Err(format!("the echo ended after {echoed} bytes"));
        }
        if echoed >= 1 << 20 {
            // A trap with both streams busy: only this instance may end.
            core::arch::wasm32::unreachable();
        }
    }
}

struct Teardown;

impl bindings::exports::wasi::cli::run::Guest for Teardown {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [mode, control, target] = &args[..] else {
            eprintln!("error: expected three arguments\nusage: p3-teardown MODE CONTROL TARGET");
            return Err(());
        };
        let (Ok(control), Ok(target)) = (control.parse(), target.parse()) else {
            eprintln!("error: CONTROL and TARGET are IP:PORT");
            return Err(());
        };
        let outcome = async {
            let mut ctl = Control::connect(control).await?;
            match mode.as_str() {
                "connect-cancel" => connect_cancel(&mut ctl, target).await,
                "receive-drop" => receive_drop(&mut ctl, target).await,
                "send-close" => send_close(&mut ctl, target).await,
                "exit-open" => leave_open(&mut ctl, target, true).await,
                "return-open" => leave_open(&mut ctl, target, false).await,
                "trap" => trap(&mut ctl, target).await,
                other => Err(format!("no mode {other:?}")),
            }
        };
        outcome
            .await
            .map_err(|problem| eprintln!("error: {problem}"))
    }
}

bindings::export!(Teardown with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
