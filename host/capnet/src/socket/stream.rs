//! The byte streams of a connected TCP socket, read and written straight from the tokio socket.
//!
//! No task or channel sits between the guest and the kernel: `read` is one `recv` into a fresh,
//! uninitialised buffer that is handed to the guest without another copy, and `write` is one
//! `send`. Only when the kernel cannot take all the bytes a guest was permitted to write does the
//! remainder move to a short-lived drain task, so the bytes leave even if the guest never comes
//! back to this stream (it may be blocked reading the reply, or have dropped the stream). Under
//! `capnet run`, whose runtime has one thread, that task runs on the guest's own thread whenever
//! the guest waits: it hands nothing to another thread.
//!
//! Under a `bytes-per-second` rate every read and write draws on the grant's buckets
//! ([`Meter`]): a read takes what they hold before its `recv` and gives back what it did not
//! read, and `check-write` takes what it permits (given back if the guest writes less), so
//! streams of one instance never spend the same bytes; while the buckets are empty the
//! pollables wait for them to refill before the socket.

use super::poll_now;
use crate::grant::{Grant, Registration};
use crate::limit::Held;
use crate::rate::Meter;
use crate::revoke::Closable;
use bytes::{Buf, Bytes};
use capnet_policy::{Limit, Use};
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// Largest read served in one call; larger requests get what is there, up to this. Guests
/// that read 256 KiB at a time (a sink) needed four host calls per read at 64 KiB.
const READ_CHUNK: usize = 256 * 1024;

/// A connected socket, shared by the `tcp-socket` resource and its two streams.
pub struct Connection {
    pub(crate) stream: TcpStream,
    receive_shut: AtomicBool,
    send_shut: AtomicBool,
    draining: AtomicBool,
    /// Whether a 0.3 `send` or `receive` took the sending or receiving side already.
    send_taken: AtomicBool,
    receive_taken: AtomicBool,
    /// Bytes a guest may hand over per `check-write`, the most the host buffers for it: the
    /// grant's `stream-buffer` limit.
    write_budget: usize,
    /// The grant it was opened under, whose `bytes-per-second` buckets its bytes draw on.
    grant: Grant,
    /// Keeps the connection findable by a revocation for as long as any holder lives.
    _registration: Registration,
    /// Its socket's and its own counts against the instance's limits.
    _held: Holds,
}

/// What a connection counts against its instance's limits: the socket it is (shared with
/// the socket resource) and the connection itself.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    pub(crate) socket: Option<Arc<Held>>,
    #[expect(dead_code, reason = "held for its drop, which gives the count back")]
    pub(crate) connection: Option<Held>,
}

impl Connection {
    /// A connection over `stream`, opened under `grant` for `use_` (`tcp-connect` or
    /// `tcp-accept`) with `peer`, registered where a revocation of the grant can close it.
    pub(crate) fn new(
        stream: TcpStream,
        grant: &Grant,
        use_: Use,
        peer: SocketAddr,
        held: Holds,
    ) -> Arc<Self> {
        let write_budget = usize::try_from(grant.limit(Limit::StreamBuffer)).unwrap_or(usize::MAX);
        Arc::new_cyclic(|weak: &Weak<Connection>| Self {
            stream,
            receive_shut: AtomicBool::new(false),
            send_shut: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            send_taken: AtomicBool::new(false),
            receive_taken: AtomicBool::new(false),
            write_budget,
            grant: grant.clone(),
            _registration: grant.register(use_, peer, Closable::Connection(weak.clone())),
            _held: held,
        })
    }

    /// A meter of the connection's `bytes-per-second` buckets, for one of its streams.
    pub(crate) fn meter(&self) -> Meter {
        Meter::new(self.grant.clone())
    }

    /// Claims the sending side for one 0.3 `send`: `false` when it was claimed before.
    pub(crate) fn take_send(&self) -> bool {
        !self.send_taken.swap(true, Ordering::SeqCst)
    }

    /// Claims the receiving side for one 0.3 `receive`: `false` when it was claimed before.
    pub(crate) fn take_receive(&self) -> bool {
        !self.receive_taken.swap(true, Ordering::SeqCst)
    }

