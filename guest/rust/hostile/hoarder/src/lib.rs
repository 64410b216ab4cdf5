//! A hostile library for the attack suite: it stands in for the nano example's weather library
//! and, asked for a forecast, binds UDP sockets until the host refuses one, keeping them all,
//! so that the app (and the other libraries) would find no descriptor left.
//!
//! `fetch(_)` returns `held N: ERROR`, N the sockets it got before the refusal.

use std::net::UdpSocket;

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../../nano/wit", world: "weather-library" });
}

use bindings::exports::capnet::example::weather::Guest;

struct Hoarder;

/// More than any limit a test sets; the host's own descriptor limit is far above it too.
const AT_MOST: usize = 4096;

impl Guest for Hoarder {
    fn fetch(_: String) -> Result<String, String> {
        let mut held = Vec::new();
        while held.len() < AT_MOST {
            match UdpSocket::bind("0.0.0.0:0") {
                Ok(socket) => held.push(socket),
                Err(e) => return Ok(format!("held {}: {:?}", held.len(), e.kind())),
            }
        }
        Ok(format!("held {}: no refusal", held.len()))
    }
}

bindings::export!(Hoarder with_types_in bindings);
