//! `udp-connect LOOPBACK`: `udp-socket.stream` with and without a remote address, and what a
//! connected stream lets through, on the loopback address of one family (see
//! `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Env, fails, holds, ok, run, same, udp_receive, udp_send};
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::udp::OutgoingDatagram;
use wasi_net::{from_wasi, to_wasi};

fn main() -> ExitCode {
    run(
        "udp-connect",
        &[
            ("stream on an unbound socket is invalid-state", unbound),
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
                "a connected stream sends to the remote without an address",
                connected_send,
            ),
            (
                "a connected stream takes its own remote, nothing else",
                connected_addresses,
            ),
            ("a connected socket hears only its remote", connected_filter),
            (
                "datagrams queued from others before stream(remote) are not delivered",
                queued_before_connect,
            ),
            (
                "an unconnected stream needs an address on every datagram",
                unconnected_needs,
            ),
            ("stream again reconnects to another remote", reconnect),
            (
                "an ICMP error on a connected stream wakes it and receive reports it",
                refused_remote,
            ),
        ],
    )
}

/// `stream` before the socket is bound is `invalid-state`.
fn unbound(env: &Env) -> Checked {
    let socket = env.udp()?;
    let remote = to_wasi(env.at(9));
    fails(
        "stream",
        socket.stream(Some(remote)).map(drop),
        ErrorCode::InvalidState,
    )
}

fn refuses(env: &Env, remote: std::net::SocketAddr) -> Checked {
    let (socket, _) = env.bound_udp()?;
    fails(
        &format!("stream {remote}"),
        socket.stream(Some(to_wasi(remote))).map(drop),
        ErrorCode::InvalidArgument,
    )
}

/// The unspecified address as `remote-address` is `invalid-argument`.
fn unspecified(env: &Env) -> Checked {
    refuses(env, env.unspecified(9))
}

/// Port 0 as the remote port is `invalid-argument`.
fn port_zero(env: &Env) -> Checked {
    refuses(env, env.at(0))
}

/// A remote address of the other family is `invalid-argument`.
fn other_family(env: &Env) -> Checked {
    refuses(env, env.other_family(9))
}

/// On a connected stream a datagram without `remote-address` goes to the remote.
fn connected_send(env: &Env) -> Checked {
    let (socket, local) = env.bound_udp()?;
    let (peer, peer_addr) = env.bound_udp()?;
    let (_in, out) = ok("stream", socket.stream(Some(to_wasi(peer_addr))))?;
    let (peer_in, _peer_out) = ok("peer stream", peer.stream(None))?;
    let sent = ok(
        "send",
        udp_send(
            &out,
            &[OutgoingDatagram {
                data: b"hi".to_vec(),
                remote_address: None,
            }],
        ),
    )?;
    same("sent", sent, 1)?;
    let got = udp_receive(&peer_in, 10)?;
    same("data", got[0].data.clone(), b"hi".to_vec())?;
    same("from", from_wasi(got[0].remote_address), local)
}

/// A connected stream sends to `remote-address` equal to its remote, and refuses any other
/// with `invalid-argument`.
fn connected_addresses(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let (_peer, peer_addr) = env.bound_udp()?;
    let (_other, other_addr) = env.bound_udp()?;
    let (_in, out) = ok("stream", socket.stream(Some(to_wasi(peer_addr))))?;
    let to = |addr| {
        [OutgoingDatagram {
            data: b"x".to_vec(),
            remote_address: Some(to_wasi(addr)),
        }]
    };
    same(
        "sent",
        ok("send to the remote", udp_send(&out, &to(peer_addr)))?,
        1,
    )?;
    fails(
        "send to another address",
        udp_send(&out, &to(other_addr)),
        ErrorCode::InvalidArgument,
    )
}

