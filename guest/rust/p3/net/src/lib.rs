//! Bindings for capnet's 0.3 guests (`wasi:sockets@0.3.0`, world `imports` of
//! guest/rust/p3/wit), generated once here: each guest maps its own `command` world's imports to
//! these with wit-bindgen's `with`. Plus what the guests share: addresses between `std::net` and
//! the WIT, the WIT names of error codes, and std's unused 0.2 entry point.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "imports", generate_all });
}

pub mod table;

pub use bindings::{wasi, wit_stream};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use wasi::sockets::types::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};

/// The WIT name of a code: `access-denied`, `other(...)`.
pub fn code_name(code: &ErrorCode) -> String {
    let name = match code {
        ErrorCode::AccessDenied => "access-denied",
        ErrorCode::NotSupported => "not-supported",
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::OutOfMemory => "out-of-memory",
        ErrorCode::Timeout => "timeout",
        ErrorCode::InvalidState => "invalid-state",
        ErrorCode::AddressNotBindable => "address-not-bindable",
        ErrorCode::AddressInUse => "address-in-use",
        ErrorCode::RemoteUnreachable => "remote-unreachable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionBroken => "connection-broken",
        ErrorCode::ConnectionReset => "connection-reset",
        ErrorCode::ConnectionAborted => "connection-aborted",
        ErrorCode::DatagramTooLarge => "datagram-too-large",
        ErrorCode::Other(None) => "other",
        ErrorCode::Other(Some(what)) => return format!("other({what})"),
    };
    name.to_owned()
}

/// The family of `addr`.
pub fn family(addr: &SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

/// `addr` as the WIT spells it.
pub fn to_wit(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(a) => {
            let [b0, b1, b2, b3] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (b0, b1, b2, b3),
            })
        }
        SocketAddr::V6(a) => {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: a.flowinfo(),
                address: (s0, s1, s2, s3, s4, s5, s6, s7),
                scope_id: a.scope_id(),
            })
        }
    }
}

/// A WIT address as `std` spells it.
pub fn from_wit(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(a) => {
            let (b0, b1, b2, b3) = a.address;
            SocketAddr::from((Ipv4Addr::new(b0, b1, b2, b3), a.port))
        }
        IpSocketAddress::Ipv6(a) => {
            let (s0, s1, s2, s3, s4, s5, s6, s7) = a.address;
            SocketAddr::from((Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7), a.port))
        }
    }
}

/// What a 0.3 guest's `main` does: Rust's std exports `wasi:cli/run@0.2.0` calling `main`, but
/// the program is the guest's `wasi:cli/run@0.3.0`. A host that calls the 0.2 entry point
/// runs none of it, and this says so (exit 3).
pub fn wrong_entry_point() -> ! {
    eprintln!("error: the 0.2 entry point ran; the program is wasi:cli/run@0.3.0");
    std::process::exit(3)
}