    /// Ready when a read would not wait: bytes, the end, or an error are there.
    pub(crate) fn poll_receive_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.receive_shut.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        self.stream.poll_read_ready(cx).map(drop)
    }

    /// Reads what the peer sent into `buf`: `Ok(0)` at the end of the stream. One `recv` when
    /// the socket is ready, straight into `buf` (a 0.3 front hands guest memory here).
    pub(crate) fn poll_receive(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.receive_shut.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(0));
        }
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends from `buf` when the socket can take bytes: how many it took. One `send`.
    pub(crate) fn poll_send(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.send_shut.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Closes the connection both ways because its grant was revoked: the guest's reads end,
    /// its writes fail, the peer sees the end of the stream.
    pub(crate) fn revoke(&self) {
        self.receive_shut.store(true, Ordering::SeqCst);
        self.send_shut.store(true, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Both);
    }

    /// `shutdown(receive)`: the input stream closes and unread data is dropped.
    pub(crate) fn shutdown_receive(&self) {
        self.receive_shut.store(true, Ordering::SeqCst);
        // ENOTCONN here means the peer is gone already: nothing more to receive either way.
        let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Read);
    }

    /// `shutdown(send)`: the output stream closes and a FIN follows the bytes already written,
    /// including any a drain task still holds (it sends the FIN itself when done).
    pub(crate) fn shutdown_send(&self) {
        self.send_shut.store(true, Ordering::SeqCst);
        if !self.draining.load(Ordering::SeqCst) {
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
        }
    }

    fn drained(&self) {
        self.draining.store(false, Ordering::SeqCst);
        if self.send_shut.load(Ordering::SeqCst) {
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
        }
    }
}

fn failed(error: io::Error) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(error))
}

/// The `input-stream` of a TCP connection.
pub struct TcpReader {
    conn: Arc<Connection>,
    meter: Meter,
    closed: bool,
    /// Whether tokio's read readiness was last cleared by a read of ours (a short read or
    /// `EAGAIN`). From then on only new bytes, the end or an error make it readable again, so
    /// the pollable can trust it; before the first such read it may be stale.
    readiness_is_fresh: bool,
}

impl TcpReader {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self {
            meter: conn.meter(),
            conn,
            closed: false,
            readiness_is_fresh: false,
        }
    }

    fn is_closed(&self) -> bool {
        self.closed || self.conn.receive_shut.load(Ordering::Relaxed)
    }

    /// One `recv` into `buf`'s spare capacity. A read that comes back shorter than asked
    /// drained the socket, so tokio is told it is no longer readable (as its own `poll_read`
    /// does): the guest's next `read` answers "nothing yet" without a `recv` that would only
    /// say `EAGAIN`, which is one syscall of the four a request/response costs the server.
    ///
    /// The readiness is cleared through the outer `try_io`, which took its readiness snapshot
    /// before the `recv`: bytes that arrive after the `recv` mark the socket readable again
    /// with a newer snapshot, which this clear does not touch.
    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let asked = buf.capacity();
        let mut got = None;
        let outcome = self.conn.stream.try_io(Interest::READABLE, || {
            let n = self.conn.stream.try_read_buf(buf)?;
            got = Some(n);
            match n {
                1.. if n < asked => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(n),
            }
        });
        let result = match got {
            Some(n) => Ok(n),
            None => outcome,
        };
        self.readiness_is_fresh = match &result {
            Ok(n) => (1..asked).contains(n),
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        };
        result
    }
}

