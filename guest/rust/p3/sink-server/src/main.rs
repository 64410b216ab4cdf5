//! `p3-sink-server ADDR [MAX_CONNS]`, for `wasi:sockets@0.3.0`: listens on ADDR, prints
//! `listening on <addr>`, and reads every connection to its end, 256 KiB at a time, discarding
//! the bytes; then answers with the number of bytes it read (`<count>\n`) and closes. Each
//! connection is served by a task of its own. The benchmark's 0.3 receive-throughput guest,
//! the twin of sink-server.
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
        p3_net::serve_connections("p3-sink-server", sink).await
    }
}

/// Reads all `client` sends, then tells it how many bytes that was.
async fn sink(client: TcpSocket) {
    let (mut from_peer, received) = client.receive();
    let mut buffer = Vec::with_capacity(256 * 1024);
    let mut total = 0u64;
    loop {
        let (result, chunk) = from_peer.read(buffer).await;
        total += chunk.len() as u64;
        buffer = chunk;
        buffer.clear();
        if let wit_bindgen::StreamResult::Dropped = result {
            break;
        }
    }
    let _ = received.await;
    let (mut to_peer, outgoing) = p3_net::wit_stream::new::<u8>();
    let sent = client.send(outgoing);
    to_peer.write_all(format!("{total}\n").into_bytes()).await;
    drop(to_peer);
    let _ = sent.await;
}

bindings::export!(Server with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
