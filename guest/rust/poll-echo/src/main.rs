//! `poll-echo ADDR [MAX_CONNS]`: a TCP echo server that serves many connections at once from a
//! single `wasi:io/poll.poll` loop, calling `wasi:sockets` directly and never blocking.
//!
//! `ADDR` is `IP:PORT` or `[IPV6]:PORT`. If `capnet:sockets/preopens.take-tcp-listeners` hands
//! over a listener whose address is `ADDR`, that listener is used (no bind or listen right is
//! needed, and the other pre-opened listeners are closed); otherwise the guest creates a socket
//! and binds and listens itself (`start-bind`/`finish-bind`, `start-listen`/`finish-listen`).
//! Either way it prints `listening on <local-address>` once and then echoes every byte each
//! client sends until the client shuts down its sending side. After `MAX_CONNS` connections have
//! completed it exits 0 (default: serve forever).
//!
//! # Design
//!
//! Every turn of the loop builds the list of pollables to wait on:
//!
//! - the listener's, while more connections may be accepted;
//! - per connection, its input stream's, while it may read: its input is open and its unsent
//!   output is at most [`MAX_PENDING`] bytes (backpressure: a client that does not read its
//!   echo is not read from either);
//! - per connection, its output stream's, while it has unsent output or a final flush running.
//!
//! `poll` returns which are ready. Each ready connection then makes what progress it can without
//! waiting ([`Connection::pump`]): write unsent bytes within the `check-write` permit, `read` up
//! to 64 KiB, write again. Bytes the stream does not take yet stay in the connection's pending
//! buffer. When its input is `closed` and everything is written, the connection flushes, waits
//! for the flush, shuts down its sending side, and is dropped. Finally the ready listener
//! `accept`s until `would-block`.
//!
//! Each pollable is made once, when its socket or stream is, and reused on every turn. A pollable
//! is a child of the resource it watches and must be dropped first: [`Connection`] and
//! [`Listener`] declare their pollables before the resources, and Rust drops fields in
//! declaration order.
//!
//! # Errors
//!
//! A failed bind, listen or accept prints `error: OPERATION ADDR: CODE` (the WIT `error-code`
//! name, e.g. `error: bind 127.0.0.1:80: access-denied`) and exits 1. A connection that fails
//! (`error: read PEER: ...`, `error: write PEER: ...`) is dropped, counts as completed, and the
//! server goes on.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use guest_cli::{Failure, OrFail, ServerArgs};
use wasi_net::capnet::sockets::preopens::take_tcp_listeners;
use wasi_net::wasi::io::poll::{Pollable, poll};
use wasi_net::wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::network::ErrorCode;
use wasi_net::wasi::sockets::tcp::{ShutdownType, TcpSocket};
use wasi_net::wasi::sockets::tcp_create_socket::create_tcp_socket;

/// How much one `read` asks for.
const READ_SIZE: u64 = 64 * 1024;

/// Above this many unsent bytes a connection stops reading until its client catches up. A
/// connection's buffer therefore never holds more than `MAX_PENDING + READ_SIZE` bytes.
const MAX_PENDING: usize = 256 * 1024;

