//! `tcp-bind LOOPBACK`: the rules of `tcp-socket.start-bind` / `finish-bind`, checked on the
//! loopback address of one family (see `wasi_net::behaviour` for the command line and report).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{
    Checked, Env, fails, holds, ok, run, same, tcp_accept, tcp_bind, tcp_connect,
};
use wasi_net::from_wasi;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "tcp-bind",
        &[
            (
                "a port-0 bind gets an ephemeral port on the address asked",
                ephemeral_port,
            ),
            (
                "a bind to an address of the other family is invalid-argument",
                other_family,
            ),
            (
                "a bind to a multicast address is invalid-argument",
                not_unicast,
            ),
            (
                "an IPv6 socket may not bind an IPv4-mapped address",
                mapped_on_ipv6,
            ),
            ("a bind to an address in use is address-in-use", in_use),
            (
                "a failed bind leaves the socket unbound",
                failed_bind_leaves_unbound,
            ),
            (
                "an address no interface has is address-not-bindable",
                not_bindable,
            ),
            (
                "a second start-bind is concurrency-conflict, then invalid-state",
                bind_twice,
            ),
            (
                "finish-bind with no bind started is not-in-progress",
                finish_without_start,
            ),
            (
                "a port is bindable again at once after its listener closed",
                rebind_after_close,
            ),
        ],
    )
}

/// Binding port 0 lets the system pick a free port; `local-address` reports the address asked
/// for with that port.
fn ephemeral_port(env: &Env) -> Checked {
    let socket = env.tcp()?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    let local = from_wasi(ok("local-address", socket.local_address())?);
    same("the bound ip", local.ip(), env.ip)?;
    holds(local.port() != 0, "the bound port is 0")
}

/// `local-address` of the other address family is `invalid-argument`.
fn other_family(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "bind",
        tcp_bind(&socket, &env.net, env.other_family(0)),
        ErrorCode::InvalidArgument,
    )
}

/// A `local-address` that is not unicast is `invalid-argument`.
fn not_unicast(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "bind",
        tcp_bind(&socket, &env.net, env.multicast(0)),
        ErrorCode::InvalidArgument,
    )
}

/// IPv6 sockets are IPv6-only: an IPv4-mapped IPv6 `local-address` is `invalid-argument`.
/// (IPv4 sockets have nothing to check here.)
fn mapped_on_ipv6(env: &Env) -> Checked {
    if env.ip.is_ipv4() {
        return Ok(());
    }
    let socket = env.tcp()?;
    let mapped = "[::ffff:127.0.0.1]:0".parse().expect("an address");
    fails(
        "bind",
        tcp_bind(&socket, &env.net, mapped),
        ErrorCode::InvalidArgument,
    )
}

/// A bind to an address a listener holds is `address-in-use`.
fn in_use(env: &Env) -> Checked {
    let (_listener, taken) = env.listener()?;
    let socket = env.tcp()?;
    fails(
        "bind",
        tcp_bind(&socket, &env.net, taken),
        ErrorCode::AddressInUse,
    )
}

/// A bind that fails changes nothing: the socket is still unbound and may bind elsewhere.
fn failed_bind_leaves_unbound(env: &Env) -> Checked {
    let (_listener, taken) = env.listener()?;
    let socket = env.tcp()?;
    fails(
        "bind",
        tcp_bind(&socket, &env.net, taken),
        ErrorCode::AddressInUse,
    )?;
    fails(
        "local-address",
        socket.local_address(),
        ErrorCode::InvalidState,
    )?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))
}

/// `address-not-bindable`: no interface of this machine has `local-address`.
fn not_bindable(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "bind",
        tcp_bind(&socket, &env.net, env.foreign(0)),
        ErrorCode::AddressNotBindable,
    )
}

/// `start-bind` while a bind is in progress is `concurrency-conflict`; once bound, any further
/// `start-bind` is `invalid-state`, and `finish-bind` is `not-in-progress`.
fn bind_twice(env: &Env) -> Checked {
    let socket = env.tcp()?;
    let local = wasi_net::to_wasi(env.at(0));
    ok("start-bind", socket.start_bind(&env.net, local))?;
    fails(
        "start-bind while binding",
        socket.start_bind(&env.net, local),
        ErrorCode::ConcurrencyConflict,
    )?;
    let ready = socket.subscribe();
    ok(
        "finish-bind",
        wasi_net::block_on(&ready, || socket.finish_bind()),
    )?;
    fails(
        "start-bind when bound",
        socket.start_bind(&env.net, local),
        ErrorCode::InvalidState,
    )?;
    fails(
        "finish-bind when bound",
        socket.finish_bind(),
        ErrorCode::NotInProgress,
    )
}

/// `finish-bind` with no `start-bind` before it is `not-in-progress`.
fn finish_without_start(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "finish-bind",
        socket.finish_bind(),
        ErrorCode::NotInProgress,
    )
}

/// Implementations must let a server bind its port again at once, even with connections of
/// its previous listener lingering in TIME_WAIT (SO_REUSEADDR on POSIX).
fn rebind_after_close(env: &Env) -> Checked {
    let (listener, addr) = env.listener()?;
    let client = env.tcp()?;
    let client_streams = ok("connect", tcp_connect(&client, &env.net, addr))?;
    let (server, server_in, server_out) = ok("accept", tcp_accept(&listener))?;
    // The server's side closes first, so it lingers in TIME_WAIT.
    drop((server_in, server_out, server));
    drop((client_streams, client));
    drop(listener);
    let socket = env.tcp()?;
    ok(
        "bind the same port again",
        tcp_bind(&socket, &env.net, addr),
    )
}
