//! Bindings for capnet's 0.3 guests (`wasi:sockets@0.3.0`, world `imports` of
//! guest/rust/p3/wit), generated once here: each guest maps its own `command` world's imports to
//! these with wit-bindgen's `with`. Plus what the guests share: addresses between `std::net` and
//! the WIT, the WIT names of error codes, and std's unused 0.2 entry point.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "imports", generate_all });
}

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