fn main() -> ExitCode {
    let args = match ServerArgs::from_env("poll-echo") {
        Ok(args) => args,
        Err(code) => return code,
    };
    let addr: SocketAddr = match args.addr.parse() {
        Ok(addr) => addr,
        Err(_) => {
            let problem = format!("ADDR {:?} is not IP:PORT or [IPV6]:PORT", args.addr);
            return guest_cli::usage("poll-echo ADDR [MAX_CONNS]", problem);
        }
    };
    let listener = match Listener::open(addr) {
        Ok(listener) => listener,
        Err(failure) => return failure.exit(),
    };
    guest_cli::announce(listener.local);
    let mut server = Server {
        listener,
        connections: Vec::new(),
        accepted: 0,
        completed: 0,
        args,
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// The listening socket.
struct Listener {
    /// Fires when a connection is waiting; declared first so it is dropped before `socket`.
    ready: Pollable,
    socket: TcpSocket,
    /// The address reported by `local-address`.
    local: SocketAddr,
}

impl Listener {
    /// Takes the pre-opened listener for `addr`, or binds and listens on a new socket.
    fn open(addr: SocketAddr) -> Result<Self, Failure> {
        let (socket, preopened) = match take_preopened(addr) {
            Some(socket) => (socket, true),
            None => {
                let socket = create_tcp_socket(wasi_net::family(&addr))
                    .or_fail("create-tcp-socket", addr)?;
                (socket, false)
            }
        };
        // Declared after `socket`, so dropped before it on every early return.
        let ready = socket.subscribe();
        if !preopened {
            let network = instance_network();
            socket
                .start_bind(&network, wasi_net::to_wasi(addr))
                .or_fail("bind", addr)?;
            wasi_net::block_on(&ready, || socket.finish_bind()).or_fail("bind", addr)?;
        }
        if !socket.is_listening() {
            socket.start_listen().or_fail("listen", addr)?;
            wasi_net::block_on(&ready, || socket.finish_listen()).or_fail("listen", addr)?;
        }
        let local = socket.local_address().or_fail("local-address", addr)?;
        Ok(Self {
            ready,
            socket,
            local: wasi_net::from_wasi(local),
        })
    }
}

/// The pre-opened listener whose address is `addr`, if there is one. The others are dropped,
/// which closes them.
fn take_preopened(addr: SocketAddr) -> Option<TcpSocket> {
    take_tcp_listeners().into_iter().find_map(|(socket, at)| {
        let at = wasi_net::from_wasi(at);
        (at.ip() == addr.ip() && at.port() == addr.port()).then_some(socket)
    })
}

/// The whole server: the listener, the live connections, and the counts that end it.
struct Server {
    listener: Listener,
    connections: Vec<Connection>,
    accepted: u64,
    completed: u64,
    args: ServerArgs,
}

/// What a pollable in the list given to `poll` belongs to.
#[derive(Clone, Copy)]
enum Owner {
    Listener,
    Connection(usize),
}

impl Server {
    /// Serves until `MAX_CONNS` connections have completed.
    fn run(&mut self) -> Result<(), Failure> {
        let mut owners: Vec<Owner> = Vec::new();
        let mut ready_connections: Vec<bool> = Vec::new();
        while !self.args.done(self.completed) {
            let accepting = !self.args.done(self.accepted);

            // Rebuilt each turn because it borrows the connections, which change below.
            let mut pollables: Vec<&Pollable> = Vec::new();
            owners.clear();
            if accepting {
                pollables.push(&self.listener.ready);
                owners.push(Owner::Listener);
            }
            for (index, connection) in self.connections.iter().enumerate() {
                if connection.wants_input() {
                    pollables.push(&connection.readable);
                    owners.push(Owner::Connection(index));
                }
                if connection.wants_output() {
                    pollables.push(&connection.writable);
                    owners.push(Owner::Connection(index));
                }
            }
            // Never empty: while not done, either more may be accepted or a connection is live,
            // and a live connection always waits on one of its streams.
            let ready = poll(&pollables);
            drop(pollables);

            let mut listener_ready = false;
            ready_connections.clear();
            ready_connections.resize(self.connections.len(), false);
            for index in ready {
                match owners[index as usize] {
                    Owner::Listener => listener_ready = true,
                    Owner::Connection(index) => ready_connections[index] = true,
                }
            }

            // Backwards, so `swap_remove` only moves connections that were already visited.
            for index in (0..self.connections.len()).rev() {
                if !ready_connections[index] {
                    continue;
                }
                let finished = match self.connections[index].pump() {
                    Ok(finished) => finished,
                    Err(failure) => {
                        failure.report();
                        true
                    }
                };
                if finished {
                    self.connections.swap_remove(index);
                    self.completed += 1;
                }
            }

            if listener_ready {
                self.accept_all()?;
            }
        }
        Ok(())
    }

    /// Accepts every waiting connection, up to `MAX_CONNS` in all.
    fn accept_all(&mut self) -> Result<(), Failure> {
        while !self.args.done(self.accepted) {
            match self.listener.socket.accept() {
                Ok((socket, input, output)) => {
                    self.connections
                        .push(Connection::new(socket, input, output));
                    self.accepted += 1;
                }
                Err(ErrorCode::WouldBlock) => break,
                // The client gave up before it was accepted: nothing to serve.
                Err(ErrorCode::ConnectionAborted) => continue,
                Err(code) => return Err(code).or_fail("accept", self.listener.local),
            }
        }
        Ok(())
    }
}

/// One accepted connection being echoed.
///
/// Fields drop in declaration order: the pollables before the streams they watch, the streams
/// before the socket they came from.
struct Connection {
    /// Fires when `input` has bytes or has ended.
    readable: Pollable,
    /// Fires when `output` can take bytes, a flush has finished, or it failed.
    writable: Pollable,
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    /// The client's address, for error lines.
    peer: String,
    /// Bytes read and not yet written back; those before `sent` have been written.
    pending: Vec<u8>,
    sent: usize,
    /// Whether `input` may still give bytes.
    input_open: bool,
    /// Whether the final flush has been asked for.
    flushing: bool,
}

impl Connection {
    fn new(socket: TcpSocket, input: InputStream, output: OutputStream) -> Self {
        let peer = match socket.remote_address() {
            Ok(addr) => wasi_net::from_wasi(addr).to_string(),
            Err(code) => format!("<{}>", wasi_net::error_name(code)),
        };
        Self {
            readable: input.subscribe(),
            writable: output.subscribe(),
            input,
            output,
            socket,
            peer,
            pending: Vec::new(),
            sent: 0,
            input_open: true,
            flushing: false,
        }
    }

    /// How many read bytes still wait to be written back.
    fn unsent(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Whether the next `poll` should wait for input.
    fn wants_input(&self) -> bool {
        self.input_open && self.unsent() <= MAX_PENDING
    }

    /// Whether the next `poll` should wait for room to write, or for the final flush.
    fn wants_output(&self) -> bool {
        self.unsent() > 0 || self.flushing
    }

    /// Makes every step possible without waiting. Returns whether the connection is finished:
    /// its client closed its side, and everything was echoed, flushed and the sending side shut
    /// down.
    fn pump(&mut self) -> Result<bool, Failure> {
        self.write_pending()?;
        if self.wants_input() {
            self.read()?;
            self.write_pending()?;
        }
        if self.input_open || self.unsent() > 0 {
            return Ok(false);
        }
        if !self.flushing {
            self.output.flush().or_fail("write", &self.peer)?;
            self.flushing = true;
        }
        // During a flush the permit is 0; once it is done, writing could resume.
        if self.output.check_write().or_fail("write", &self.peer)? == 0 {
            return Ok(false);
        }
        // The client has closed its side already; a failure here changes nothing for it.
        let _ = self.socket.shutdown(ShutdownType::Send);
        Ok(true)
    }

    /// Reads what is there, without waiting, into the pending buffer.
    fn read(&mut self) -> Result<(), Failure> {
        match self.input.read(READ_SIZE) {
            Ok(bytes) if bytes.is_empty() => {}
            Ok(bytes) if self.unsent() == 0 => {
                self.pending = bytes;
                self.sent = 0;
            }
            Ok(bytes) => {
                self.pending.drain(..self.sent);
                self.sent = 0;
                self.pending.extend_from_slice(&bytes);
            }
            Err(StreamError::Closed) => self.input_open = false,
            Err(error) => return Err(error).or_fail("read", &self.peer),
        }
        Ok(())
    }

    /// Writes as much of the pending bytes as the stream takes now.
    fn write_pending(&mut self) -> Result<(), Failure> {
        while self.unsent() > 0 {
            let permit = self.output.check_write().or_fail("write", &self.peer)?;
            if permit == 0 {
                break;
            }
            let permit = usize::try_from(permit).unwrap_or(usize::MAX);
            let end = self.pending.len().min(self.sent.saturating_add(permit));
            self.output
                .write(&self.pending[self.sent..end])
                .or_fail("write", &self.peer)?;
            self.sent = end;
        }
        Ok(())
    }
}
