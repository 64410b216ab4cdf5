//! Bindings for capnet's guest world (`capnet:sockets/guest`), generated once here for every
//! guest that talks `wasi:sockets` directly, plus the small helpers those guests share.
//!
//! The world imports the seven `wasi:sockets@0.2.12` interfaces and `capnet:sockets/preopens`;
//! `wasi:io` and `wasi:clocks` come along because the sockets interfaces use their types. The
//! WIT is the repository's own `wit/` directory.
//!
//! The unstable `network-error-code` function is not generated, so a guest built on this crate
//! links only stable functions and runs on any host that has the stable ones. Stream failures
//! are therefore described by the host's debug string (see the [`Cause`] impl of
//! [`StreamError`]).
//!
//! [`ErrorCode`] and [`StreamError`] are [`Cause`]s, so `result.or_fail("connect", addr)` turns
//! a failed call into the guest's one-line error report, `error: connect ADDR: access-denied`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use guest_cli::Cause;

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "capnet:sockets/guest",
        // The world names packages other than its own (`wasi:*`); generate those too.
        generate_all,
    });
}

pub mod behaviour;

pub use bindings::capnet;
pub use bindings::wasi;

use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::udp::UdpSocket;

/// The WIT name of `code`, such as `access-denied` or `connection-refused`.
///
/// The generated enum already knows it: wit-bindgen gives every enum used as the error of a
/// `result` a `name()` with the case's WIT (kebab-case) name. This function only says so in one
/// place, so guests print the names the host's tests expect.
pub fn error_name(code: ErrorCode) -> &'static str {
    code.name()
}

impl Cause for ErrorCode {
    /// The WIT name: see [`error_name`].
    fn describe(&self) -> String {
        error_name(*self).to_owned()
    }
}

impl Cause for StreamError {
    /// `closed`, or the host's description of the error (`to-debug-string`).
    fn describe(&self) -> String {
        match self {
            StreamError::Closed => "closed".to_owned(),
            StreamError::LastOperationFailed(error) => error.to_debug_string(),
        }
    }
}

/// Calls `step` until it stops returning `would-block`, waiting on `pollable` in between.
///
/// This is how the `finish-*` half of a two-phase sockets call, `accept`, or
/// `resolve-next-address` is turned into a blocking one. `pollable` must be the subscription of
/// the resource that `step` works on.
///
/// # Errors
///
/// The first error other than `would-block` that `step` returns.
pub fn block_on<T>(
    pollable: &Pollable,
    mut step: impl FnMut() -> Result<T, ErrorCode>,
) -> Result<T, ErrorCode> {
    loop {
        match step() {
            Err(ErrorCode::WouldBlock) => pollable.block(),
            done => return done,
        }
    }
}

/// Looks up `name` through `network` and returns all its addresses, best first.
///
/// # Errors
///
/// Whatever `resolve-addresses` or `resolve-next-address` report: `permanent-resolver-failure`
/// when the policy forbids looking up `name` (as on wasmtime-wasi), `name-unresolvable`, `invalid-argument`, the resolver
/// failures. A lookup that ends without any address is `name-unresolvable`.
pub fn resolve(network: &Network, name: &str) -> Result<Vec<IpAddr>, ErrorCode> {
    let answers = wasi::sockets::ip_name_lookup::resolve_addresses(network, name)?;
    // Declared after `answers`, so dropped before it, as a child must be.
    let ready = answers.subscribe();
    let mut addresses = Vec::new();
    while let Some(address) = block_on(&ready, || answers.resolve_next_address())? {
        addresses.push(from_wasi_ip(address));
    }
    if addresses.is_empty() {
        return Err(ErrorCode::NameUnresolvable);
    }
    Ok(addresses)
}

/// The WIT address family of `addr`.
pub fn family(addr: &SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

/// `addr` as a WIT `ip-socket-address`.
pub fn to_wasi(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(addr) => {
            let [a, b, c, d] = addr.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: addr.port(),
                address: (a, b, c, d),
            })
        }
        SocketAddr::V6(addr) => {
            let [a, b, c, d, e, f, g, h] = addr.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: addr.port(),
                flow_info: addr.flowinfo(),
                address: (a, b, c, d, e, f, g, h),
                scope_id: addr.scope_id(),
            })
        }
    }
}

/// A WIT `ip-socket-address` as a `std` one.
pub fn from_wasi(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(addr) => {
            let (a, b, c, d) = addr.address;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), addr.port))
        }
        IpSocketAddress::Ipv6(addr) => {
            let (a, b, c, d, e, f, g, h) = addr.address;
            let ip = Ipv6Addr::new(a, b, c, d, e, f, g, h);
            SocketAddr::V6(SocketAddrV6::new(
                ip,
                addr.port,
                addr.flow_info,
                addr.scope_id,
            ))
        }
    }
}

/// A WIT `ip-address` as a `std` one.
pub fn from_wasi_ip(addr: IpAddress) -> IpAddr {
    match addr {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}

/// Binds a TCP socket: `start-bind`, then `finish-bind` until done.
pub fn tcp_bind(socket: &TcpSocket, net: &Network, addr: SocketAddr) -> Result<(), ErrorCode> {
    let ready = socket.subscribe();
    socket.start_bind(net, to_wasi(addr))?;
    block_on(&ready, || socket.finish_bind())
}

/// Listens: `start-listen`, then `finish-listen` until done.
pub fn tcp_listen(socket: &TcpSocket) -> Result<(), ErrorCode> {
    let ready = socket.subscribe();
    socket.start_listen()?;
    block_on(&ready, || socket.finish_listen())
}

/// Connects: `start-connect`, then `finish-connect` until done.
pub fn tcp_connect(
    socket: &TcpSocket,
    net: &Network,
    addr: SocketAddr,
) -> Result<(InputStream, OutputStream), ErrorCode> {
    let ready = socket.subscribe();
    socket.start_connect(net, to_wasi(addr))?;
    block_on(&ready, || socket.finish_connect())
}

/// Accepts the next connection, waiting for one.
pub fn tcp_accept(socket: &TcpSocket) -> Result<(TcpSocket, InputStream, OutputStream), ErrorCode> {
    let ready = socket.subscribe();
    block_on(&ready, || socket.accept())
}

/// Binds a UDP socket: `start-bind`, then `finish-bind` until done.
pub fn udp_bind(socket: &UdpSocket, net: &Network, addr: SocketAddr) -> Result<(), ErrorCode> {
    let ready = socket.subscribe();
    socket.start_bind(net, to_wasi(addr))?;
    block_on(&ready, || socket.finish_bind())
}
