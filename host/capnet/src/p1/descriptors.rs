//! The socket descriptors of a preview 1 module: listeners the runtime pre-opened, numbered
//! from 3 in the order wasmtime's CLI numbers them, and the connections accepted from them.
//!
//! capnet owns these numbers; `wasmtime-wasi`'s preview 1 table owns stdio (0, 1, 2) and, with
//! no socket pre-opened, the directories from 3. The two never meet: `capnet run` refuses
//! `--dir` beside pre-opened sockets for a preview 1 module, and with no directory
//! `wasmtime-wasi` makes no new descriptor (only `path_open` does, and it needs one).

use super::abi::Fail;
use crate::rate::Meter;
use crate::socket::poll_now;
use crate::socket::stream::Connection;
use crate::socket::tcp::{Acceptor, TcpSocket};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::net::Shutdown;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use wasmtime_wasi::p1::types::Errno;

/// The first descriptor a pre-opened socket gets, after stdin, stdout and stderr.
pub(crate) const FIRST: u32 = 3;

/// The sockets of one module, by descriptor.
#[derive(Default)]
pub(crate) struct Descriptors {
    sockets: BTreeMap<u32, Socket>,
}

/// What a socket descriptor is.
pub(crate) enum Socket {
    /// A pre-opened listener. (Both kinds are boxed: the table's nodes stay small, and a box
    /// is made once per accept, beside the connection's own.)
    Listener(Box<Listener>),
    /// A connection a listener accepted.
    Stream(Box<Stream>),
}

/// A pre-opened listener and what accepts from it: every peer checked against `tcp-accept`.
pub(crate) struct Listener {
    /// Keeps the socket (and its grant) alive while the module holds the descriptor.
    _socket: TcpSocket,
    acceptor: Acceptor,
    /// A connection a `poll_oneoff` took while saying the listener was ready, already checked
    /// and counted; the next `sock_accept` returns it.
    ready: Option<TcpSocket>,
    pub(crate) nonblocking: bool,
}

/// An accepted connection.
pub(crate) struct Stream {
    socket: TcpSocket,
    conn: Arc<Connection>,
    /// The grant's `bytes-per-second` buckets, one meter each way (their timers are apart).
    receiving: Meter,
    sending: Meter,
    pub(crate) nonblocking: bool,
}

impl Descriptors {
    /// Whether `fd` is one of the module's sockets.
    pub(crate) fn owns(&self, fd: i32) -> bool {
        self.sockets.contains_key(&(fd as u32))
    }

    /// Whether the module holds any socket.
    pub(crate) fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    pub(crate) fn get(&mut self, fd: i32) -> Result<&mut Socket, Fail> {
        self.sockets
            .get_mut(&(fd as u32))
            .ok_or(Fail::Errno(Errno::Badf))
    }

    /// Adds `socket` at the lowest free descriptor from 3 on: its number.
    pub(crate) fn push(&mut self, socket: Socket) -> u32 {
        let mut fd = FIRST;
        for &used in self.sockets.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        self.sockets.insert(fd, socket);
        fd
    }

    /// Closes `fd`: a connection's peer sees the end of the stream.
    pub(crate) fn close(&mut self, fd: i32) -> Result<(), Fail> {
        self.sockets
            .remove(&(fd as u32))
            .map(drop)
            .ok_or(Fail::Errno(Errno::Badf))
    }

    /// `fd_renumber` between two sockets: `to` is closed and `from` takes its number.
    pub(crate) fn renumber(&mut self, from: i32, to: i32) -> Result<(), Fail> {
        if !self.owns(to) {
            return Err(Errno::Badf.into());
        }
        let socket = self
            .sockets
            .remove(&(from as u32))
            .ok_or(Fail::Errno(Errno::Badf))?;
        self.sockets.insert(to as u32, socket);
        Ok(())
    }
}

impl Socket {
    /// Whether the descriptor is in non-blocking mode (`fdflags::nonblock`).
    pub(crate) fn nonblocking(&self) -> bool {
        match self {
            Socket::Listener(l) => l.nonblocking,
            Socket::Stream(s) => s.nonblocking,
        }
    }

    pub(crate) fn set_nonblocking(&mut self, nonblocking: bool) {
        match self {
            Socket::Listener(l) => l.nonblocking = nonblocking,
            Socket::Stream(s) => s.nonblocking = nonblocking,
        }
    }

    pub(crate) fn stream(&mut self) -> Result<&mut Stream, Fail> {
        match self {
            Socket::Stream(s) => Ok(s),
            Socket::Listener(_) => Err(Errno::Notconn.into()),
        }
    }

    /// Ready to read: a listener with an allowed peer waiting (taken now and kept for the
    /// next accept), or a connection with bytes, the end or an error to report. `Err` is the
    /// error the event carries.
    pub(crate) fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Errno>> {
        match self {
            Socket::Listener(l) => {
                if l.ready.is_none() {
                    match ready!(l.acceptor.poll_accept(cx)) {
                        Ok(socket) => l.ready = Some(socket),
                        Err(code) => return Poll::Ready(Err(super::abi::errno(code))),
                    }
                }
                Poll::Ready(Ok(()))
            }
            Socket::Stream(s) => {
                // Past the rate the bytes wait in the kernel: not readable until a refill.
                ready!(s.receiving.poll_take(cx, 1));
                s.receiving.give_back(1);
                s.conn.poll_receive_ready(cx).map(Ok)
            }
        }
    }

