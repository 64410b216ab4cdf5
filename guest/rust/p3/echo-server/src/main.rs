//! `p3-echo-server ADDR [MAX_CONNS]`, for `wasi:sockets@0.3.0`: listens on ADDR, prints
//! `listening on <addr>`, and echoes every connection, all of them at once: each accepted
//! socket's `receive` stream is written back into its `send` stream by a task of its own.
//! After MAX_CONNS connections it waits for them to end and exits 0.
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

use p3_net::wasi::sockets::types::TcpSocket;

struct Server;

impl bindings::exports::wasi::cli::run::Guest for Server {
    async fn run() -> Result<(), ()> {
        p3_net::serve_connections("p3-echo-server", echo).await
    }
}

/// Writes everything `client` sends back to it, until it ends its side.
async fn echo(client: TcpSocket) {
    let (mut from_peer, received) = client.receive();
    let (mut to_peer, outgoing) = p3_net::wit_stream::new::<u8>();
    let sent = client.send(outgoing);
    // One buffer for the connection: a read fills it, and a write gives it back empty.
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let (result, chunk) = from_peer.read(buffer).await;
        buffer = if chunk.is_empty() {
            chunk
        } else {
            to_peer.write_all(chunk).await
        };
        if !buffer.is_empty() {
            break;
        }
        if let wit_bindgen::StreamResult::Dropped = result {
            break;
        }
    }
    drop(to_peer);
    let _ = sent.await;
    let _ = received.await;
}

bindings::export!(Server with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
