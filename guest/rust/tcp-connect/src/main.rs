//! `tcp-connect LOOPBACK`: the rules of `tcp-socket.start-connect` / `finish-connect`, checked
//! on the loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same, tcp_bind, tcp_connect};
use wasi_net::from_wasi;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "tcp-connect",
        &[
            (
                "a connect to a listener gives both streams and both addresses",
                connects,
            ),
            (
                "connecting an unbound socket binds it implicitly",
                implicit_bind,
            ),
            (
                "a bound socket connects from the address it was bound to",
                bound_then_connect,
            ),
            (
                "an unspecified remote address is invalid-argument",
                unspecified,
            ),
            ("remote port 0 is invalid-argument", port_zero),
            (
                "a remote address of the other family is invalid-argument",
                other_family,
            ),
            (
                "a multicast remote address is invalid-argument",
                not_unicast,
            ),
            (
                "an IPv6 socket may not connect to an IPv4-mapped address",
                mapped_on_ipv6,
            ),
            (
                "a refused connect is connection-refused and closes the socket",
                refused,
            ),
            (
                "start-connect while connecting is concurrency-conflict",
                connect_twice,
            ),
            (
                "a connected socket cannot connect again: invalid-state",
                connected_again,
            ),
            (
                "a listening socket cannot connect: invalid-state",
                listening_connect,
            ),
            (
                "finish-connect with no connect started is not-in-progress",
                finish_unstarted,
            ),
        ],
    )
}

/// `finish-connect` returns the socket's input and output streams; `remote-address` is the
/// peer, `local-address` the socket's own end.
fn connects(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let socket = env.tcp()?;
    let _streams = ok("connect", tcp_connect(&socket, &env.net, addr))?;
    same(
        "remote-address",
        from_wasi(ok("remote-address", socket.remote_address())?),
        addr,
    )?;
    let local = from_wasi(ok("local-address", socket.local_address())?);
    same("local ip", local.ip(), env.ip)
}

/// An unbound socket is bound to an ephemeral port by `connect` (the implicit bind).
fn implicit_bind(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let socket = env.tcp()?;
    fails(
        "local-address before connect",
        socket.local_address(),
        ErrorCode::InvalidState,
    )?;
    let _streams = ok("connect", tcp_connect(&socket, &env.net, addr))?;
    let local = from_wasi(ok("local-address", socket.local_address())?);
    holds(local.port() != 0, "the implicit bind left port 0")
}

/// A socket bound first keeps the port it was bound to when it connects.
fn bound_then_connect(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let socket = env.tcp()?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    let bound = from_wasi(ok("local-address", socket.local_address())?);
    let _streams = ok("connect", tcp_connect(&socket, &env.net, addr))?;
    same(
        "local-address after connect",
        from_wasi(ok("local-address", socket.local_address())?),
        bound,
    )
}

fn refuses(env: &Env, remote: SocketAddr, want: ErrorCode) -> Checked {
    let socket = env.tcp()?;
    fails(
        &format!("connect {remote}"),
        tcp_connect(&socket, &env.net, remote),
        want,
    )
}

/// The unspecified address (`0.0.0.0`, `::`) as `remote-address` is `invalid-argument`.
fn unspecified(env: &Env) -> Checked {
    refuses(env, env.unspecified(80), ErrorCode::InvalidArgument)
}

/// Port 0 in `remote-address` is `invalid-argument`.
fn port_zero(env: &Env) -> Checked {
    refuses(env, env.at(0), ErrorCode::InvalidArgument)
}

/// `remote-address` of the other address family is `invalid-argument`.
fn other_family(env: &Env) -> Checked {
    refuses(env, env.other_family(80), ErrorCode::InvalidArgument)
}

/// A `remote-address` that is not unicast is `invalid-argument`.
fn not_unicast(env: &Env) -> Checked {
    refuses(env, env.multicast(80), ErrorCode::InvalidArgument)
}

/// An IPv4-mapped IPv6 `remote-address` on an (IPv6-only) IPv6 socket is `invalid-argument`.
fn mapped_on_ipv6(env: &Env) -> Checked {
    if env.ip.is_ipv4() {
        return Ok(());
    }
    let mapped = "[::ffff:127.0.0.1]:80".parse().expect("an address");
    refuses(env, mapped, ErrorCode::InvalidArgument)
}

/// Nobody listening: `finish-connect` is `connection-refused`, and the socket is closed for
/// good: a new `start-connect` is `invalid-state`.
fn refused(env: &Env) -> Checked {
    let closed_port = {
        let (_listener, addr) = env.listener()?;
        addr
    };
    let socket = env.tcp()?;
    fails(
        "connect to a closed port",
        tcp_connect(&socket, &env.net, closed_port),
        ErrorCode::ConnectionRefused,
    )?;
    fails(
        "start-connect after the failure",
        socket.start_connect(&env.net, wasi_net::to_wasi(closed_port)),
        ErrorCode::InvalidState,
    )
}

/// `start-connect` while a connect is in progress is `concurrency-conflict`.
fn connect_twice(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let socket = env.tcp()?;
    let remote = wasi_net::to_wasi(addr);
    ok("start-connect", socket.start_connect(&env.net, remote))?;
    fails(
        "start-connect while connecting",
        socket.start_connect(&env.net, remote),
        ErrorCode::ConcurrencyConflict,
    )?;
    let ready = socket.subscribe();
    ok(
        "finish-connect",
        wasi_net::block_on(&ready, || socket.finish_connect()),
    )
    .map(drop)
}

/// A connected socket: `start-connect` is `invalid-state`, `finish-connect` `not-in-progress`.
fn connected_again(env: &Env) -> Checked {
    let (client, _server) = env.connection()?;
    let (_, addr) = env.listener()?;
    fails(
        "start-connect when connected",
        client
            .socket
            .start_connect(&env.net, wasi_net::to_wasi(addr)),
        ErrorCode::InvalidState,
    )?;
    fails(
        "finish-connect when connected",
        client.socket.finish_connect().map(drop),
        ErrorCode::NotInProgress,
    )
}

/// A listening socket: `start-connect` is `invalid-state`.
fn listening_connect(env: &Env) -> Checked {
    let (listener, _) = env.listener()?;
    let (_other, addr) = env.listener()?;
    fails(
        "start-connect when listening",
        listener.start_connect(&env.net, wasi_net::to_wasi(addr)),
        ErrorCode::InvalidState,
    )
}

/// `finish-connect` with no `start-connect` before it is `not-in-progress`.
fn finish_unstarted(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "finish-connect",
        socket.finish_connect().map(drop),
        ErrorCode::NotInProgress,
    )
}
