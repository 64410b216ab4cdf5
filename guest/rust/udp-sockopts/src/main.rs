//! `udp-sockopts LOOPBACK`: the options of a `udp-socket`, their defaults and ranges, on the
//! loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same};
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::udp::UdpSocket;

fn main() -> ExitCode {
    run(
        "udp-sockopts",
        &[
            ("the defaults are positive", defaults),
            ("0 is invalid-argument for every option", zero_is_invalid),
            ("values set are read back, unbound and bound", read_back),
            (
                "out-of-range buffer sizes are clamped, not refused",
                clamped,
            ),
            (
                "a buffer size set is read back as set, not as the kernel keeps it",
                buffer_sizes_as_set,
            ),
        ],
    )
}

/// A new socket has a positive `unicast-hop-limit` and buffer sizes.
fn defaults(env: &Env) -> Checked {
    let s = env.udp()?;
    holds(
        ok("unicast-hop-limit", s.unicast_hop_limit())? > 0,
        "hop limit 0",
    )?;
    holds(
        ok("receive-buffer-size", s.receive_buffer_size())? > 0,
        "rcvbuf 0",
    )?;
    holds(
        ok("send-buffer-size", s.send_buffer_size())? > 0,
        "sndbuf 0",
    )
}

/// Setting `unicast-hop-limit`, `receive-buffer-size` or `send-buffer-size` to 0 is
/// `invalid-argument`.
fn zero_is_invalid(env: &Env) -> Checked {
    let s = env.udp()?;
    let invalid = ErrorCode::InvalidArgument;
    fails("hop limit 0", s.set_unicast_hop_limit(0), invalid)?;
    fails("rcvbuf 0", s.set_receive_buffer_size(0), invalid)?;
    fails("sndbuf 0", s.set_send_buffer_size(0), invalid)
}

fn set_and_read(s: &UdpSocket) -> Checked {
    ok("set-unicast-hop-limit", s.set_unicast_hop_limit(17))?;
    same(
        "hop limit",
        ok("unicast-hop-limit", s.unicast_hop_limit())?,
        17,
    )?;
    ok("set-receive-buffer-size", s.set_receive_buffer_size(65_536))?;
    holds(
        ok("receive-buffer-size", s.receive_buffer_size())? >= 65_536,
        "rcvbuf below what was set",
    )?;
    ok("set-send-buffer-size", s.set_send_buffer_size(65_536))?;
    holds(
        ok("send-buffer-size", s.send_buffer_size())? >= 65_536,
        "sndbuf below what was set",
    )
}

/// Each value set is read back (the system may round buffer sizes up, never down).
fn read_back(env: &Env) -> Checked {
    set_and_read(&env.udp()?)?;
    set_and_read(&env.bound_udp()?.0)
}

/// Buffer sizes beyond what the system takes are clamped: the setter succeeds.
fn clamped(env: &Env) -> Checked {
    let s = env.udp()?;
    ok(
        "set-receive-buffer-size max",
        s.set_receive_buffer_size(u64::MAX),
    )?;
    holds(ok("rcvbuf", s.receive_buffer_size())? > 0, "rcvbuf 0")?;
    ok("set-send-buffer-size max", s.set_send_buffer_size(u64::MAX))?;
    holds(ok("sndbuf", s.send_buffer_size())? > 0, "sndbuf 0")?;
    ok(
        "set-unicast-hop-limit max",
        s.set_unicast_hop_limit(u8::MAX),
    )?;
    same(
        "hop limit",
        ok("unicast-hop-limit", s.unicast_hop_limit())?,
        255,
    )
}

/// Linux stores twice the buffer size it is given; the guest reads back the value it set, as
/// under wasmtime-wasi (65536 stays 65536, within the kernel's limits).
fn buffer_sizes_as_set(env: &Env) -> Checked {
    let s = env.udp()?;
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
