//! `tcp-listen-accept LOOPBACK`: the rules of `start-listen` / `finish-listen`, `accept` and
//! the listen backlog, checked on the loopback address of one family (see
//! `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{
    Checked, Env, fails, holds, ok, ready_within, run, same, tcp_accept, tcp_bind, tcp_connect,
    tcp_listen,
};
use wasi_net::from_wasi;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "tcp-listen-accept",
        &[
            (
                "listening needs a bound socket: invalid-state",
                listen_unbound,
            ),
            (
                "a listening socket says so and keeps its address",
                listening,
            ),
            (
                "listen twice: not-in-progress, then invalid-state",
                listen_twice,
            ),
            (
                "accept with no client waiting is would-block",
                accept_would_block,
            ),
            (
                "the listener's pollable wakes when a client is waiting",
                pollable_wakes,
            ),
            ("an accepted socket is connected to the client", accepted),
            (
                "accepted sockets inherit the listener's options",
                inherited_options,
            ),
            (
                "accept on a socket that is not listening is invalid-state",
                accept_unlistened,
            ),
            (
                "the backlog size is settable before and while listening, not 0",
                backlog,
            ),
        ],
    )
}

/// `start-listen` on an unbound socket is `invalid-state`.
fn listen_unbound(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "start-listen",
        socket.start_listen(),
        ErrorCode::InvalidState,
    )
}

/// After `finish-listen`, `is-listening` is true and `local-address` the bound address.
fn listening(env: &Env) -> Checked {
    let socket = env.tcp()?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    let bound = from_wasi(ok("local-address", socket.local_address())?);
    holds(!socket.is_listening(), "is-listening before listen")?;
    ok("listen", tcp_listen(&socket))?;
    holds(socket.is_listening(), "is-listening is false after listen")?;
    same(
        "local-address",
        from_wasi(ok("local-address", socket.local_address())?),
        bound,
    )
}

/// Once listening, `finish-listen` is `not-in-progress` and `start-listen` `invalid-state`.
fn listen_twice(env: &Env) -> Checked {
    let (socket, _) = env.listener()?;
    fails(
        "finish-listen",
        socket.finish_listen(),
        ErrorCode::NotInProgress,
    )?;
    fails(
        "start-listen",
        socket.start_listen(),
        ErrorCode::InvalidState,
    )
}

/// `accept` with no pending connection is `would-block`.
fn accept_would_block(env: &Env) -> Checked {
    let (socket, _) = env.listener()?;
    fails("accept", socket.accept().map(drop), ErrorCode::WouldBlock)
}

/// The listener's pollable is ready once a connection is waiting to be accepted.
fn pollable_wakes(env: &Env) -> Checked {
    let (listener, addr) = env.listener()?;
    let ready = listener.subscribe();
    holds(!ready_within(&ready, 50), "ready with no client")?;
    let client = env.tcp()?;
    let _streams = ok("connect", tcp_connect(&client, &env.net, addr))?;
    holds(
        ready_within(&ready, 5_000),
        "not ready with a client waiting",
    )?;
    ok("accept", listener.accept()).map(drop)
}

/// `accept` returns a connected socket: its `remote-address` is the client's local address,
/// its `local-address` the listener's, it is not listening, and it has the listener's family.
fn accepted(env: &Env) -> Checked {
    let (listener, addr) = env.listener()?;
    let client = env.tcp()?;
    let _streams = ok("connect", tcp_connect(&client, &env.net, addr))?;
    let (server, _in, _out) = ok("accept", tcp_accept(&listener))?;
    same(
        "remote-address",
        from_wasi(ok("remote-address", server.remote_address())?),
        from_wasi(ok("client local-address", client.local_address())?),
    )?;
    same(
        "local-address",
        from_wasi(ok("local-address", server.local_address())?),
        addr,
    )?;
    holds(!server.is_listening(), "the accepted socket is listening")?;
    same("address-family", server.address_family(), env.family())
}

/// An accepted socket inherits `keep-alive-enabled`, `keep-alive-idle-time`,
/// `keep-alive-interval`, `keep-alive-count`, `hop-limit` and the buffer sizes of its listener.
fn inherited_options(env: &Env) -> Checked {
    let listener = env.tcp()?;
    ok("bind", tcp_bind(&listener, &env.net, env.at(0)))?;
    ok(
        "set-keep-alive-enabled",
        listener.set_keep_alive_enabled(true),
    )?;
    ok(
        "set-keep-alive-idle-time",
        listener.set_keep_alive_idle_time(42_000_000_000),
    )?;
    ok(
        "set-keep-alive-interval",
        listener.set_keep_alive_interval(7_000_000_000),
    )?;
    ok("set-keep-alive-count", listener.set_keep_alive_count(5))?;
    ok("set-hop-limit", listener.set_hop_limit(42))?;
    ok("listen", tcp_listen(&listener))?;
    let addr = from_wasi(ok("local-address", listener.local_address())?);
    let client = env.tcp()?;
    let _streams = ok("connect", tcp_connect(&client, &env.net, addr))?;
    let (server, _in, _out) = ok("accept", tcp_accept(&listener))?;
    holds(
        ok("keep-alive-enabled", server.keep_alive_enabled())?,
        "keep-alive-enabled is not inherited",
    )?;
    same(
        "keep-alive-idle-time",
        ok("keep-alive-idle-time", server.keep_alive_idle_time())?,
        42_000_000_000,
    )?;
    same(
        "keep-alive-interval",
        ok("keep-alive-interval", server.keep_alive_interval())?,
        7_000_000_000,
    )?;
    same(
        "keep-alive-count",
        ok("keep-alive-count", server.keep_alive_count())?,
        5,
    )?;
    same("hop-limit", ok("hop-limit", server.hop_limit())?, 42)?;
    same(
        "receive-buffer-size",
        ok("receive-buffer-size", server.receive_buffer_size())?,
        ok(
            "listener receive-buffer-size",
            listener.receive_buffer_size(),
        )?,
    )
}

/// `accept` on a socket that is bound but not listening is `invalid-state`.
fn accept_unlistened(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "accept when unbound",
        socket.accept().map(drop),
        ErrorCode::InvalidState,
    )?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    fails(
        "accept when bound",
        socket.accept().map(drop),
        ErrorCode::InvalidState,
    )
}

/// `set-listen-backlog-size` takes any value but 0 (`invalid-argument`) before listening and
/// while listening; on a connected socket it is `invalid-state`.
fn backlog(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "set-listen-backlog-size 0",
        socket.set_listen_backlog_size(0),
        ErrorCode::InvalidArgument,
    )?;
    ok("set-listen-backlog-size", socket.set_listen_backlog_size(8))?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    ok("listen", tcp_listen(&socket))?;
    ok(
        "set-listen-backlog-size while listening",
        socket.set_listen_backlog_size(u64::MAX),
    )?;
    let (client, _server) = env.connection()?;
    fails(
        "set-listen-backlog-size when connected",
        client.socket.set_listen_backlog_size(8),
        ErrorCode::InvalidState,
    )
}
