//! `tcp-sockopts LOOPBACK`: the options of a `tcp-socket`, their defaults and ranges, on the
//! loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same, tcp_bind};
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::tcp::TcpSocket;

fn main() -> ExitCode {
    run(
        "tcp-sockopts",
        &[
            (
                "the defaults: keep-alive off, every value positive",
                defaults,
            ),
            (
                "0 is invalid-argument for every option that takes a number",
                zero_is_invalid,
            ),
            ("values set are read back", read_back),
            ("out-of-range values are clamped, not refused", clamped),
            (
                "a buffer size set is read back as set, not as the kernel keeps it",
                buffer_sizes_as_set,
            ),
            (
                "options work unbound, bound, listening and connected",
                in_every_state,
            ),
        ],
    )
}

/// A new socket has keep-alive off, and positive keep-alive times, count, hop limit and
/// buffer sizes.
fn defaults(env: &Env) -> Checked {
    let s = env.tcp()?;
    holds(
        !ok("keep-alive-enabled", s.keep_alive_enabled())?,
        "keep-alive is on by default",
    )?;
    holds(
        ok("keep-alive-idle-time", s.keep_alive_idle_time())? > 0,
        "idle time 0",
    )?;
    holds(
        ok("keep-alive-interval", s.keep_alive_interval())? > 0,
        "interval 0",
    )?;
    holds(ok("keep-alive-count", s.keep_alive_count())? > 0, "count 0")?;
    holds(ok("hop-limit", s.hop_limit())? > 0, "hop limit 0")?;
    holds(
        ok("receive-buffer-size", s.receive_buffer_size())? > 0,
        "rcvbuf 0",
    )?;
    holds(
        ok("send-buffer-size", s.send_buffer_size())? > 0,
        "sndbuf 0",
    )
}

/// Setting `keep-alive-idle-time`, `keep-alive-interval`, `keep-alive-count`, `hop-limit`,
/// `receive-buffer-size` or `send-buffer-size` to 0 is `invalid-argument`.
fn zero_is_invalid(env: &Env) -> Checked {
    let s = env.tcp()?;
    let invalid = ErrorCode::InvalidArgument;
    fails("idle time 0", s.set_keep_alive_idle_time(0), invalid)?;
    fails("interval 0", s.set_keep_alive_interval(0), invalid)?;
    fails("count 0", s.set_keep_alive_count(0), invalid)?;
    fails("hop limit 0", s.set_hop_limit(0), invalid)?;
    fails("rcvbuf 0", s.set_receive_buffer_size(0), invalid)?;
    fails("sndbuf 0", s.set_send_buffer_size(0), invalid)
}

fn set_and_read(s: &TcpSocket) -> Checked {
    ok("set-keep-alive-enabled", s.set_keep_alive_enabled(true))?;
    holds(
        ok("keep-alive-enabled", s.keep_alive_enabled())?,
        "keep-alive off",
    )?;
    ok(
        "set-keep-alive-idle-time",
        s.set_keep_alive_idle_time(30_000_000_000),
    )?;
    same(
        "idle time",
        ok("idle", s.keep_alive_idle_time())?,
        30_000_000_000,
    )?;
    ok(
        "set-keep-alive-interval",
        s.set_keep_alive_interval(3_000_000_000),
    )?;
    same(
        "interval",
        ok("interval", s.keep_alive_interval())?,
        3_000_000_000,
    )?;
    ok("set-keep-alive-count", s.set_keep_alive_count(4))?;
    same("count", ok("count", s.keep_alive_count())?, 4)?;
    ok("set-hop-limit", s.set_hop_limit(9))?;
    same("hop limit", ok("hop-limit", s.hop_limit())?, 9)?;
    ok("set-keep-alive-enabled", s.set_keep_alive_enabled(false))?;
    holds(
        !ok("keep-alive-enabled", s.keep_alive_enabled())?,
        "keep-alive on",
    )
}

/// Each value set is the value read back (times in whole seconds, as the system keeps them).
fn read_back(env: &Env) -> Checked {
    set_and_read(&env.tcp()?)
}

/// Values beyond what the system takes are clamped: the setter succeeds, and a value within
/// range is read back.
fn clamped(env: &Env) -> Checked {
    let s = env.tcp()?;
    ok(
        "set-keep-alive-idle-time max",
        s.set_keep_alive_idle_time(u64::MAX),
    )?;
    holds(ok("idle", s.keep_alive_idle_time())? > 0, "idle time 0")?;
    ok("set-keep-alive-count max", s.set_keep_alive_count(u32::MAX))?;
    holds(ok("count", s.keep_alive_count())? > 0, "count 0")?;
    ok(
        "set-receive-buffer-size max",
        s.set_receive_buffer_size(u64::MAX),
    )?;
    holds(ok("rcvbuf", s.receive_buffer_size())? > 0, "rcvbuf 0")?;
    ok("set-send-buffer-size max", s.set_send_buffer_size(u64::MAX))?;
    holds(ok("sndbuf", s.send_buffer_size())? > 0, "sndbuf 0")?;
    ok("set-receive-buffer-size 1", s.set_receive_buffer_size(1))?;
    holds(ok("rcvbuf", s.receive_buffer_size())? > 0, "rcvbuf 0")
}

/// The options may be read and set in any state but closed.
fn in_every_state(env: &Env) -> Checked {
    let bound = env.tcp()?;
    ok("bind", tcp_bind(&bound, &env.net, env.at(0)))?;
    set_and_read(&bound)?;
    let (listener, _) = env.listener()?;
    set_and_read(&listener)?;
    let (client, server) = env.connection()?;
    set_and_read(&client.socket)?;
    set_and_read(&server.socket)
}

/// Linux stores twice the buffer size it is given; the guest reads back the value it set, as
/// under wasmtime-wasi (65536 stays 65536, within the kernel's limits).
fn buffer_sizes_as_set(env: &Env) -> Checked {
    let s = env.tcp()?;
    ok("set-receive-buffer-size", s.set_receive_buffer_size(65_536))?;
    same(
        "receive-buffer-size",
        ok("receive-buffer-size", s.receive_buffer_size())?,
        65_536,
    )?;
    ok("set-send-buffer-size", s.set_send_buffer_size(65_536))?;
    same(
        "send-buffer-size",
        ok("send-buffer-size", s.send_buffer_size())?,
        65_536,
    )
}
