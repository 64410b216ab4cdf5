//! `p3-tcp-client ADDR MESSAGE`, for `wasi:sockets@0.3.0`: connects to ADDR, sends MESSAGE
//! through a `stream<u8>`, ends it, and prints everything the peer sends back until it ends.
//!
//! The program is the component's `wasi:cli/run@0.3.0`. Rust's std also exports
//! `wasi:cli/run@0.2.0`, whose `main` here only reports that the wrong entry point ran.
//! A failure prints `error: OPERATION ADDR: CODE` with the WIT error code and exits 1.

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

use p3_net::wasi::sockets::types::{ErrorCode, TcpSocket};
use std::io::Write;
use std::net::SocketAddr;

use p3_net::{code_name, family, to_wit};

struct Client;

impl bindings::exports::wasi::cli::run::Guest for Client {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [addr, message] = &args[..] else {
            eprintln!("error: expected two arguments\nusage: p3-tcp-client ADDR MESSAGE");
            return Err(());
        };
        let Ok(peer) = addr.parse::<SocketAddr>() else {
            eprintln!("error: {addr} is not IP:PORT");
            return Err(());
        };
        let fail = |operation: &str, code: ErrorCode| {
            eprintln!("error: {operation} {addr}: {}", code_name(&code));
        };
        let socket = TcpSocket::create(family(&peer)).map_err(|c| fail("create", c))?;
        socket
            .connect(to_wit(peer))
            .await
            .map_err(|c| fail("connect", c))?;
        let (mut to_peer, outgoing) = p3_net::wit_stream::new::<u8>();
        let sent = socket.send(outgoing);
        let (mut from_peer, received) = socket.receive();
        let left = to_peer.write_all(message.as_bytes().to_vec()).await;
        drop(to_peer);
        if !left.is_empty() {
            eprintln!("error: send {addr}: the stream closed");
            return Err(());
        }
        sent.await.map_err(|c| fail("send", c))?;
        let mut reply = Vec::new();
        loop {
            let (result, chunk) = from_peer.read(Vec::with_capacity(64 * 1024)).await;
            reply.extend_from_slice(&chunk);
            if let wit_bindgen::StreamResult::Dropped = result {
                break;
            }
        }
        received.await.map_err(|c| fail("receive", c))?;
        let mut out = std::io::stdout();
        let _ = out.write_all(&reply);
        let _ = out.flush();
        Ok(())
    }
}

bindings::export!(Client with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