    /// Ready to write: a connection the kernel takes bytes on (and the rate allows). A
    /// listener never is: tokio registers every socket for both, and mio takes an event's
    /// error as its poll's failure.
    pub(crate) fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Errno>> {
        match self {
            Socket::Listener(_) => Poll::Pending,
            Socket::Stream(s) => {
                ready!(s.sending.poll_take(cx, 1));
                s.sending.give_back(1);
                s.conn
                    .stream
                    .poll_write_ready(cx)
                    .map(|r| r.map_err(|e| super::abi::errno(e.into())))
            }
        }
    }
}

impl Listener {
    /// A listener over a pre-opened socket.
    ///
    /// # Errors
    /// When the socket is not listening (never for a pre-open).
    pub(crate) fn new(socket: TcpSocket) -> Result<Self, crate::socket::ErrorCode> {
        Ok(Self {
            acceptor: socket.acceptor()?,
            _socket: socket,
            ready: None,
            nonblocking: false,
        })
    }

    /// `sock_accept`: the next connection from a peer `tcp-accept` allows; refused peers are
    /// closed and logged by the core and never reach the module. Waits in blocking mode;
    /// `EAGAIN` at once in non-blocking mode.
    pub(crate) async fn accept(&mut self) -> Result<TcpSocket, Fail> {
        if let Some(socket) = self.ready.take() {
            return Ok(socket);
        }
        let acceptor = &mut self.acceptor;
        let accepted = if self.nonblocking {
            match poll_now(|cx| acceptor.poll_accept(cx)) {
                Poll::Ready(accepted) => accepted,
                Poll::Pending => return Err(Errno::Again.into()),
            }
        } else {
            poll_fn(|cx| acceptor.poll_accept(cx)).await
        };
        Ok(accepted?)
    }
}

impl Stream {
    /// A descriptor over an accepted connection.
    pub(crate) fn new(socket: TcpSocket, nonblocking: bool) -> Result<Self, Fail> {
        let conn = socket.connection()?;
        Ok(Self {
            receiving: conn.meter(),
            sending: conn.meter(),
            conn,
            socket,
            nonblocking,
        })
    }

    /// Reads into `buf` (`peek` leaves the bytes in the kernel): 0 at the end of the stream.
    /// One `recv` straight into guest memory, within what the rate allows. Waits for a byte in
    /// blocking mode; `EAGAIN` in non-blocking mode.
    pub(crate) async fn receive(&mut self, buf: &mut [u8], peek: bool) -> Result<usize, Fail> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (conn, meter) = (&self.conn, &mut self.receiving);
        let mut receive = |cx: &mut Context<'_>| {
            let allowed = ready!(meter.poll_take(cx, buf.len()));
            let result = if peek {
                let mut read = tokio::io::ReadBuf::new(&mut buf[..allowed]);
                conn.stream
                    .poll_peek(cx, &mut read)
                    .map(|r| r.map(|_| read.filled().len()))
            } else {
                conn.poll_receive(cx, &mut buf[..allowed])
            };
            let moved = match (&result, peek) {
                (Poll::Ready(Ok(n)), false) => *n,
                _ => 0,
            };
            meter.give_back(allowed - moved);
            result
        };
        let received = if self.nonblocking {
            match poll_now(&mut receive) {
                Poll::Ready(received) => received,
                Poll::Pending => return Err(Errno::Again.into()),
            }
        } else {
            poll_fn(receive).await
        };
        Ok(received?)
    }

    /// Sends from `buf`: how many bytes the kernel took, one `send` straight from guest
    /// memory, within what the rate allows. Waits until it takes one in blocking mode;
    /// `EAGAIN` in non-blocking mode.
    pub(crate) async fn send(&mut self, buf: &[u8]) -> Result<usize, Fail> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (conn, meter) = (&self.conn, &mut self.sending);
        let mut send = |cx: &mut Context<'_>| {
            let allowed = ready!(meter.poll_take(cx, buf.len()));
            let result = conn.poll_send(cx, &buf[..allowed]);
            let moved = match &result {
                Poll::Ready(Ok(n)) => *n,
                _ => 0,
            };
            meter.give_back(allowed - moved);
            result
        };
        let sent = if self.nonblocking {
            match poll_now(&mut send) {
                Poll::Ready(sent) => sent,
                Poll::Pending => return Err(Errno::Again.into()),
            }
        } else {
            poll_fn(send).await
        };
        Ok(sent?)
    }

    /// `sock_shutdown`.
    pub(crate) fn shutdown(&self, how: Shutdown) -> Result<(), Fail> {
        Ok(self.socket.shutdown(how)?)
    }
}
