//! `http-hello ADDR [MAX_CONNS]`: the smallest HTTP/1.1 server that `curl` is happy with,
//! written against plain `std::net`.
//!
//! Binds `ADDR`, prints `listening on <actual local address>`, then serves connections one at a
//! time (`std` on `wasm32-wasip2` has no threads). For each connection it reads the request head
//! (up to the blank line `\r\n\r\n`, at most 16 KiB) and answers exactly once, with
//! `connection: close`:
//!
//! - `GET` any path: `200 OK`, `content-type: text/plain`, body `hello from a capnet guest\n`;
//! - `HEAD` any path: the same head, no body;
//! - any other method: `405 Method Not Allowed` with `allow: GET, HEAD`;
//! - a head over 16 KiB, or one that is not `METHOD TARGET HTTP/1.x`: `400 Bad Request`.
//!
//! After `MAX_CONNS` connections it exits 0 (default: serve forever). A failed bind prints
//! `error: bind ADDR: <cause>` to stderr and exits 1.

#![forbid(unsafe_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;

use guest_cli::{Failure, OrFail};

/// The body of every successful answer.
const HELLO: &str = "hello from a capnet guest\n";

/// The largest request head read before answering `400`.
const MAX_HEAD: usize = 16 * 1024;

/// How much of what the client sends after its request (a body we ignore) is read and dropped
/// before closing. Closing with unread bytes makes the kernel send a reset, which can destroy the
/// answer before the client has read it.
const MAX_DRAIN: usize = 1024 * 1024;

fn main() -> ExitCode {
    guest_cli::run_std("http-hello", handle)
}

/// Reads one request from `stream` and writes one answer.
fn handle(mut stream: TcpStream, peer: SocketAddr) -> Result<(), Failure> {
    let Some(head) = read_head(&mut stream).or_fail("read", peer)? else {
        // The client closed without sending anything: nothing to answer.
        return Ok(());
    };
    let answer = match head {
        Head::Complete(head) => answer(&head),
        Head::Incomplete => Answer::bad_request(),
    };
    stream
        .write_all(answer.to_bytes().as_slice())
        .or_fail("write", peer)?;
    stream.flush().or_fail("write", peer)?;
    stream.shutdown(Shutdown::Write).or_fail("shutdown", peer)?;
    drain(&mut stream).or_fail("read", peer)
}

/// What the client sent before the answer.
enum Head {
    /// Everything up to and including `\r\n\r\n`.
    Complete(Vec<u8>),
    /// The head went past [`MAX_HEAD`], or the client stopped sending before its end.
    Incomplete,
}

/// Reads the request head. `None` if the client closed without sending a byte.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Head>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Ok(Some(Head::Incomplete)),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // The terminator may straddle two reads: search from just before the new bytes.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&head[from..], b"\r\n\r\n") {
            head.truncate(from + end + 4);
            return Ok(Some(Head::Complete(head)));
        }
        if head.len() > MAX_HEAD {
            return Ok(Some(Head::Incomplete));
        }
    }
}

/// Chooses the answer to a complete request head.
fn answer(head: &[u8]) -> Answer {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Answer::bad_request();
    };
    let Ok(line) = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)) else {
        return Answer::bad_request();
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::bad_request();
    };
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Answer::bad_request();
    }
    match method {
        "GET" => Answer::hello(true),
        "HEAD" => Answer::hello(false),
        _ => Answer {
            status: "405 Method Not Allowed",
            extra: "allow: GET, HEAD\r\n",
            body: "method not allowed\n",
            send_body: true,
        },
    }
}

/// One HTTP answer: always `text/plain`, with its length, and `connection: close`.
struct Answer {
    status: &'static str,
    /// Header lines beyond the common ones, each ending in `\r\n`.
    extra: &'static str,
    body: &'static str,
    /// `false` for `HEAD`: the head describes the body, which is not sent.
    send_body: bool,
}

impl Answer {
    fn hello(send_body: bool) -> Self {
        Self {
            status: "200 OK",
            extra: "",
            body: HELLO,
            send_body,
        }
    }

    fn bad_request() -> Self {
        Self {
            status: "400 Bad Request",
            extra: "",
            body: "bad request\n",
            send_body: true,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = format!(
            "HTTP/1.1 {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n",
            self.status,
            self.body.len(),
            self.extra,
        )
        .into_bytes();
        if self.send_body {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// Reads and drops what the client still sends, up to [`MAX_DRAIN`] bytes, until it closes.
fn drain(stream: &mut TcpStream) -> io::Result<()> {
    let mut chunk = [0; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The client reset the connection after reading the answer: that is its way to close.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The position of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
