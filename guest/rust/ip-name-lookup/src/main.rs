//! `ip-name-lookup LOOPBACK`: `resolve-addresses` and its `resolve-address-stream`. The policy
//! the host tests give allows looking up `localhost` only. LOOPBACK picks no family here but
//! is checked to be among `localhost`'s answers (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, ready_within, run, same};
use wasi_net::block_on;
use wasi_net::wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi_net::wasi::sockets::network::ErrorCode;

fn main() -> ExitCode {
    run(
        "ip-name-lookup",
        &[
            (
                "localhost resolves, its loopback address among the answers",
                localhost,
            ),
            ("the stream ends with none, and stays ended", stream_ends),
            (
                "the stream's pollable is ready once answers are in",
                pollable,
            ),
            ("an IP address is its own answer", ip_literal),
            (
                "a name that is not a host name is invalid-argument",
                invalid,
            ),
            (
                "a lookup the policy refuses is permanent-resolver-failure",
                refused,
            ),
        ],
    )
}

fn all(env: &Env, name: &str) -> Result<Vec<IpAddr>, ErrorCode> {
    wasi_net::resolve(&env.net, name)
}

/// `localhost` resolves to loopback addresses, the one under test among them (where the
/// machine has it).
fn localhost(env: &Env) -> Checked {
    let answers = ok("resolve localhost", all(env, "localhost"))?;
    holds(
        answers.iter().all(IpAddr::is_loopback),
        format!("non-loopback answers {answers:?}"),
    )?;
    holds(
        answers.contains(&env.ip) || env.ip.is_ipv6(),
        format!("{} is not among {answers:?}", env.ip),
    )
}

/// After the last address `resolve-next-address` returns `none`, and again `none` after that.
fn stream_ends(env: &Env) -> Checked {
    let stream = ok(
        "resolve-addresses",
        resolve_addresses(&env.net, "localhost"),
    )?;
    let ready = stream.subscribe();
    while ok(
        "resolve-next-address",
        block_on(&ready, || stream.resolve_next_address()),
    )?
    .is_some()
    {}
    holds(
        ok("again", stream.resolve_next_address())?.is_none(),
        "an address after the end",
    )
}

/// `subscribe` on the stream is ready when `resolve-next-address` will not block.
fn pollable(env: &Env) -> Checked {
    let stream = ok(
        "resolve-addresses",
        resolve_addresses(&env.net, "localhost"),
    )?;
    let ready = stream.subscribe();
    holds(ready_within(&ready, 10_000), "not ready in 10 s")?;
    holds(
        !matches!(stream.resolve_next_address(), Err(ErrorCode::WouldBlock)),
        "would-block when ready",
    )
}

/// An IPv4 or IPv6 address (bare or in brackets) is returned as the one answer.
fn ip_literal(env: &Env) -> Checked {
    same(
        "127.0.0.1",
        ok("resolve", all(env, "127.0.0.1"))?,
        vec![IpAddr::from([127, 0, 0, 1])],
    )?;
    let v6: IpAddr = "::1".parse().expect("an address");
    same("::1", ok("resolve", all(env, "::1"))?, vec![v6])?;
    same("[::1]", ok("resolve", all(env, "[::1]"))?, vec![v6])
}

/// A name with characters no host name has, an empty label or a label of more than 63 bytes
/// is `invalid-argument`, from `resolve-addresses`.
fn invalid(env: &Env) -> Checked {
    for name in ["", "a b", "a..b", "x:80", "host/path", &"a".repeat(64)] {
        fails(
            &format!("resolve-addresses {name:?}"),
            resolve_addresses(&env.net, name).map(drop),
            ErrorCode::InvalidArgument,
        )?;
    }
    Ok(())
}

/// A lookup the policy refuses fails `resolve-addresses` with `permanent-resolver-failure`,
/// as on wasmtime-wasi where lookups are not allowed, and never reaches a resolver.
fn refused(env: &Env) -> Checked {
    fails(
        "resolve-addresses example.com",
        resolve_addresses(&env.net, "example.com").map(drop),
        ErrorCode::PermanentResolverFailure,
    )
}
