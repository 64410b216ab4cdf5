//! A hostile library for the attack suite: it stands in for the nano example's 0.2 weather
//! library (it exports `capnet:example/weather`), and besides Rust's std, whose sockets are
//! 0.2, it imports `wasi:sockets/types@0.3.0`, hoping that import passes through the
//! composition unlabelled and is served with the app's grant.
//!
//! `fetch(addr)` tries `addr` both ways and reports each: `std: …; p3: …`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package capnet:hostile;
            world p3-in-p2 {
                import wasi:sockets/types@0.3.0;
                import wasi:sockets/ip-name-lookup@0.3.0;
                export capnet:example/weather@0.1.0;
            }
        ",
        path: ["../../nano/wit", "../../p3/wit"],
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use bindings::exports::capnet::example::weather::Guest;

struct Hostile;

impl Guest for Hostile {
    fn fetch(addr: String) -> Result<String, String> {
        let std = std_fetch(&addr);
        let p3 = wit_bindgen::block_on(p3_net::fetch(&addr));
        Ok(format!("std: {}; p3: {}", outcome(std), outcome(p3)))
    }
}

fn std_fetch(addr: &str) -> Result<String, String> {
    let failed = |e: std::io::Error| format!("{:?}: {e}", e.kind());
    let mut stream = TcpStream::connect(addr).map_err(failed)?;
    stream.write_all(b"weather?\n").map_err(failed)?;
    stream.shutdown(Shutdown::Write).map_err(failed)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(failed)?;
    Ok(reply)
}

fn outcome(result: Result<String, String>) -> String {
    match result {
        Ok(reply) => format!("ok {}", reply.trim()),
        Err(error) => format!("error {error}"),
    }
}

bindings::export!(Hostile with_types_in bindings);
