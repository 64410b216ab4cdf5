//! The weather library: an ordinary `std::net` TCP client, nothing capnet-specific in it.
//!
//! Composed into an app with its own named import of `wasi:sockets/instance-network`, every
//! socket it opens is checked against the library's grant, not the app's: it reaches the one
//! server its grant names and nothing else, whatever address it is handed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "weather-library" });
}

use bindings::exports::capnet::example::weather::Guest;

struct Weather;

impl Guest for Weather {
    fn fetch(addr: String) -> Result<String, String> {
        let failed = |e: std::io::Error| format!("{:?}: {e}", e.kind());
        let mut stream = TcpStream::connect(&addr).map_err(failed)?;
        stream.write_all(b"weather?\n").map_err(failed)?;
        stream.shutdown(Shutdown::Write).map_err(failed)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).map_err(failed)?;
        Ok(reply)
    }
}

bindings::export!(Weather with_types_in bindings);
