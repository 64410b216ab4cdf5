//! The metrics library: an ordinary `std::net` UDP sender, nothing capnet-specific in it.
//!
//! Composed into an app with its own named import of `wasi:sockets/instance-network`, every
//! datagram it sends is checked against the library's grant, not the app's.

use std::net::{SocketAddr, UdpSocket};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "metrics-library" });
}

use bindings::exports::capnet::example::metrics::Guest;

struct Metrics;

impl Guest for Metrics {
    fn send(addr: String, line: String) -> Result<(), String> {
        let failed = |e: std::io::Error| format!("{:?}: {e}", e.kind());
        let peer: SocketAddr = addr.parse().map_err(|e| format!("InvalidInput: {e}"))?;
        let local = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).map_err(failed)?;
        socket.send_to(line.as_bytes(), peer).map_err(failed)?;
        Ok(())
    }
}

bindings::export!(Metrics with_types_in bindings);