/// `work`'s output, or `None` when `millis` pass first; `work` is then dropped, which cancels
/// whatever host call or stream operation it was waiting on.
pub async fn within<T>(millis: u64, work: impl std::future::Future<Output = T>) -> Option<T> {
    let mut work = std::pin::pin!(work);
    let mut timer = std::pin::pin!(wasi::clocks::monotonic_clock::wait_for(millis * 1_000_000));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// The body of a server guest's `run`: `GUEST ADDR [MAX_CONNS]` from the command line; listens
/// on ADDR, prints `listening on <addr>`, and serves each accepted connection with `serve` in
/// a task of its own, all at once. After MAX_CONNS connections it waits for them to end.
/// A failure prints `error: OPERATION ADDR: CODE` and gives `Err`.
pub async fn serve_connections<F>(
    guest: &str,
    serve: impl Fn(wasi::sockets::types::TcpSocket) -> F,
) -> Result<(), ()>
where
    F: std::future::Future<Output = ()> + 'static,
{
    use std::io::Write;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, max) = match &args[..] {
        [addr] => (addr, None),
        [addr, max] => (addr, max.parse::<usize>().ok()),
        _ => {
            eprintln!("error: expected ADDR [MAX_CONNS]\nusage: {guest} ADDR [MAX_CONNS]");
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
    let socket =
        wasi::sockets::types::TcpSocket::create(family(&local)).map_err(|c| fail("create", c))?;
    socket.bind(to_wit(local)).map_err(|c| fail("bind", c))?;
    let mut connections = socket.listen().map_err(|c| fail("listen", c))?;
    let bound = socket
        .get_local_address()
        .map_err(|c| fail("local-address", c))?;
    println!("listening on {}", from_wit(bound));
    let _ = std::io::stdout().flush();

    let mut serving = Vec::new();
    while max.is_none_or(|max| serving.len() < max) {
        let Some(client) = connections.next().await else {
            break;
        };
        serving.push(wit_bindgen::spawn_local(serve(client)));
    }
    for task in serving {
        task.await;
    }
    Ok(())
}

/// The 0.3 nano-process example's request: connects to `addr` (IP:PORT, or NAME:PORT looked up
/// first), sends `weather?\n`, ends its side, and returns all the peer sends back. An error
/// names the failed step and the WIT code, as `connect: access-denied`. The app and its
/// weather library run the same code, each through its own imports.
pub async fn fetch(addr: &str) -> Result<String, String> {
    use wasi::sockets::{ip_name_lookup, types::TcpSocket};
    fn failed(step: &'static str) -> impl Fn(ErrorCode) -> String {
        move |code| format!("{step}: {}", code_name(&code))
    }
    let peers = match addr.parse::<SocketAddr>() {
        Ok(peer) => vec![peer],
        Err(_) => {
            let bad = || format!("{addr} is not HOST:PORT");
            let (name, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let found = ip_name_lookup::resolve_addresses(name.to_owned()).await;
            let found = found.map_err(|code| format!("lookup: {}", lookup_code_name(&code)))?;
            found
                .into_iter()
                .map(|ip| SocketAddr::new(from_wit_ip(ip), port))
                .collect()
        }
    };
    // Each address in the resolver's order, as a client does; the last one's error if none
    // connects.
    let mut last = String::from("lookup: no address");
    let mut connected = None;
    for peer in peers {
        let socket = TcpSocket::create(family(&peer)).map_err(failed("create"))?;
        match socket.connect(to_wit(peer)).await {
            Ok(()) => {
                connected = Some(socket);
                break;
            }
            Err(code) => last = failed("connect")(code),
        }
    }
    let socket = connected.ok_or(last)?;
    let (mut request, outgoing) = wit_stream::new::<u8>();
    let sent = socket.send(outgoing);
    let (mut reply_stream, received) = socket.receive();
    let unsent = request.write_all(b"weather?\n".to_vec()).await;
    drop(request);
    if !unsent.is_empty() {
        return Err("send: the stream closed".into());
    }
    sent.await.map_err(failed("send"))?;
    let mut reply = Vec::new();
    loop {
        let (result, chunk) = reply_stream.read(Vec::with_capacity(4096)).await;
        reply.extend_from_slice(&chunk);
        if let wit_bindgen::StreamResult::Dropped = result {
            break;
        }
    }
    received.await.map_err(failed("receive"))?;
    String::from_utf8(reply).map_err(|_| "receive: not UTF-8".into())
}

/// The WIT name of a lookup's code: `access-denied`, `other(...)`.
pub fn lookup_code_name(code: &wasi::sockets::ip_name_lookup::ErrorCode) -> String {
    use wasi::sockets::ip_name_lookup::ErrorCode;
    let name = match code {
        ErrorCode::AccessDenied => "access-denied",
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::NameUnresolvable => "name-unresolvable",
        ErrorCode::TemporaryResolverFailure => "temporary-resolver-failure",
        ErrorCode::PermanentResolverFailure => "permanent-resolver-failure",
        ErrorCode::Other(None) => "other",
        ErrorCode::Other(Some(what)) => return format!("other({what})"),
    };
    name.to_owned()
}

/// A WIT IP address as `std` spells it.
pub fn from_wit_ip(ip: wasi::sockets::types::IpAddress) -> std::net::IpAddr {
    use wasi::sockets::types::IpAddress;
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => Ipv4Addr::new(a, b, c, d).into(),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => Ipv6Addr::new(a, b, c, d, e, f, g, h).into(),
    }
}
