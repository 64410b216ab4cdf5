//! `wasi:sockets/types@0.3.0`, `tcp-socket`: the core's [`TcpSocket`] behind 0.3's calls.
//!
//! `connect` waits on the core's handshake; `listen` hands out a stream of accepted sockets
//! (each peer checked as under 0.2); `send` and `receive` move bytes between the tokio socket
//! and guest memory directly, one `send` or `recv` per stream operation, with no task or
//! channel between them and no buffer of ours. Under a `bytes-per-second` rate each
//! operation moves no more than the grant's buckets hold, and waits (`Pending`, woken by a
//! timer the stream keeps) while they are empty.

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
use crate::grant::Grant;
use crate::p3::bindings::sockets::types::{
    Duration, ErrorCode, HostTcpSocket, HostTcpSocketWithStore, IpAddressFamily, IpSocketAddress,
};
use crate::p3::error::{SocketError, SocketResult};
use crate::rate::Meter;
use crate::socket::ErrorCode as Core;
use crate::socket::stream::Connection;
use crate::socket::tcp::{Acceptor, TcpSocket};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Accessor, Destination, FutureReader, Resource, Source, StreamConsumer, StreamProducer,
    StreamReader, StreamResult,
};

/// Most bytes one `receive` stream operation reads, when the guest offers more.
const RECEIVE_CHUNK: usize = 256 * 1024;

impl CapnetCtxView<'_> {
    fn tcp_p3(&mut self, socket: &Resource<TcpSocket>) -> SocketResult<&mut TcpSocket> {
        Ok(self.table.get_mut(socket)?)
    }

    /// `create` through the app's import or a library's: the socket keeps `grant` for every
    /// later check. Only the app is handed the runtime's pre-opened listeners.
    pub(super) fn create_tcp(
        &mut self,
        grant: &Grant,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<TcpSocket>> {
        let preopened = grant.is_root() && self.ctx.preopens.any();
        let socket = TcpSocket::create(grant, family.into(), preopened, "tcp-socket.create")?;
        Ok(self.table.push(socket)?)
    }
}

