//! `tcp-streams LOOPBACK`: the input and output streams of a connected `tcp-socket` and
//! `shutdown`, on the loopback address of one family (see `wasi_net::behaviour`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_net::behaviour::{Checked, Connected, Env, holds, ready_within, run, same};
use wasi_net::wasi::io::streams::{InputStream, StreamError};
use wasi_net::wasi::sockets::tcp::ShutdownType;

fn main() -> ExitCode {
    run(
        "tcp-streams",
        &[
            ("bytes arrive intact and in order, both ways", round_trip),
            (
                "the input stream's pollable wakes when bytes arrive",
                input_wakes,
            ),
            (
                "shutdown(send): the peer reads the bytes, then the end",
                shutdown_send,
            ),
            (
                "after shutdown(send) the output stream takes no more",
                write_after_shutdown,
            ),
            (
                "after shutdown(receive) the input stream is closed",
                shutdown_receive,
            ),
            ("when the peer closes, reads end with closed", peer_closed),
            ("shutdown may be repeated", shutdown_twice),
        ],
    )
}

/// Everything `input` yields until `closed`, or the error that ended it.
fn read_to_end(input: &InputStream) -> Result<Vec<u8>, String> {
    let mut all = Vec::new();
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(bytes) => all.extend(bytes),
            Err(StreamError::Closed) => return Ok(all),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("read failed: {}", e.to_debug_string()));
            }
        }
    }
}

fn write(side: &Connected, bytes: &[u8]) -> Checked {
    for chunk in bytes.chunks(4096) {
        side.output
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("write failed: {e:?}"))?;
    }
    Ok(())
}

/// What one side writes the other reads, byte for byte, in order.
fn round_trip(env: &Env) -> Checked {
    let (client, server) = env.connection()?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(&client, &data)?;
    client
        .socket
        .shutdown(ShutdownType::Send)
        .map_err(|e| e.to_string())?;
    same(
        "bytes at the server",
        read_to_end(&server.input)?,
        data.clone(),
    )?;
    write(&server, b"back")?;
    server
        .socket
        .shutdown(ShutdownType::Send)
        .map_err(|e| e.to_string())?;
    same(
        "bytes at the client",
        read_to_end(&client.input)?,
        b"back".to_vec(),
    )
}

/// `subscribe` on the input stream is ready once bytes are there to read.
fn input_wakes(env: &Env) -> Checked {
    let (client, server) = env.connection()?;
    let ready = server.input.subscribe();
    holds(!ready_within(&ready, 50), "ready before anything was sent")?;
    write(&client, b"x")?;
    holds(
        ready_within(&ready, 5_000),
        "not ready after a byte was sent",
    )?;
    same(
        "read",
        server.input.read(10).map_err(|e| format!("{e:?}"))?,
        b"x".to_vec(),
    )
}

/// `shutdown(send)` sends a FIN after the bytes already written: the peer reads them all, then
/// `closed`.
fn shutdown_send(env: &Env) -> Checked {
    let (client, server) = env.connection()?;
    write(&client, b"last words")?;
    client
        .socket
        .shutdown(ShutdownType::Send)
        .map_err(|e| e.to_string())?;
    same("read", read_to_end(&server.input)?, b"last words".to_vec())
}

/// After `shutdown(send)` the output stream is closed to writes: `check-write` or `write`
/// fails.
fn write_after_shutdown(env: &Env) -> Checked {
    let (client, _server) = env.connection()?;
    client
        .socket
        .shutdown(ShutdownType::Send)
        .map_err(|e| e.to_string())?;
    let refused = client.output.check_write().is_err() || client.output.write(b"late").is_err();
    holds(refused, "the output stream took bytes after shutdown(send)")
}

/// After `shutdown(receive)` reads end with `closed` (unread bytes are dropped).
fn shutdown_receive(env: &Env) -> Checked {
    let (client, _server) = env.connection()?;
    client
        .socket
        .shutdown(ShutdownType::Receive)
        .map_err(|e| e.to_string())?;
    match client.input.blocking_read(10) {
        Err(StreamError::Closed) => Ok(()),
        other => Err(format!("read after shutdown(receive) gave {other:?}")),
    }
}

/// When the peer drops its socket, reads return what it sent and then `closed`.
fn peer_closed(env: &Env) -> Checked {
    let (client, server) = env.connection()?;
    write(&server, b"bye")?;
    drop(server);
    same("read", read_to_end(&client.input)?, b"bye".to_vec())
}

/// `shutdown` on a connected socket may be called again, and with `both`.
fn shutdown_twice(env: &Env) -> Checked {
    let (client, _server) = env.connection()?;
    for how in [ShutdownType::Send, ShutdownType::Send, ShutdownType::Both] {
        client.socket.shutdown(how).map_err(|e| e.to_string())?;
    }
    Ok(())
}
