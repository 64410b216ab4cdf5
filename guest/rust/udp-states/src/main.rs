//! `udp-states LOOPBACK`: what each state of a `udp-socket` (unbound, bound, connected) lets a
//! guest observe and do, on the loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, ready_within, run, same};
use wasi_net::from_wasi;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "udp-states",
        &[
            ("unbound: no addresses and no streams", unbound),
            ("bound: a local address, no remote one, streams", bound),
            ("connected: both addresses", connected),
            (
                "back to unconnected: stream(none) drops the remote address",
                disconnected,
            ),
            (
                "address-family is the one created with, in every state",
                family,
            ),
            (
                "the socket's pollable is ready once a bind can finish",
                pollable,
            ),
        ],
    )
}

/// A new socket: `local-address`, `remote-address` and `stream` are `invalid-state`.
fn unbound(env: &Env) -> Checked {
    let socket = env.udp()?;
    fails(
        "local-address",
        socket.local_address(),
        ErrorCode::InvalidState,
    )?;
    fails(
        "remote-address",
        socket.remote_address(),
        ErrorCode::InvalidState,
    )?;
    fails(
        "stream",
        socket.stream(None).map(drop),
        ErrorCode::InvalidState,
    )
}

/// A bound socket has a `local-address` and no `remote-address`; `stream(none)` works.
fn bound(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    ok("local-address", socket.local_address())?;
    fails(
        "remote-address",
        socket.remote_address(),
        ErrorCode::InvalidState,
    )?;
    ok("stream", socket.stream(None)).map(drop)
}

/// `stream(some(remote))` connects: `remote-address` is `remote`.
fn connected(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let (_peer, peer_addr) = env.bound_udp()?;
    let _streams = ok("stream", socket.stream(Some(wasi_net::to_wasi(peer_addr))))?;
    same(
        "remote-address",
        from_wasi(ok("remote-address", socket.remote_address())?),
        peer_addr,
    )
}

/// After the connected streams are dropped, `stream(none)` disconnects.
fn disconnected(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let (_peer, peer_addr) = env.bound_udp()?;
    drop(ok(
        "stream",
        socket.stream(Some(wasi_net::to_wasi(peer_addr))),
    )?);
    let _streams = ok("stream none", socket.stream(None))?;
    fails(
        "remote-address",
        socket.remote_address(),
        ErrorCode::InvalidState,
    )
}

/// `address-family` never changes.
fn family(env: &Env) -> Checked {
    let socket = env.udp()?;
    same("unbound", socket.address_family(), env.family())?;
    let (bound, _) = env.bound_udp()?;
    same("bound", bound.address_family(), env.family())
}

/// `subscribe` on the socket is ready when `finish-bind` will not be `would-block`.
fn pollable(env: &Env) -> Checked {
    let socket = env.udp()?;
    ok(
        "start-bind",
        socket.start_bind(&env.net, wasi_net::to_wasi(env.at(0))),
    )?;
    holds(ready_within(&socket.subscribe(), 5_000), "not ready")?;
    ok("finish-bind", socket.finish_bind())
}
