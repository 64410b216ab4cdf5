//! `tcp-states LOOPBACK`: what each state of a `tcp-socket` lets a guest observe and do, from
//! creation to closed, on the loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same, tcp_bind, tcp_connect};
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::tcp::{ShutdownType, TcpSocket};

fn main() -> ExitCode {
    run(
        "tcp-states",
        &[
            ("unbound: no addresses, not listening, no shutdown", unbound),
            ("bound: a local address, no remote one, no shutdown", bound),
            (
                "listening: a local address, no remote one, no shutdown",
                listening,
            ),
            (
                "connected: both addresses, shutdown works, no bind or listen",
                connected,
            ),
            ("closed after a failed connect: nothing but options", closed),
            (
                "address-family is the one created with, in every state",
                family,
            ),
        ],
    )
}

/// Shared by the states without a peer: `remote-address` and `shutdown` are `invalid-state`.
fn no_peer(socket: &TcpSocket) -> Checked {
    fails(
        "remote-address",
        socket.remote_address(),
        ErrorCode::InvalidState,
    )?;
    fails(
        "shutdown",
        socket.shutdown(ShutdownType::Both),
        ErrorCode::InvalidState,
    )
}

/// A new socket is unbound: `local-address` is `invalid-state` and it is not listening.
fn unbound(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "local-address",
        socket.local_address(),
        ErrorCode::InvalidState,
    )?;
    holds(!socket.is_listening(), "is-listening")?;
    no_peer(&socket)
}

/// A bound socket has a `local-address` and is not listening yet.
fn bound(env: &Env) -> Checked {
    let socket = env.tcp()?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    ok("local-address", socket.local_address())?;
    holds(!socket.is_listening(), "is-listening")?;
    no_peer(&socket)
}

/// A listening socket has a `local-address`, no peer; bind is `invalid-state`.
fn listening(env: &Env) -> Checked {
    let (socket, _) = env.listener()?;
    ok("local-address", socket.local_address())?;
    fails(
        "start-bind",
        socket.start_bind(&env.net, wasi_net::to_wasi(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    no_peer(&socket)
}

/// A connected socket has both addresses and may shut down; `start-bind` and `start-listen`
/// are `invalid-state`.
fn connected(env: &Env) -> Checked {
    let (client, _server) = env.connection()?;
    let socket = &client.socket;
    ok("local-address", socket.local_address())?;
    ok("remote-address", socket.remote_address())?;
    holds(!socket.is_listening(), "is-listening")?;
    fails(
        "start-bind",
        socket.start_bind(&env.net, wasi_net::to_wasi(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    fails(
        "start-listen",
        socket.start_listen(),
        ErrorCode::InvalidState,
    )?;
    ok("shutdown", socket.shutdown(ShutdownType::Both))
}

/// After a failed connect the socket is closed: no addresses, no bind, listen or connect, but
/// it is still a socket of its family.
fn closed(env: &Env) -> Checked {
    let port = env.listener()?.1;
    let socket = env.tcp()?;
    fails(
        "connect",
        tcp_connect(&socket, &env.net, port),
        ErrorCode::ConnectionRefused,
    )?;
    fails(
        "local-address",
        socket.local_address(),
        ErrorCode::InvalidState,
    )?;
    fails(
        "start-bind",
        socket.start_bind(&env.net, wasi_net::to_wasi(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    fails(
        "start-listen",
        socket.start_listen(),
        ErrorCode::InvalidState,
    )?;
    no_peer(&socket)?;
    same("address-family", socket.address_family(), env.family())
}

/// `address-family` never changes.
fn family(env: &Env) -> Checked {
    let socket = env.tcp()?;
    same("unbound", socket.address_family(), env.family())?;
    ok("bind", tcp_bind(&socket, &env.net, env.at(0)))?;
    same("bound", socket.address_family(), env.family())?;
    let (listener, _) = env.listener()?;
    same("listening", listener.address_family(), env.family())?;
    let (client, server) = env.connection()?;
    same("connected", client.socket.address_family(), env.family())?;
    same("accepted", server.socket.address_family(), env.family())
}
