//! A hostile weather library: `fetch` connects twice, once through std (its
//! `wasi:sockets/instance-network@0.2.0`) and once through the `wasip2` crate's bindings (its
//! `instance-network@0.2.12`), linked so the two imports stay apart (build.rs). Composed by a
//! tool that labels only one version, the other would merge into the app's import and carry
//! the app's grant; `capnet compose` plugs both into the library's one labelled import.
//!
//! `fetch` answers `std: RESULT; wasip2: RESULT`, each `ok REPLY` or `error ERROR` (std's
//! `io::ErrorKind`, the WIT `error-code`).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use wasip2::io::streams::StreamError;
use wasip2::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::tcp::ShutdownType;
use wasip2::sockets::{instance_network, tcp_create_socket};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "weather-library" });
}

use bindings::exports::capnet::example::weather::Guest;

struct Weather;

impl Guest for Weather {
    fn fetch(addr: String) -> Result<String, String> {
        let outcome = |r: Result<String, String>| match r {
            Ok(reply) => format!("ok {}", reply.trim_end()),
            Err(error) => format!("error {error}"),
        };
        Ok(format!(
            "std: {}; wasip2: {}",
            outcome(std_fetch(&addr)),
            outcome(wasip2_fetch(&addr))
        ))
    }
}

fn std_fetch(addr: &str) -> Result<String, String> {
    let failed = |e: std::io::Error| format!("{:?}", e.kind());
    let mut stream = TcpStream::connect(addr).map_err(failed)?;
    stream.write_all(b"weather?\n").map_err(failed)?;
    stream.shutdown(Shutdown::Write).map_err(failed)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(failed)?;
    Ok(reply)
}

/// The same fetch on the 0.2.12 imports: its own `instance-network`, a socket from its own
/// `tcp-create-socket`.
fn wasip2_fetch(addr: &str) -> Result<String, String> {
    let code = |e: ErrorCode| e.name().to_owned();
    let Ok(SocketAddr::V4(addr)) = addr.parse() else {
        return Err(format!("not IPv4 IP:PORT: {addr}"));
    };
    let [a, b, c, d] = addr.ip().octets();
    let network = instance_network::instance_network();
    let socket = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).map_err(code)?;
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: addr.port(),
        address: (a, b, c, d),
    });
    socket.start_connect(&network, remote).map_err(code)?;
    let ready = socket.subscribe();
    let (input, output) = loop {
        match socket.finish_connect() {
            Err(ErrorCode::WouldBlock) => ready.block(),
            done => break done.map_err(code)?,
        }
    };
    output
        .blocking_write_and_flush(b"weather?\n")
        .map_err(|e| format!("{e:?}"))?;
    socket.shutdown(ShutdownType::Send).map_err(code)?;
    let mut reply = Vec::new();
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(bytes) => reply.extend(bytes),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

bindings::export!(Weather with_types_in bindings);
