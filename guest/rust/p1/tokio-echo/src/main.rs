//! `p1-tokio-echo [CONNS]`: a tokio server on `wasm32-wasip1`, the way tokio serves on WASI
//! preview 1: the runtime pre-opens the listener as descriptor 3, the module wraps it with
//! `TcpListener::from_std`, and tokio's reactor waits in `poll_oneoff`.
//!
//! Each connection is a task that writes back what it reads until the peer shuts down its
//! write side, then prints `connection N: echoed B bytes`. Connections are served at once, so
//! a second client is answered while the first is still open. After CONNS connections have
//! ended (default: serve forever) it exits 0.

use std::os::fd::FromRawFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The descriptor of the first pre-opened socket, as `wasmtime run --tcplisten` numbers it.
const FIRST_PREOPEN: i32 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let conns: Option<usize> = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("CONNS is a number"));
    // SAFETY: the runtime hands descriptor 3 over as a listening socket and nothing else owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(FIRST_PREOPEN) };
    listener.set_nonblocking(true).expect("set_nonblocking");
    let listener = TcpListener::from_std(listener).expect("from_std");
    let mut tasks = Vec::new();
    let mut accepted = 0;
    while conns.is_none_or(|n| accepted < n) {
        let (stream, _) = listener.accept().await.expect("accept");
        accepted += 1;
        let number = accepted;
        tasks.push(tokio::spawn(async move {
            match echo(stream).await {
                Ok(bytes) => println!("connection {number}: echoed {bytes} bytes"),
                Err(e) => eprintln!("connection {number}: {e}"),
            }
        }));
    }
    for task in tasks {
        task.await.expect("a connection's task");
    }
}

/// Writes back what `stream` sends until the peer closes its write side: the bytes echoed.
async fn echo(mut stream: TcpStream) -> std::io::Result<usize> {
    let mut buffer = [0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buffer[..n]).await?;
        total += n;
    }
}
