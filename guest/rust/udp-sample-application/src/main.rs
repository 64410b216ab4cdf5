//! `udp-sample-application LOOPBACK`: a UDP server and its clients in one program, the way an
//! application uses `wasi:sockets/udp`: unconnected server, connected and unconnected clients,
//! batches in both directions, `check-send` budgets. On the loopback address of one family
//! (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{
    Checked, Env, holds, ok, ready_within, run, same, udp_receive, udp_send,
};
use wasi_net::wasi::sockets::udp::OutgoingDatagram;
use wasi_net::{from_wasi, to_wasi};

fn main() -> ExitCode {
    run(
        "udp-sample-application",
        &[
            (
                "a server hears several clients and answers each",
                server_and_clients,
            ),
            (
                "a batch is received in order, each with its sender",
                batches,
            ),
            (
                "check-send permits at least one datagram, send takes them",
                check_send,
            ),
            ("empty datagrams are datagrams", empty_datagram),
            (
                "the streams' pollables wake for room to send and for a datagram",
                pollables,
            ),
            (
                "a send of an empty list sends nothing and succeeds",
                empty_send,
            ),
        ],
    )
}

/// An unconnected server receives from a connected client and an unconnected one, sees each
/// sender's address, and its answers reach each.
fn server_and_clients(env: &Env) -> Checked {
    let (server, server_addr) = env.bound_udp()?;
    let (s_in, s_out) = ok("server stream", server.stream(None))?;
    let (connected, connected_addr) = env.bound_udp()?;
    let (c_in, c_out) = ok(
        "client stream",
        connected.stream(Some(to_wasi(server_addr))),
    )?;
    let (loose, loose_addr) = env.bound_udp()?;
    let (l_in, l_out) = ok("client stream", loose.stream(None))?;
    ok(
        "connected client send",
        udp_send(
            &c_out,
            &[OutgoingDatagram {
                data: b"one".to_vec(),
                remote_address: None,
            }],
        ),
    )?;
    ok(
        "unconnected client send",
        udp_send(
            &l_out,
            &[OutgoingDatagram {
                data: b"two".to_vec(),
                remote_address: Some(to_wasi(server_addr)),
            }],
        ),
    )?;
    let mut heard = Vec::new();
    while heard.len() < 2 {
        for d in udp_receive(&s_in, 10)? {
            heard.push((d.data, from_wasi(d.remote_address)));
        }
    }
    heard.sort();
    same(
        "heard",
        heard.clone(),
        vec![
            (b"one".to_vec(), connected_addr),
            (b"two".to_vec(), loose_addr),
        ],
    )?;
    let answers: Vec<OutgoingDatagram> = heard
        .iter()
        .map(|(data, from)| OutgoingDatagram {
            data: [b"re:", &data[..]].concat(),
            remote_address: Some(to_wasi(*from)),
        })
        .collect();
    same(
        "answers sent",
        ok("server send", udp_send(&s_out, &answers))?,
        2,
    )?;
    same(
        "connected heard",
        udp_receive(&c_in, 10)?[0].data.clone(),
        b"re:one".to_vec(),
    )?;
    same(
        "unconnected heard",
        udp_receive(&l_in, 10)?[0].data.clone(),
        b"re:two".to_vec(),
    )
}

/// `receive(max)` returns at most `max` datagrams, in the order they were sent.
fn batches(env: &Env) -> Checked {
    let (server, server_addr) = env.bound_udp()?;
    let (s_in, _s_out) = ok("server stream", server.stream(None))?;
    let (client, client_addr) = env.bound_udp()?;
    let (_c_in, c_out) = ok("client stream", client.stream(Some(to_wasi(server_addr))))?;
    let batch: Vec<OutgoingDatagram> = (0..5u8)
        .map(|i| OutgoingDatagram {
            data: vec![i; 100],
            remote_address: None,
        })
        .collect();
    same("sent", ok("send", udp_send(&c_out, &batch))?, 5)?;
    let mut got = Vec::new();
    while got.len() < 5 {
        let some = udp_receive(&s_in, 3)?;
        holds(some.len() <= 3, format!("receive(3) gave {}", some.len()))?;
        got.extend(some);
    }
    for (i, d) in got.iter().enumerate() {
        same("data", d.data.clone(), vec![i as u8; 100])?;
        same("from", from_wasi(d.remote_address), client_addr)?;
    }
    Ok(())
}

/// A fresh socket can send at once: `check-send` is positive, and `send` of that many
/// datagrams sends them all.
fn check_send(env: &Env) -> Checked {
    let (_server, server_addr) = env.bound_udp()?;
    let (client, _) = env.bound_udp()?;
    let (_in, out) = ok("stream", client.stream(Some(to_wasi(server_addr))))?;
    let permitted = ok("check-send", out.check_send())?;
    holds(permitted > 0, "check-send is 0 on a fresh socket")?;
    let batch: Vec<OutgoingDatagram> = (0..permitted.min(16))
        .map(|_| OutgoingDatagram {
            data: b"d".to_vec(),
            remote_address: None,
        })
        .collect();
    same("sent", ok("send", out.send(&batch))?, batch.len() as u64)
}

/// A datagram with no bytes is sent and received as one.
fn empty_datagram(env: &Env) -> Checked {
    let (server, server_addr) = env.bound_udp()?;
    let (s_in, _s_out) = ok("server stream", server.stream(None))?;
    let (client, _) = env.bound_udp()?;
    let (_in, out) = ok("stream", client.stream(Some(to_wasi(server_addr))))?;
    ok(
        "send",
        udp_send(
            &out,
            &[OutgoingDatagram {
                data: vec![],
                remote_address: None,
            }],
        ),
    )?;
    same("data", udp_receive(&s_in, 1)?[0].data.clone(), vec![])
}

/// `send` of no datagrams returns 0, whatever `check-send` said.
fn empty_send(env: &Env) -> Checked {
    let (client, _) = env.bound_udp()?;
    let (_in, out) = ok("stream", client.stream(None))?;
    same("sent", ok("send", out.send(&[]))?, 0)
}

/// The outgoing stream's pollable is ready while `check-send` would permit a datagram (at once
/// on a fresh socket); the incoming stream's is ready only once a datagram is there.
fn pollables(env: &Env) -> Checked {
    let (server, server_addr) = env.bound_udp()?;
    let (s_in, _s_out) = ok("server stream", server.stream(None))?;
    let (client, _) = env.bound_udp()?;
    let (_c_in, c_out) = ok("client stream", client.stream(Some(to_wasi(server_addr))))?;
    holds(
        ready_within(&c_out.subscribe(), 5_000),
        "the outgoing stream of a fresh socket is not ready",
    )?;
    let incoming = s_in.subscribe();
    holds(
        !ready_within(&incoming, 50),
        "incoming ready with nothing sent",
    )?;
    ok(
        "send",
        udp_send(
            &c_out,
            &[OutgoingDatagram {
                data: b"p".to_vec(),
                remote_address: None,
            }],
        ),
    )?;
    holds(
        ready_within(&incoming, 5_000),
        "incoming not ready after a datagram",
    )?;
    same(
        "data",
        udp_receive(&s_in, 1)?[0].data.clone(),
        b"p".to_vec(),
    )
}