#[wasmtime_wasi_io::async_trait]
impl InputStream for TcpReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        // Skip the allocation when tokio already knows there is nothing to read.
        if poll_now(|cx| self.conn.stream.poll_read_ready(cx)).is_pending() {
            return Ok(Bytes::new());
        }
        // Past the rate the bytes stay in the kernel: the pollable waits for the refill.
        let allowed = self.meter.take(size.min(READ_CHUNK));
        if allowed == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = Vec::with_capacity(allowed);
        let read = self.recv(&mut buf);
        self.meter
            .give_back(allowed - read.as_ref().map_or(0, |n| *n));
        match read {
            Ok(0) => {
                self.closed = true;
                Err(StreamError::Closed)
            }
            // `Bytes` from a `Vec` goes back into a `Vec` without a copy when lowered.
            Ok(_) => Ok(Bytes::from(buf)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(e) => {
                self.closed = true;
                Err(failed(e))
            }
        }
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        loop {
            let bytes = self.read(size)?;
            if !bytes.is_empty() || size == 0 {
                return Ok(bytes);
            }
            self.ready().await;
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for TcpReader {
    async fn ready(&mut self) {
        if self.is_closed() {
            return;
        }
        self.meter.ready().await;
        // Ready when a byte is there to read, or at the end or an error, which the next read
        // reports: the docs promise bytes or the end. Readiness our own read cleared is exact,
        // and waiting on it costs no syscall; otherwise (a fresh connection, or a read that
        // filled its buffer) tokio may say readable with nothing there, so peek a byte.
        if self.readiness_is_fresh {
            let _ = self.conn.stream.readable().await;
        } else {
            let _ = self.conn.stream.peek(&mut [0u8; 1]).await;
        }
    }
}

/// The `output-stream` of a TCP connection.
pub struct TcpWriter {
    conn: Arc<Connection>,
    meter: Meter,
    /// What the last `check-write` allowed and has not been written yet: taken from the
    /// buckets of a rate, and given back when the next `check-write` or the drop finds it.
    permit: usize,
    /// The remainder of a write the kernel could not take at once.
    drain: Option<JoinHandle<io::Result<()>>>,
    /// An error of the drain task, reported by the next call.
    error: Option<io::Error>,
    closed: bool,
}

impl TcpWriter {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self {
            meter: conn.meter(),
            conn,
            permit: 0,
            drain: None,
            error: None,
            closed: false,
        }
    }

    /// Collects a finished drain task; reports a failure once, then the stream is closed.
    fn settle(&mut self) -> StreamResult<()> {
        if let Some(task) = &mut self.drain {
            match poll_now(|cx| std::pin::Pin::new(&mut *task).poll(cx)) {
                Poll::Pending => return Ok(()),
                Poll::Ready(result) => {
                    self.drain = None;
                    if let Err(e) = flatten(result) {
                        self.error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = self.error.take() {
            self.closed = true;
            return Err(failed(e));
        }
        if self.closed || self.conn.send_shut.load(Ordering::Relaxed) {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    fn spawn_drain(&mut self, rest: Bytes) {
        self.conn.draining.store(true, Ordering::SeqCst);
        let conn = self.conn.clone();
        self.drain = Some(tokio::spawn(async move {
            let result = write_all(&conn.stream, rest).await;
            conn.drained();
            result
        }));
    }
}

fn flatten(result: Result<io::Result<()>, tokio::task::JoinError>) -> io::Result<()> {
    result.unwrap_or_else(|e| Err(io::Error::other(e)))
}

async fn write_all(stream: &TcpStream, mut bytes: Bytes) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(&bytes) {
            Ok(n) => bytes.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[wasmtime_wasi_io::async_trait]
impl OutputStream for TcpWriter {
    fn write(&mut self, mut bytes: Bytes) -> StreamResult<()> {
        self.settle()?;
        if bytes.len() > self.permit {
            return Err(StreamError::trap(
                "write exceeds the budget that check-write granted",
            ));
        }
        self.permit -= bytes.len();
        while !bytes.is_empty() {
            match self.conn.stream.try_write(&bytes) {
                Ok(n) => bytes.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.spawn_drain(bytes);
                    self.meter.give_back(std::mem::take(&mut self.permit));
                    return Ok(());
                }
                Err(e) => {
                    self.closed = true;
                    return Err(failed(e));
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Bytes go to the kernel as they are written; a drain task in flight is the only
        // buffer, and `check-write` stays at 0 until it is done.
        self.settle()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.meter.give_back(std::mem::take(&mut self.permit));
        self.settle()?;
        if self.drain.is_some() {
            return Ok(0);
        }
        self.permit = match poll_now(|cx| self.conn.stream.poll_write_ready(cx)) {
            // Past the rate, 0 until the buckets refill (the pollable waits for that).
            Poll::Ready(Ok(())) => self.meter.take(self.conn.write_budget),
            Poll::Ready(Err(e)) => {
                self.closed = true;
                return Err(failed(e));
            }
            Poll::Pending => 0,
        };
        Ok(self.permit)
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.settle()?;
        if let Some(task) = self.drain.take() {
            let result = flatten(task.await);
            result.map_err(|e| {
                self.closed = true;
                failed(e)
            })?;
        }
        // At most 4096 bytes (the WIT's bound): taken whole once the buckets hold a byte.
        self.meter.give_back(std::mem::take(&mut self.permit));
        while !self.meter.take_whole(bytes.len()) {
            self.meter.ready().await;
        }
        write_all(&self.conn.stream, bytes).await.map_err(|e| {
            self.closed = true;
            failed(e)
        })
    }
}

impl Drop for TcpWriter {
    fn drop(&mut self) {
        self.meter.give_back(self.permit);
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for TcpWriter {
    async fn ready(&mut self) {
        if let Some(task) = &mut self.drain {
            let result = flatten(task.await);
            self.drain = None;
            if let Err(e) = result {
                self.error = Some(e);
            }
            return;
        }
        if self.closed || self.error.is_some() || self.conn.send_shut.load(Ordering::Relaxed) {
            return;
        }
        self.meter.ready().await;
        let _ = self.conn.stream.writable().await;
    }
}
