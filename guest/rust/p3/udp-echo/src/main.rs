//! `p3-udp-echo ADDR [MAX_DATAGRAMS]`, for `wasi:sockets@0.3.0`: binds a UDP socket to ADDR,
//! prints `listening on <addr>`, and sends every datagram back to its sender; after
//! MAX_DATAGRAMS datagrams it exits 0. A failure prints `error: OPERATION ADDR: CODE`.

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

use p3_net::wasi::sockets::types::UdpSocket;
use std::io::Write;
use std::net::SocketAddr;

use p3_net::{code_name, family, from_wit, to_wit};

struct Echo;

impl bindings::exports::wasi::cli::run::Guest for Echo {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let (addr, max) = match &args[..] {
            [addr] => (addr, None),
            [addr, max] => (addr, max.parse::<usize>().ok()),
            _ => {
                eprintln!("error: expected ADDR [MAX_DATAGRAMS]");
                return Err(());
            }
        };
        let Ok(local) = addr.parse::<SocketAddr>() else {
            eprintln!("error: {addr} is not IP:PORT");
            return Err(());
        };
        let fail = |operation: &str, code| {
            eprintln!("error: {operation} {addr}: {}", code_name(&code));
        };
        let socket = UdpSocket::create(family(&local)).map_err(|c| fail("create", c))?;
        socket.bind(to_wit(local)).map_err(|c| fail("bind", c))?;
        let bound = socket
            .get_local_address()
            .map_err(|c| fail("local-address", c))?;
        println!("listening on {}", from_wit(bound));
        let _ = std::io::stdout().flush();
        let mut echoed = 0;
        while max.is_none_or(|max| echoed < max) {
            let (data, from) = socket.receive().await.map_err(|c| fail("receive", c))?;
            socket
                .send(data, Some(from))
                .await
                .map_err(|c| fail("send", c))?;
            echoed += 1;
        }
        Ok(())
    }
}

bindings::export!(Echo with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
