//! The byte streams of a connected TCP socket, read and written straight from the tokio socket.
//!
//! No task or channel sits between the guest and the kernel. A 0.2 guest's `read` is planned
//! here ([`ReadSide::plan_read`]) and lowered by the 0.2 front (`crate::p2::streams`): a small
//! read is one `recv` into the store's scratch buffer, copied into the guest's list; a bulk read
//! is one `ioctl(FIONREAD)` and one `recv` straight into that list. `write` is one `send`. Only when the kernel cannot take all the bytes a guest was permitted to write does the
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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
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
        // A short read leaves tokio's readiness as it is: the next read tries a `recv` first,
        // which finds the peer's next bytes when they came while the guest answered (as they
        // do when the peer runs on the same CPU), where a cleared readiness would cost an
        // `epoll_wait` and a turn of the event loop (6.6 against 4.2 µs of server CPU per
        // 1-byte round trip, both pinned to one CPU).
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// One `recv` by `read`, of up to `asked` bytes. A read that comes back shorter than
    /// asked drained the socket; with `clear_short`, tokio is told it is no longer readable
    /// (as its own `poll_read` does), so the next read waits for the kernel's word rather than
    /// make a `recv` that would only say `EAGAIN`.
    ///
    /// The readiness is cleared through the outer `try_io`, which took its readiness snapshot
    /// before the `recv`: bytes that arrive after the `recv` mark the socket readable again
    /// with a newer snapshot, which this clear does not touch.
    fn recv(
        &self,
        asked: usize,
        clear_short: bool,
        mut read: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut got = None;
        let outcome = self.stream.try_io(Interest::READABLE, || {
            let n = read(&self.stream)?;
            got = Some(n);
            match n {
                1.. if n < asked && clear_short => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(n),
            }
        });
        match got {
            Some(n) => Ok(n),
            None => outcome,
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
    side: Arc<ReadSide>,
    meter: Meter,
}

/// The state of a connection's reading side, shared by its [`TcpReader`] (which alone keeps
/// it alive) and the 0.2 front's `read`, which lowers bytes straight from the socket into guest
/// memory ([`crate::p2::streams`]) and finds the reader by it.
pub(crate) struct ReadSide {
    conn: Arc<Connection>,
    closed: AtomicBool,
    /// Whether tokio's read readiness was last cleared by a read of ours (a short read or
    /// `EAGAIN`). From then on only new bytes, the end or an error make it readable again, so
    /// the pollable can trust it; before the first such read it may be stale.
    readiness_is_fresh: AtomicBool,
    /// Whether the last read filled [`SMALL_READ`]: the peer is sending in bulk, so the next
    /// read asks the kernel how much is queued and takes it straight into guest memory.
    bulk: AtomicBool,
    /// Whether the last read was short and left the readiness set ([`ReadSide::recv`]).
    left_ready: AtomicBool,
    /// How many more short reads clear the readiness because a `recv` after one that left it
    /// set found nothing.
    doubt: AtomicU32,
}

/// Short reads that clear the readiness after a `recv` that tried without it found nothing.
const DOUBTFUL_READS: u32 = 8;

/// The most a read takes through the host's scratch buffer: a read that finds fewer bytes
/// queued (a request, a reply, a ping) costs one `recv`; one that finds more switches its
/// stream to bulk reads straight into guest memory (one `ioctl` and one `recv` each).
pub(crate) const SMALL_READ: usize = 4 * 1024;

/// What a 0.2 `read` does, decided before any guest memory is allocated, since a list handed
/// to the guest must hold exactly the bytes it says.
pub(crate) enum ReadPlan {
    /// Through the stream's own [`InputStream::read`]: a rate is set, so the bytes must be
    /// metered.
    Metered,
    /// Nothing now: an empty list.
    Empty,
    /// The stream is closed or failed.
    Failed(StreamError),
    /// The first `n` bytes of the scratch buffer.
    Small(usize),
    /// `n` bytes the kernel holds for us: allocate them in the guest and [`ReadSide::recv_direct`].
    Direct(usize),
}

impl ReadSide {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.conn.receive_shut.load(Ordering::Relaxed)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// One `recv` ([`Connection::recv`]), noting whether it left the readiness exact.
    ///
    /// After a short read the readiness is left set while doing so pays: the guest's next
    /// `read` then tries a `recv` at once, which finds the peer's next bytes when they came
    /// while the guest answered (as they do when the peer runs on the same CPU), where a
    /// cleared readiness would cost an `epoll_wait` and three more host calls (`subscribe`,
    /// `block`, the pollable's drop). When that `recv` finds nothing, the next
    /// [`DOUBTFUL_READS`] short reads clear the readiness, then it is tried again.
    fn recv(
        &self,
        asked: usize,
        read: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let doubt = self.doubt.load(Ordering::Relaxed);
        let result = self.conn.recv(asked, doubt != 0, read);
        let (fresh, left_ready) = match &result {
            Ok(n) if (1..asked).contains(n) => {
                if doubt != 0 {
                    self.doubt.store(doubt - 1, Ordering::Relaxed);
                }
                (doubt != 0, doubt == 0)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.left_ready.load(Ordering::Relaxed) {
                    self.doubt.store(DOUBTFUL_READS, Ordering::Relaxed);
                }
                (true, false)
            }
            _ => (false, false),
        };
        self.readiness_is_fresh.store(fresh, Ordering::Relaxed);
        self.left_ready.store(left_ready, Ordering::Relaxed);
        result
    }

    /// Plans a 0.2 `read` of up to `size` bytes for a guest with no rate on its grant; a small
    /// read lands in `scratch` (at least [`SMALL_READ`] bytes) at once.
    pub(crate) fn plan_read(&self, size: usize, scratch: &mut [u8]) -> ReadPlan {
        if self.is_closed() {
            return ReadPlan::Failed(StreamError::Closed);
        }
        if size == 0 {
            return ReadPlan::Empty;
        }
        if crate::rate::is_limited(&self.conn.grant) {
            return ReadPlan::Metered;
        }
        if poll_now(|cx| self.conn.stream.poll_read_ready(cx)).is_pending() {
            return ReadPlan::Empty;
        }
        let size = size.min(READ_CHUNK);
        if self.bulk.load(Ordering::Relaxed) {
            // What the kernel holds is ours alone (no one else reads this socket), and it
            // hands queued bytes out before an end or an error: a `recv` of that many gets
            // them all.
            let queued = rustix::io::ioctl_fionread(&self.conn.stream).unwrap_or(0);
            let queued = usize::try_from(queued).unwrap_or(usize::MAX);
            if queued >= SMALL_READ.min(size) {
                return ReadPlan::Direct(queued.min(size));
            }
            self.bulk.store(false, Ordering::Relaxed);
        }
        let want = size.min(SMALL_READ).min(scratch.len());
        let scratch = &mut scratch[..want];
        match self.recv(scratch.len(), |stream| stream.try_read(scratch)) {
            Ok(0) => {
                self.close();
                ReadPlan::Failed(StreamError::Closed)
            }
            Ok(n) => {
                self.bulk
                    .store(n == SMALL_READ && size > SMALL_READ, Ordering::Relaxed);
                ReadPlan::Small(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadPlan::Empty,
            Err(e) => {
                self.close();
                ReadPlan::Failed(failed(e))
            }
        }
    }

    /// The `recv` of a [`ReadPlan::Direct`] into the guest's list: how many bytes it got, fewer
    /// than `buf` holds only if the kernel broke its word (then the stream closes). It asks
    /// for no more than was queued, so it cannot tell whether it drained the socket: the
    /// readiness stays, and the next read finds out.
    pub(crate) fn recv_direct(&self, buf: &mut [u8]) -> usize {
        let asked = buf.len();
        let got = self.recv(asked, |stream| stream.try_read(buf)).unwrap_or(0);
        if got < asked {
            self.close();
        }
        got
    }
}

impl TcpReader {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self {
            meter: conn.meter(),
            side: Arc::new(ReadSide {
                conn,
                closed: AtomicBool::new(false),
                readiness_is_fresh: AtomicBool::new(false),
                bulk: AtomicBool::new(false),
                left_ready: AtomicBool::new(false),
                doubt: AtomicU32::new(0),
            }),
        }
    }

    /// The reading side, for the 0.2 front to find this reader by.
    pub(crate) fn side(&self) -> &Arc<ReadSide> {
        &self.side
    }
}

#[wasmtime_wasi_io::async_trait]
impl InputStream for TcpReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let side = &self.side;
        if side.is_closed() {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        // Skip the allocation when tokio already knows there is nothing to read.
        if poll_now(|cx| side.conn.stream.poll_read_ready(cx)).is_pending() {
            return Ok(Bytes::new());
        }
        // Past the rate the bytes stay in the kernel: the pollable waits for the refill.
        let allowed = self.meter.take(size.min(READ_CHUNK));
        if allowed == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = Vec::with_capacity(allowed);
        let read = side.recv(allowed, |stream| stream.try_read_buf(&mut buf));
        self.meter
            .give_back(allowed - read.as_ref().map_or(0, |n| *n));
        match read {
            Ok(0) => {
                side.close();
                Err(StreamError::Closed)
            }
            // `Bytes` from a `Vec` goes back into a `Vec` without a copy when lowered.
            Ok(_) => Ok(Bytes::from(buf)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(e) => {
                side.close();
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
        if self.side.is_closed() {
            return;
        }
        self.meter.ready().await;
        // Ready when a byte is there to read, or at the end or an error, which the next read
        // reports: the docs promise bytes or the end. Readiness our own read cleared is exact,
        // and waiting on it costs no syscall; otherwise (a fresh connection, or a read that
        // filled its buffer) tokio may say readable with nothing there, so peek a byte.
        let stream = &self.side.conn.stream;
        if self.side.readiness_is_fresh.load(Ordering::Relaxed) {
            let _ = stream.readable().await;
        } else {
            let _ = stream.peek(&mut [0u8; 1]).await;
        }
    }
}

/// The `output-stream` of a TCP connection.
pub struct TcpWriter {
    side: Arc<WriteSide>,
    meter: Meter,
}

/// The state of a connection's writing side, shared by its [`TcpWriter`] (which alone keeps it
/// alive) and the 0.2 front's `write`, which sends a guest's list from guest memory
/// ([`crate::p2::streams`]) and finds the writer by it.
pub(crate) struct WriteSide {
    conn: Arc<Connection>,
    state: Mutex<WriteState>,
}

struct WriteState {
    /// What the last `check-write` allowed and has not been written yet: taken from the
    /// buckets of a rate, and given back when the next `check-write` or the drop finds it.
    permit: usize,
    /// The remainder of a write the kernel could not take at once.
    drain: Option<JoinHandle<io::Result<()>>>,
    /// An error of the drain task, reported by the next call.
    error: Option<io::Error>,
    closed: bool,
}

impl WriteState {
    /// Collects a finished drain task; reports a failure once, then the stream is closed.
    fn settle(&mut self, conn: &Connection) -> StreamResult<()> {
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
        if self.closed || conn.send_shut.load(Ordering::Relaxed) {
            return Err(StreamError::Closed);
        }
        Ok(())
    }
}

impl WriteSide {
    /// The calls of one store come one at a time: the lock is never contended.
    fn lock(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a 0.2 `write` may send from guest memory here: when no rate is set, so there
    /// is no meter to give an unsent permit back to.
    pub(crate) fn sends_direct(&self) -> bool {
        !crate::rate::is_limited(&self.conn.grant)
    }

    /// `write`: sends `bytes` (within what `check-write` permitted) as far as the kernel takes
    /// them at once, and leaves the rest, made owned by `rest`, to a drain task. What that
    /// task holds is given back to `meter`.
    pub(crate) fn write(
        &self,
        bytes: &[u8],
        rest: impl FnOnce(usize) -> Bytes,
        meter: Option<&Meter>,
    ) -> StreamResult<()> {
        let mut state = self.lock();
        state.settle(&self.conn)?;
        if bytes.len() > state.permit {
            return Err(StreamError::trap(
                "write exceeds the budget that check-write granted",
            ));
        }
        state.permit -= bytes.len();
        let mut sent = 0;
        while sent < bytes.len() {
            match self.conn.stream.try_write(&bytes[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conn.draining.store(true, Ordering::SeqCst);
                    let conn = self.conn.clone();
                    let rest = rest(sent);
                    state.drain = Some(tokio::spawn(async move {
                        let result = write_all(&conn.stream, rest).await;
                        conn.drained();
                        result
                    }));
                    let permit = std::mem::take(&mut state.permit);
                    if let Some(meter) = meter {
                        meter.give_back(permit);
                    }
                    return Ok(());
                }
                Err(e) => {
                    state.closed = true;
                    return Err(failed(e));
                }
            }
        }
        Ok(())
    }
}

impl TcpWriter {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self {
            meter: conn.meter(),
            side: Arc::new(WriteSide {
                conn,
                state: Mutex::new(WriteState {
                    permit: 0,
                    drain: None,
                    error: None,
                    closed: false,
                }),
            }),
        }
    }

    /// The writing side, for the 0.2 front to find this writer by.
    pub(crate) fn side(&self) -> &Arc<WriteSide> {
        &self.side
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
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let owned = bytes.clone();
        let rest = move |sent| owned.slice(sent..);
        self.side.write(&bytes, rest, Some(&self.meter))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Bytes go to the kernel as they are written; a drain task in flight is the only
        // buffer, and `check-write` stays at 0 until it is done.
        self.side.lock().settle(&self.side.conn)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let conn = &self.side.conn;
        let mut state = self.side.lock();
        self.meter.give_back(std::mem::take(&mut state.permit));
        state.settle(conn)?;
        if state.drain.is_some() {
            return Ok(0);
        }
        state.permit = match poll_now(|cx| conn.stream.poll_write_ready(cx)) {
            // Past the rate, 0 until the buckets refill (the pollable waits for that).
            Poll::Ready(Ok(())) => self.meter.take(conn.write_budget),
            Poll::Ready(Err(e)) => {
                state.closed = true;
                return Err(failed(e));
            }
            Poll::Pending => 0,
        };
        Ok(state.permit)
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        let side = self.side.clone();
        let task = {
            let mut state = side.lock();
            state.settle(&side.conn)?;
            state.drain.take()
        };
        let fail = |e| {
            side.lock().closed = true;
            failed(e)
        };
        if let Some(task) = task {
            flatten(task.await).map_err(fail)?;
        }
        // At most 4096 bytes (the WIT's bound): taken whole once the buckets hold a byte.
        let permit = std::mem::take(&mut side.lock().permit);
        self.meter.give_back(permit);
        while !self.meter.take_whole(bytes.len()) {
            self.meter.ready().await;
        }
        write_all(&side.conn.stream, bytes).await.map_err(fail)
    }
}

impl Drop for TcpWriter {
    fn drop(&mut self) {
        self.meter.give_back(self.side.lock().permit);
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for TcpWriter {
    async fn ready(&mut self) {
        let side = &self.side;
        let drained = std::future::poll_fn(|cx| {
            let mut state = side.lock();
            let Some(task) = &mut state.drain else {
                return Poll::Ready(false);
            };
            let result = std::task::ready!(std::pin::Pin::new(task).poll(cx));
            state.drain = None;
            if let Err(e) = flatten(result) {
                state.error = Some(e);
            }
            Poll::Ready(true)
        })
        .await;
        if drained {
            return;
        }
        {
            let state = side.lock();
            if state.closed || state.error.is_some() || side.conn.send_shut.load(Ordering::Relaxed)
            {
                return;
            }
        }
        self.meter.ready().await;
        let _ = side.conn.stream.writable().await;
    }
}