impl HostTcpSocket for CapnetCtxView<'_> {
    fn create(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let grant = self.ctx.root.clone();
        self.create_tcp(&grant, family)
    }

    fn bind(&mut self, socket: Resource<TcpSocket>, local: IpSocketAddress) -> SocketResult<()> {
        let socket = self.table.get_mut(&socket)?;
        let grant = socket.created_under().unwrap_or(&self.ctx.root).clone();
        socket.start_bind(&grant, local.into(), &mut self.ctx.preopens)?;
        Ok(socket.finish_bind()?)
    }

    fn get_local_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.tcp_p3(&socket)?.local_address()?.into())
    }

    fn get_remote_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.tcp_p3(&socket)?.remote_address()?.into())
    }

    fn get_is_listening(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&socket)?.is_listening())
    }

    fn get_address_family(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.family().into())
    }

    fn set_listen_backlog_size(&mut self, socket: Resource<TcpSocket>, v: u64) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_listen_backlog_size(v)?)
    }

    fn get_keep_alive_enabled(&mut self, socket: Resource<TcpSocket>) -> SocketResult<bool> {
        Ok(self.tcp_p3(&socket)?.keep_alive_enabled()?)
    }

    fn set_keep_alive_enabled(&mut self, socket: Resource<TcpSocket>, v: bool) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_keep_alive_enabled(v)?)
    }

    fn get_keep_alive_idle_time(&mut self, socket: Resource<TcpSocket>) -> SocketResult<Duration> {
        Ok(self.tcp_p3(&socket)?.keep_alive_idle_time()?)
    }

    fn set_keep_alive_idle_time(
        &mut self,
        socket: Resource<TcpSocket>,
        v: Duration,
    ) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_keep_alive_idle_time(v)?)
    }

    fn get_keep_alive_interval(&mut self, socket: Resource<TcpSocket>) -> SocketResult<Duration> {
        Ok(self.tcp_p3(&socket)?.keep_alive_interval()?)
    }

    fn set_keep_alive_interval(
        &mut self,
        socket: Resource<TcpSocket>,
        v: Duration,
    ) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_keep_alive_interval(v)?)
    }

    fn get_keep_alive_count(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u32> {
        Ok(self.tcp_p3(&socket)?.keep_alive_count()?)
    }

    fn set_keep_alive_count(&mut self, socket: Resource<TcpSocket>, v: u32) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_keep_alive_count(v)?)
    }

    fn get_hop_limit(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u8> {
        Ok(self.tcp_p3(&socket)?.hop_limit()?)
    }

    fn set_hop_limit(&mut self, socket: Resource<TcpSocket>, v: u8) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_hop_limit(v)?)
    }

    fn get_receive_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.tcp_p3(&socket)?.receive_buffer_size()?)
    }

    fn set_receive_buffer_size(&mut self, socket: Resource<TcpSocket>, v: u64) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_receive_buffer_size(v)?)
    }

    fn get_send_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.tcp_p3(&socket)?.send_buffer_size()?)
    }

    fn set_send_buffer_size(&mut self, socket: Resource<TcpSocket>, v: u64) -> SocketResult<()> {
        Ok(self.tcp_p3(&socket)?.set_send_buffer_size(v)?)
    }

    fn drop(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl<T: CapnetView + 'static> HostTcpSocketWithStore<T> for Capnet {
    async fn connect(
        store: &Accessor<T, Self>,
        socket: Resource<TcpSocket>,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        let remote = SocketAddr::from(remote);
        store.with(|mut access| {
            let view = access.get();
            let socket = view.table.get_mut(&socket)?;
            let grant = socket.created_under().unwrap_or(&view.ctx.root).clone();
            socket.start_connect(&grant, remote)?;
            SocketResult::Ok(())
        })?;
        std::future::poll_fn(|cx| {
            store.with(|mut access| -> Poll<SocketResult<()>> {
                let view = access.get();
                let socket = view.table.get_mut(&socket)?;
                socket
                    .poll_connected(cx)
                    .map(|connected| connected.map(drop).map_err(SocketError::from))
            })
        })
        .await
    }

    fn listen(
        mut store: Access<'_, T, Self>,
        socket: Resource<TcpSocket>,
    ) -> SocketResult<StreamReader<Resource<TcpSocket>>> {
        let view = store.get();
        let listening = view.table.get_mut(&socket)?;
        let grant = listening.created_under().unwrap_or(&view.ctx.root).clone();
        listening.listen_binding(&grant)?;
        listening.finish_listen()?;
        let acceptor = listening.acceptor()?;
        StreamReader::new(&mut store, Accepted(acceptor)).map_err(SocketError::trap)
    }

    fn send(
        mut store: Access<'_, T, Self>,
        socket: Resource<TcpSocket>,
        mut data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        let conn = store
            .get()
            .table
            .get(&socket)?
            .connection()
            .and_then(|conn| conn.take_send().then_some(conn).ok_or(Core::InvalidState));
        match conn {
            Ok(conn) => {
                let (done, result) = oneshot::channel();
                let meter = conn.meter();
                let side = Side::new(conn, done, Connection::shutdown_send);
                data.pipe(&mut store, Sender(side, meter))?;
                FutureReader::new(&mut store, result)
            }
            Err(code) => {
                data.close(&mut store)?;
                FutureReader::new(&mut store, async move {
                    Ok::<_, wasmtime::Error>(Err(ErrorCode::from(code)))
                })
            }
        }
    }

    fn receive(
        mut store: Access<'_, T, Self>,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Result<(), ErrorCode>>)> {
        let conn = store
            .get()
            .table
            .get(&socket)?
            .connection()
            .and_then(|conn| {
                conn.take_receive()
                    .then_some(conn)
                    .ok_or(Core::InvalidState)
            });
        match conn {
            Ok(conn) => {
                let (done, result) = oneshot::channel();
                let meter = conn.meter();
                let side = Side::new(conn, done, Connection::shutdown_receive);
                let bytes = StreamReader::new(&mut store, Receiver(side, meter))?;
                Ok((bytes, FutureReader::new(&mut store, result)?))
            }
            Err(code) => Ok((
                StreamReader::new(&mut store, std::iter::empty())?,
                FutureReader::new(&mut store, async move {
                    Ok::<_, wasmtime::Error>(Err(ErrorCode::from(code)))
                })?,
            )),
        }
    }
}