/// A connected socket receives datagrams from its remote only.
fn connected_filter(env: &Env) -> Checked {
    let (socket, local) = env.bound_udp()?;
    let (peer, peer_addr) = env.bound_udp()?;
    let (stranger, _) = env.bound_udp()?;
    let (incoming, _out) = ok("stream", socket.stream(Some(to_wasi(peer_addr))))?;
    let datagram = |data: &[u8]| {
        [OutgoingDatagram {
            data: data.to_vec(),
            remote_address: Some(to_wasi(local)),
        }]
    };
    let (_s_in, s_out) = ok("stranger stream", stranger.stream(None))?;
    ok("stranger send", udp_send(&s_out, &datagram(b"stranger")))?;
    let (_p_in, p_out) = ok("peer stream", peer.stream(None))?;
    ok("peer send", udp_send(&p_out, &datagram(b"peer")))?;
    let got = udp_receive(&incoming, 10)?;
    same("data", got[0].data.clone(), b"peer".to_vec())?;
    same("from", from_wasi(got[0].remote_address), peer_addr)
}

/// A datagram another peer sent while the socket was still open to all waits in its queue;
/// once `stream` limits the socket to a remote, only that remote's datagrams come through.
fn queued_before_connect(env: &Env) -> Checked {
    let (socket, local) = env.bound_udp()?;
    let (peer, peer_addr) = env.bound_udp()?;
    let (stranger, _) = env.bound_udp()?;
    let datagram = |data: &[u8]| {
        [OutgoingDatagram {
            data: data.to_vec(),
            remote_address: Some(to_wasi(local)),
        }]
    };
    let (_s_in, s_out) = ok("stranger stream", stranger.stream(None))?;
    ok("stranger send", udp_send(&s_out, &datagram(b"stranger")))?;
    let (_p_in, p_out) = ok("peer stream", peer.stream(None))?;
    ok("peer send", udp_send(&p_out, &datagram(b"peer")))?;
    // Both datagrams are queued now (loopback delivers at once); then the socket connects.
    let (incoming, _out) = ok("stream", socket.stream(Some(to_wasi(peer_addr))))?;
    let got = udp_receive(&incoming, 10)?;
    for datagram in &got {
        same("from", from_wasi(datagram.remote_address), peer_addr)?;
    }
    same("data", got[0].data.clone(), b"peer".to_vec())
}

/// On an unconnected stream a datagram without `remote-address` is `invalid-argument`.
fn unconnected_needs(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let (_in, out) = ok("stream", socket.stream(None))?;
    fails(
        "send without an address",
        udp_send(
            &out,
            &[OutgoingDatagram {
                data: b"x".to_vec(),
                remote_address: None,
            }],
        ),
        ErrorCode::InvalidArgument,
    )
}

/// A datagram to a remote where nothing listens comes back as an ICMP port-unreachable; the
/// connected incoming stream's pollable wakes for it and `receive` is `connection-refused`.
fn refused_remote(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let closed = {
        let (gone, addr) = env.bound_udp()?;
        drop(gone);
        addr
    };
    let (incoming, outgoing) = ok("stream", socket.stream(Some(to_wasi(closed))))?;
    let datagram = [OutgoingDatagram {
        data: b"anyone?".to_vec(),
        remote_address: None,
    }];
    ok("send", udp_send(&outgoing, &datagram))?;
    let ready = incoming.subscribe();
    holds(
        wasi_net::behaviour::ready_within(&ready, 5_000),
        "the incoming stream did not wake within 5 s",
    )?;
    fails("receive", incoming.receive(1), ErrorCode::ConnectionRefused)
}

/// Once the old streams are dropped, `stream` with another remote connects to that one.
fn reconnect(env: &Env) -> Checked {
    let (socket, _) = env.bound_udp()?;
    let (_a, a) = env.bound_udp()?;
    let (_b, b) = env.bound_udp()?;
    drop(ok("stream a", socket.stream(Some(to_wasi(a))))?);
    let _streams = ok("stream b", socket.stream(Some(to_wasi(b))))?;
    same(
        "remote-address",
        from_wasi(ok("remote-address", socket.remote_address())?),
        b,
    )
}
