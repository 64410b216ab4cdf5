//! `network LOOPBACK`: the `network` resource from `instance-network`, and the rule that a
//! socket is used through the network it was bound with, on the loopback address of one
//! family (see `wasi_net::behaviour`). (`network-error-code` is unstable and not generated.)

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, ok, run, tcp_bind, tcp_connect, udp_bind};
use wasi_net::wasi::sockets::instance_network::instance_network;

fn main() -> ExitCode {
    run(
        "network",
        &[
            (
                "every instance-network handle is the instance's one network",
                same_network,
            ),
            (
                "a socket keeps working after its network handle is dropped",
                outlives_handle,
            ),
            (
                "a UDP socket bound through one handle streams through it",
                udp_same_network,
            ),
        ],
    )
}

/// `instance-network` hands out the instance's network: a socket bound through one handle
/// may connect through another, since both are the same network (a socket bound through
/// another network would be `invalid-argument`).
fn same_network(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let first = instance_network();
    let second = instance_network();
    let socket = env.tcp()?;
    ok(
        "bind through the first",
        tcp_bind(&socket, &first, env.at(0)),
    )?;
    ok(
        "connect through the second",
        tcp_connect(&socket, &second, addr),
    )
    .map(drop)
}

/// The network is the authority a socket was bound with: dropping the handle afterwards takes
/// nothing from the socket.
fn outlives_handle(env: &Env) -> Checked {
    let socket = env.tcp()?;
    {
        let net = instance_network();
        ok("bind", tcp_bind(&socket, &net, env.at(0)))?;
    }
    ok("listen", wasi_net::behaviour::tcp_listen(&socket))?;
    let addr = wasi_net::from_wasi(ok("local-address", socket.local_address())?);
    let client = env.tcp()?;
    ok("connect", tcp_connect(&client, &env.net, addr))?;
    ok("accept", wasi_net::behaviour::tcp_accept(&socket)).map(drop)
}

/// A UDP socket bound through a handle that is then dropped still streams and sends.
fn udp_same_network(env: &Env) -> Checked {
    let (_peer, peer_addr) = env.bound_udp()?;
    let socket = env.udp()?;
    {
        let net = instance_network();
        ok("bind", udp_bind(&socket, &net, env.at(0)))?;
    }
    let (_in, out) = ok("stream", socket.stream(Some(wasi_net::to_wasi(peer_addr))))?;
    ok("check-send", out.check_send()).map(drop)
}