/// The stream of a listening socket: each connection from an allowed peer, as a socket.
struct Accepted(Acceptor);

impl<D: CapnetView + 'static> StreamProducer<D> for Accepted {
    type Item = Resource<TcpSocket>;
    type Buffer = Option<Resource<TcpSocket>>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut dst: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        match self.0.poll_accept(cx) {
            Poll::Ready(Ok(socket)) => {
                let socket = store.data_mut().capnet().table.push(socket)?;
                dst.set_buffer(Some(socket));
                Poll::Ready(Ok(StreamResult::Completed))
            }
            // A listener that fails (or whose grant was revoked) ends its stream.
            Poll::Ready(Err(_)) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One side of a connection lent to a 0.3 stream, and where its outcome goes (the future
/// `send` or `receive` returned). Ending it, or dropping it when the guest lets go of the
/// stream, shuts that side down and settles the future.
struct Side(Option<Lent>);

struct Lent {
    conn: Arc<Connection>,
    done: oneshot::Sender<Result<(), ErrorCode>>,
    shutdown: fn(&Connection),
}

impl Side {
    fn new(
        conn: Arc<Connection>,
        done: oneshot::Sender<Result<(), ErrorCode>>,
        shutdown: fn(&Connection),
    ) -> Self {
        Side(Some(Lent {
            conn,
            done,
            shutdown,
        }))
    }

    fn conn(&self) -> Option<Arc<Connection>> {
        self.0.as_ref().map(|lent| lent.conn.clone())
    }

    fn end(&mut self, result: Result<(), ErrorCode>) {
        if let Some(lent) = self.0.take() {
            (lent.shutdown)(&lent.conn);
            let _ = lent.done.send(result);
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.end(Ok(()));
    }
}

/// Reads a connection into the guest's `stream<u8>`; at the end, or when the guest drops the
/// stream, the receiving side shuts down.
struct Receiver(Side, Meter);

impl<D: 'static> StreamProducer<D> for Receiver {
    type Item = u8;
    type Buffer = bytes::BytesMut;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        dst: Destination<'a, u8, bytes::BytesMut>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let Some(conn) = self.0.conn() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        // A zero-length read asks whether bytes are waiting.
        if dst.remaining(&mut store) == Some(0) {
            return match conn.poll_receive_ready(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(StreamResult::Completed)),
                Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => Poll::Pending,
            };
        }
        // Past the rate the bytes stay in the kernel until the buckets refill. What the read
        // may move is taken before it and what it did not move given back after.
        let want = dst
            .remaining(&mut store)
            .map_or(RECEIVE_CHUNK, |n| n.min(RECEIVE_CHUNK));
        let allowed = match self.1.poll_take(cx, want) {
            Poll::Ready(n) => n,
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        };
        let mut dst = dst.as_direct(store, RECEIVE_CHUNK);
        let buf = dst.remaining();
        let len = buf.len().min(allowed);
        let read = conn.poll_receive(cx, &mut buf[..len]);
        let moved = match &read {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.1.give_back(allowed - moved);
        match read {
            Poll::Ready(Ok(0)) => {
                self.0.end(Ok(()));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Poll::Ready(Ok(n)) => {
                dst.mark_written(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Ready(Err(e)) => {
                self.0.end(Err(Core::from(e).into()));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Writes the guest's `stream<u8>` to a connection; when the guest ends the stream, a FIN
/// follows the bytes sent.
struct Sender(Side, Meter);

impl<D: 'static> StreamConsumer<D> for Sender {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        src: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let Some(conn) = self.0.conn() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        let mut src = src.as_direct(store);
        if src.remaining().is_empty() {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let allowed = match self.1.poll_take(cx, src.remaining().len()) {
            Poll::Ready(n) => n,
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        };
        let sent = conn.poll_send(cx, &src.remaining()[..allowed]);
        let moved = match &sent {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.1.give_back(allowed - moved);
        match sent {
            Poll::Ready(Ok(n)) => {
                src.mark_read(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Ready(Err(e)) => {
                self.0.end(Err(Core::from(e).into()));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}
