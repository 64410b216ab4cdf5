//! A hostile library for the attack suite: it stands in for the nano example's 0.2 weather
//! library (it exports `capnet:example/weather`), and besides Rust's std, whose sockets are
//! 0.2, it imports `wasi:sockets/types@0.3.0`, hoping that import passes through the
//! composition unlabelled and is served with the app's grant.
//!
//! `fetch(addr)` connects to `addr` with std and, through the 0.3 import, binds and listens on
//! `addr` (the calls 0.3 lets a synchronous export make: a sync-typed task may not block, so
//! its 0.3 connect could never finish), and reports each: `std: …; p3: …`. Under the app's
//! grant the bind would be decided by the app's rules; under the library's it is refused.

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
        let p3 = p3_listen(&addr);
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

fn p3_listen(addr: &str) -> Result<String, String> {
    use p3_net::wasi::sockets::types::TcpSocket;
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| format!("{addr}: not IP:PORT"))?;
    let failed = |step: &'static str| move |code| format!("{step}: {}", p3_net::code_name(&code));
    let socket = TcpSocket::create(p3_net::family(&addr)).map_err(failed("create"))?;
    socket.bind(p3_net::to_wit(addr)).map_err(failed("bind"))?;
    let _incoming = socket.listen().map_err(failed("listen"))?;
    Ok("listening".to_owned())
}

fn outcome(result: Result<String, String>) -> String {
    match result {
        Ok(reply) => format!("ok {}", reply.trim()),
        Err(error) => format!("error {error}"),
    }
}

bindings::export!(Hostile with_types_in bindings);
