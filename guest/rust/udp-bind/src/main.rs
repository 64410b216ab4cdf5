//! `udp-bind LOOPBACK`: the rules of `udp-socket.start-bind` / `finish-bind`, on the loopback
//! address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same, udp_bind};
use wasi_net::from_wasi;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "udp-bind",
        &[
            (
                "a port-0 bind gets an ephemeral port on the address asked",
                ephemeral_port,
            ),
            (
                "the unspecified address with port 0 is bindable",
                unspecified,
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
                "an address no interface has is address-not-bindable",
                not_bindable,
            ),
            (
                "a second start-bind is concurrency-conflict, then invalid-state",
                bind_twice,
            ),
            (
                "finish-bind with no bind started is not-in-progress",
                finish_unstarted,
            ),
        ],
    )
}

/// Port 0 lets the system pick; `local-address` reports the address asked with that port.
fn ephemeral_port(env: &Env) -> Checked {
    let (_socket, local) = env.bound_udp()?;
    same("the bound ip", local.ip(), env.ip)?;
    holds(local.port() != 0, "the bound port is 0")
}

/// A client's bind to the unspecified address and port 0 succeeds (it is what `sendto` on an
/// unbound socket does).
fn unspecified(env: &Env) -> Checked {
    let socket = env.udp()?;
    ok("bind", udp_bind(&socket, &env.net, env.unspecified(0)))?;
    let local = from_wasi(ok("local-address", socket.local_address())?);
    holds(local.port() != 0, "the bound port is 0")
}

/// `local-address` of the other address family is `invalid-argument`.
fn other_family(env: &Env) -> Checked {
    let socket = env.udp()?;
    fails(
        "bind",
        udp_bind(&socket, &env.net, env.other_family(0)),
        ErrorCode::InvalidArgument,
    )
}

/// A `local-address` that is not unicast is `invalid-argument`.
fn not_unicast(env: &Env) -> Checked {
    let socket = env.udp()?;
    fails(
        "bind",
        udp_bind(&socket, &env.net, env.multicast(0)),
        ErrorCode::InvalidArgument,
    )
}

/// IPv6 sockets are IPv6-only: an IPv4-mapped `local-address` is `invalid-argument`.
fn mapped_on_ipv6(env: &Env) -> Checked {
    if env.ip.is_ipv4() {
        return Ok(());
    }
    let socket = env.udp()?;
    let mapped = "[::ffff:127.0.0.1]:0".parse().expect("an address");
    fails(
        "bind",
        udp_bind(&socket, &env.net, mapped),
        ErrorCode::InvalidArgument,
    )
}

/// A bind to an address another socket holds is `address-in-use`.
fn in_use(env: &Env) -> Checked {
    let (_first, taken) = env.bound_udp()?;
    let socket = env.udp()?;
    fails(
        "bind",
        udp_bind(&socket, &env.net, taken),
        ErrorCode::AddressInUse,
    )
}

/// `address-not-bindable`: no interface of this machine has `local-address`.
fn not_bindable(env: &Env) -> Checked {
    let socket = env.udp()?;
    fails(
        "bind",
        udp_bind(&socket, &env.net, env.foreign(0)),
        ErrorCode::AddressNotBindable,
    )
}

/// `start-bind` during a bind is `concurrency-conflict`; once bound, `invalid-state`, and
/// `finish-bind` is `not-in-progress`.
fn bind_twice(env: &Env) -> Checked {
    let socket = env.udp()?;
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
fn finish_unstarted(env: &Env) -> Checked {
    let socket = env.udp()?;
    fails(
        "finish-bind",
        socket.finish_bind(),
        ErrorCode::NotInProgress,
    )
}
