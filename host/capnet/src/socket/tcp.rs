//! The TCP socket state machine, over tokio, with the capability checks that guard it.
//!
//! States follow the WIT docs: unbound, bind-in-progress, bound, listen-in-progress, listening,
//! connect-in-progress, connected and closed. Every state owns the OS socket, so options can be
//! read and set in any of them. The policy is asked before each system call that reaches the
//! network: bind, listen, connect and, per peer, accept.

use super::addr::{self, Family};
use super::options;
use super::poll_now;
use super::stream::{Connection, Holds, TcpReader, TcpWriter};
use crate::ctx::Preopens;
use crate::grant::{Grant, Registration};
use crate::limit::Held;
use crate::revoke::Closable;
use crate::socket::ErrorCode;
use capnet_policy::{Limit, Use};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use wasmtime_wasi_io::poll::Pollable;

/// The uses a TCP socket can be put to.
const USES: [Use; 4] = [
    Use::TcpBind,
    Use::TcpListen,
    Use::TcpAccept,
    Use::TcpConnect,
];

/// The backlog used until the guest asks for another (Linux's `SOMAXCONN`).
const DEFAULT_BACKLOG: u32 = 4096;

/// A `wasi:sockets/tcp.tcp-socket`.
pub struct TcpSocket {
    family: Family,
    state: State,
    /// The authority the socket was bound or connected under; later checks use it.
    grant: Option<Grant>,
    /// The authority that created the socket, or accepted it: the one a call that names no
    /// `network` (all of 0.3's) is decided by.
    created_under: Option<Grant>,
    /// Set when a pre-opened listener backs the socket: the address the guest knows it by.
    preopened: Option<SocketAddr>,
    /// The address the guest asked to bind. `tcp-listen` is decided on it, not on the port the
    /// kernel picked for a port-0 bind, so a right for `127.0.0.1:0` covers that listener.
    requested: Option<SocketAddr>,
    backlog: u32,
    /// Keeps a listener the guest opened findable by a revocation while it listens.
    registration: Option<Registration>,
    /// The socket's count against the instance's `sockets` limit, shared with its connection.
    held: Option<Arc<Held>>,
    /// The count against `connections` a connect in progress took.
    connecting: Option<Held>,
}

enum State {
    Unbound(Socket),
    BindStarted(Bound),
    Bound(Bound),
    ListenStarted(Arc<TcpListener>),
    Listening {
        listener: Arc<TcpListener>,
        /// A connection taken from the kernel by the pollable, already checked by the policy.
        pending: Option<io::Result<(TcpStream, SocketAddr)>>,
    },
    Connecting(TcpStream),
    Connected(Arc<Connection>),
    Closed,
}

enum Bound {
    Fresh(Socket),
    /// A listener the runtime opened: bound and listening before the guest ran.
    Preopened(TcpListener),
}

/// A newly connected socket and its streams.
pub type Connected = (TcpReader, TcpWriter);

impl TcpSocket {
    /// `create-tcp-socket` (0.2) or `tcp-socket.create` (0.3, `call` names which, for the log):
    /// refused with `access-denied` when `grant` gives no TCP use at all and the runtime handed
    /// the instance no listener (`preopened`), as wasmtime-wasi refuses a component that may not
    /// use TCP. Otherwise a fresh socket, which reaches nothing until it is bound or connected.
    pub fn create(
        grant: &Grant,
        family: Family,
        preopened: bool,
        call: &str,
    ) -> Result<Self, ErrorCode> {
        grant.check_kind(call, &USES, preopened)?;
        let held = grant.hold(Limit::Sockets, call)?;
        let mut socket = Self::new(family)?;
        socket.held = Some(Arc::new(held));
        socket.created_under = Some(grant.clone());
        Ok(socket)
    }

    /// A fresh unbound socket; IPv6 sockets are IPv6-only.
    pub fn new(family: Family) -> io::Result<Self> {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
        if family == Family::V6 {
            socket.set_only_v6(true)?;
        }
        Ok(Self::with_state(family, State::Unbound(socket), None))
    }

    fn with_state(family: Family, state: State, grant: Option<Grant>) -> Self {
        Self {
            family,
            state,
            created_under: grant.clone(),
            grant,
            preopened: None,
            requested: None,
            backlog: DEFAULT_BACKLOG,
            registration: None,
            held: None,
            connecting: None,
        }
    }

    /// The grant the socket was created or accepted under, if it was.
    pub(crate) fn created_under(&self) -> Option<&Grant> {
        self.created_under.as_ref()
    }

    /// A listening socket over a pre-opened listener (`capnet:sockets/preopens`).
    pub(crate) fn preopened(
        listener: std::net::TcpListener,
        guest_addr: SocketAddr,
        grant: Grant,
    ) -> io::Result<Self> {
        let listener = Arc::new(TcpListener::from_std(listener)?);
        let state = State::Listening {
            listener,
            pending: None,
        };
        let mut socket = Self::with_state(Family::of(&guest_addr), state, Some(grant));
        socket.preopened = Some(guest_addr);
        Ok(socket)
    }

    /// `start-bind`. A pre-opened listener registered for `local` is adopted without a check
    /// when `grant` is the instance's own (the runtime opened it for the app, not for a library
    /// or a network the app narrowed); any other address needs the `tcp-bind` right.
    pub fn start_bind(
        &mut self,
        grant: &Grant,
        local: SocketAddr,
        preopens: &mut Preopens,
    ) -> Result<(), ErrorCode> {
        let State::Unbound(socket) = &self.state else {
            return Err(match self.state {
                State::BindStarted(_) => ErrorCode::ConcurrencyConflict,
                _ => ErrorCode::InvalidState,
            });
        };
        addr::validate_local(self.family, &local)?;
        if let Some(listener) = preopens.claim_for(grant, local) {
            let listener = TcpListener::from_std(listener)?;
            tracing::debug!(target: "capnet::socket", addr = %local, "bind adopts a pre-opened listener");
            self.state = State::BindStarted(Bound::Preopened(listener));
            self.preopened = Some(local);
            self.grant = Some(grant.clone());
            return Ok(());
        }
        grant.check(Use::TcpBind, local)?;
        // A recently closed socket in TIME_WAIT must not block a rebind (WIT implementors
        // note). Linux honours SO_REUSEADDR only when the lingering socket had it too, so every
        // bind sets it, port 0 included: the port a server got from the system is rebindable.
        socket.set_reuse_address(true)?;
        socket.bind(&local.into())?;
        let State::Unbound(socket) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("state checked above")
        };
        self.state = State::BindStarted(Bound::Fresh(socket));
        self.grant = Some(grant.clone());
        self.requested = Some(local);
        Ok(())
    }

    /// `finish-bind`.
    pub fn finish_bind(&mut self) -> Result<(), ErrorCode> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::BindStarted(bound) => {
                self.state = State::Bound(bound);
                Ok(())
            }
            other => {
                self.state = other;
                Err(ErrorCode::NotInProgress)
            }
        }
    }

    /// `start-connect`, with the `tcp-connect` right for `remote`.
    ///
    /// An unbound socket is bound implicitly by the kernel to an ephemeral port on the
    /// unspecified address. That bind serves this one connection only, so the connect right
    /// covers it and no `tcp-bind` right is asked (wasmtime asks for one; a user who allows a
    /// connect expects the connect to work).
    pub fn start_connect(&mut self, grant: &Grant, remote: SocketAddr) -> Result<(), ErrorCode> {
        match &self.state {
            State::Unbound(_) | State::Bound(Bound::Fresh(_)) => {}
            State::BindStarted(_) | State::ListenStarted(_) | State::Connecting(_) => {
                return Err(ErrorCode::ConcurrencyConflict);
            }
            _ => return Err(ErrorCode::InvalidState),
        }
        addr::validate_remote(self.family, &remote)?;
        if let Some(bound_with) = &self.grant
            && !bound_with.same_authority(grant)
        {
            return Err(grant.refuse(
                "tcp-connect",
                remote,
                ErrorCode::InvalidArgument,
                "the socket was bound through another network",
            ));
        }
        grant.check(Use::TcpConnect, remote)?;
        let connecting = grant.hold(Limit::Connections, "tcp-connect")?;
        let socket = match std::mem::replace(&mut self.state, State::Closed) {
            State::Unbound(s) | State::Bound(Bound::Fresh(s)) => s,
            _ => unreachable!("state checked above"),
        };
        match socket.connect(&remote.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(crate::socket::error::error_code_of(&e)),
        }
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
        self.state = State::Connecting(stream);
        self.grant = Some(grant.clone());
        self.connecting = Some(connecting);
        Ok(())
    }

    /// `finish-connect`: the streams once the handshake is done, `would-block` before.
    pub fn finish_connect(&mut self) -> Result<Connected, ErrorCode> {
        match poll_now(|cx| self.poll_connected(cx)) {
            Poll::Pending => Err(ErrorCode::WouldBlock),
            Poll::Ready(conn) => {
                let conn = conn?;
                Ok((TcpReader::new(conn.clone()), TcpWriter::new(conn)))
            }
        }
    }

    /// Waits for the handshake `start-connect` began: the connection, or why it failed (the
    /// socket is then closed). `not-in-progress` when no connect was started.
    pub fn poll_connected(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<Arc<Connection>, ErrorCode>> {
        let State::Connecting(stream) = &self.state else {
            return Poll::Ready(Err(ErrorCode::NotInProgress));
        };
        let result = std::task::ready!(stream.poll_write_ready(cx));
        let outcome = result.and_then(|()| match stream.take_error()? {
            Some(e) => Err(e),
            None => stream.peer_addr().map(drop),
        });
        if let Err(e) = outcome {
            self.state = State::Closed;
            return Poll::Ready(Err(crate::socket::error::error_code_of(&e)));
        }
        let State::Connecting(stream) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("state checked above")
        };
        // A grant revoked while the handshake ran takes the connection back at once.
        let Some(grant) = self.grant.as_ref() else {
            return Poll::Ready(Err(ErrorCode::InvalidState));
        };
        if grant.is_revoked() {
            return Poll::Ready(Err(ErrorCode::AccessDenied));
        }
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => return Poll::Ready(Err(e.into())),
        };
        let held = Holds {
            socket: self.held.clone(),
            connection: self.connecting.take(),
        };
        let conn = Connection::new(stream, grant, Use::TcpConnect, peer, held);
        self.state = State::Connected(conn.clone());
        Poll::Ready(Ok(conn))
    }

    /// The connection of a connected socket, for a front end that moves its bytes itself.
    pub fn connection(&self) -> Result<Arc<Connection>, ErrorCode> {
        match &self.state {
            State::Connected(conn) => Ok(conn.clone()),
            _ => Err(ErrorCode::InvalidState),
        }
    }

    /// What accepts the connections of a listening socket, away from the socket itself (a 0.3
    /// listen stream): the same per-peer checks as `accept`.
    pub fn acceptor(&self) -> Result<Acceptor, ErrorCode> {
        let State::Listening { listener, .. } = &self.state else {
            return Err(ErrorCode::InvalidState);
        };
        Ok(Acceptor {
            listener: listener.clone(),
            grant: self.grant.clone().ok_or(ErrorCode::InvalidState)?,
            preopened: self.preopened.is_some(),
            family: self.family,
            backlog: self.backlog,
            waiting: None,
        })
    }

    /// `start-listen`, with the `tcp-listen` right for the bound address (none for pre-opens).
    pub fn start_listen(&mut self) -> Result<(), ErrorCode> {
        self.listen_checked(true)
    }

    /// 0.3's `listen`, which binds an unbound socket first: to the unspecified address of its
    /// family and an ephemeral port, as the 0.3 WIT docs ask. Both rights are asked for that
    /// address before the bind, `tcp-listen` then `tcp-bind`, so a refused listen leaves the
    /// socket unbound. A listener on every interface is what the rules must name
    /// (`listen 0.0.0.0:0`): a right for loopback, or to connect, never covers it.
    pub fn listen_binding(&mut self, grant: &Grant) -> Result<(), ErrorCode> {
        if !matches!(self.state, State::Unbound(_)) {
            return self.start_listen();
        }
        let any = match self.family {
            Family::V4 => SocketAddr::from(([0, 0, 0, 0], 0)),
            Family::V6 => SocketAddr::from(([0u16; 8], 0)),
        };
        grant.check(Use::TcpListen, any)?;
        // No pre-open is ever adopted here: the guest named no address.
        self.start_bind(grant, any, &mut Preopens::default())?;
        self.finish_bind()?;
        self.listen_checked(false)
    }

    /// `start-listen`; `check` asks for the `tcp-listen` right (a caller that asked already
    /// passes false).
    fn listen_checked(&mut self, check: bool) -> Result<(), ErrorCode> {
        match &self.state {
            State::Bound(Bound::Fresh(socket)) => {
                let (Some(grant), Some(local)) = (&self.grant, self.requested) else {
                    return Err(ErrorCode::InvalidState);
                };
                if check {
                    grant.check(Use::TcpListen, local)?;
                }
                socket.listen(backlog_arg(self.backlog))?;
            }
            State::Bound(Bound::Preopened(_)) => {}
            State::BindStarted(_) | State::ListenStarted(_) => {
                return Err(ErrorCode::ConcurrencyConflict);
            }
            _ => return Err(ErrorCode::InvalidState),
        }
        let listener = match std::mem::replace(&mut self.state, State::Closed) {
            State::Bound(Bound::Fresh(socket)) => {
                let listener =
                    Arc::new(TcpListener::from_std(std::net::TcpListener::from(socket))?);
                if let (Some(grant), Some(local)) = (&self.grant, self.requested) {
                    let what = Closable::Listener(Arc::downgrade(&listener));
                    self.registration = Some(grant.register(Use::TcpListen, local, what));
                }
                listener
            }
            State::Bound(Bound::Preopened(listener)) => Arc::new(listener),
            _ => unreachable!("state checked above"),
        };
        self.state = State::ListenStarted(listener);
        Ok(())
    }

    /// `finish-listen`.
    pub fn finish_listen(&mut self) -> Result<(), ErrorCode> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ListenStarted(listener) => {
                self.state = State::Listening {
                    listener,
                    pending: None,
                };
                Ok(())
            }
            other => {
                self.state = other;
                Err(ErrorCode::NotInProgress)
            }
        }
    }

    /// `accept`: the next connection from a peer the policy allows. Refused peers are closed
    /// and logged here; the guest never sees them.
    pub fn accept(&mut self) -> Result<(TcpSocket, TcpReader, TcpWriter), ErrorCode> {
        let State::Listening { listener, pending } = &mut self.state else {
            return Err(ErrorCode::InvalidState);
        };
        let grant = self.grant.as_ref().ok_or(ErrorCode::InvalidState)?;
        if grant.is_revoked() {
            return Err(ErrorCode::AccessDenied);
        }
        let (stream, peer) = loop {
            // The pollable's catch was checked when it was taken.
            if let Some(next) = pending.take() {
                break next?;
            }
            let Poll::Ready(next) = poll_now(|cx| listener.poll_accept(cx)) else {
                return Err(ErrorCode::WouldBlock);
            };
            let (stream, peer) = next?;
            if accept_allowed(grant, self.preopened.is_some(), peer) {
                break (stream, peer);
            }
        };
        // Past a limit the connection waits here, as it would in the kernel's queue.
        let held = match hold_accepted(grant) {
            Ok(held) => held,
            Err(code) => {
                *pending = Some(Ok((stream, peer)));
                return Err(code);
            }
        };
        let socket = accepted(stream, peer, grant, self.family, self.backlog, held);
        let conn = socket.connection()?;
        Ok((socket, TcpReader::new(conn.clone()), TcpWriter::new(conn)))
    }

    /// `local-address`; a pre-opened listener reports the address the guest knows it by.
    pub fn local_address(&self) -> Result<SocketAddr, ErrorCode> {
        match &self.state {
            State::Unbound(_) | State::BindStarted(_) | State::Closed => {
                Err(ErrorCode::InvalidState)
            }
            _ => match self.preopened {
                Some(addr) => Ok(addr),
                None => local_addr_of(&self.sock_ref()?),
            },
        }
    }

    /// `remote-address`.
    pub fn remote_address(&self) -> Result<SocketAddr, ErrorCode> {
        match &self.state {
            State::Connected(conn) => Ok(conn.stream.peer_addr()?),
            _ => Err(ErrorCode::InvalidState),
        }
    }

    /// `is-listening`.
    pub fn is_listening(&self) -> bool {
        matches!(self.state, State::Listening { .. })
    }

    /// `address-family`.
    pub fn family(&self) -> Family {
        self.family
    }

    /// `set-listen-backlog-size`: stored before listen, applied at once while listening.
    pub fn set_listen_backlog_size(&mut self, value: u64) -> Result<(), ErrorCode> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument);
        }
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        match &self.state {
            State::Connecting(_) | State::Connected(_) | State::Closed => {
                Err(ErrorCode::InvalidState)
            }
            State::ListenStarted(l) | State::Listening { listener: l, .. } => {
                SockRef::from(l).listen(backlog_arg(value))?;
                self.backlog = value;
                Ok(())
            }
            _ => {
                self.backlog = value;
                Ok(())
            }
        }
    }

    /// `keep-alive-enabled`.
    pub fn keep_alive_enabled(&self) -> Result<bool, ErrorCode> {
        Ok(self.sock_ref()?.keepalive()?)
    }

    /// `set-keep-alive-enabled`.
    pub fn set_keep_alive_enabled(&self, value: bool) -> Result<(), ErrorCode> {
        Ok(self.sock_ref()?.set_keepalive(value)?)
    }

    /// `keep-alive-idle-time`, in nanoseconds.
    pub fn keep_alive_idle_time(&self) -> Result<u64, ErrorCode> {
        Ok(nanos(self.sock_ref()?.tcp_keepalive_time()?))
    }

    /// `set-keep-alive-idle-time`: 0 is invalid; other values are clamped to what Linux takes.
    pub fn set_keep_alive_idle_time(&self, nanos: u64) -> Result<(), ErrorCode> {
        let time = keepalive_duration(nanos)?;
        Ok(self
            .sock_ref()?
            .set_tcp_keepalive(&TcpKeepalive::new().with_time(time))?)
    }

    /// `keep-alive-interval`, in nanoseconds.
    pub fn keep_alive_interval(&self) -> Result<u64, ErrorCode> {
        Ok(nanos(self.sock_ref()?.tcp_keepalive_interval()?))
    }

    /// `set-keep-alive-interval`: 0 is invalid; other values are clamped to what Linux takes.
    pub fn set_keep_alive_interval(&self, nanos: u64) -> Result<(), ErrorCode> {
        let interval = keepalive_duration(nanos)?;
        Ok(self
            .sock_ref()?
            .set_tcp_keepalive(&TcpKeepalive::new().with_interval(interval))?)
    }

    /// `keep-alive-count`.
    pub fn keep_alive_count(&self) -> Result<u32, ErrorCode> {
        Ok(self.sock_ref()?.tcp_keepalive_retries()?)
    }

    /// `set-keep-alive-count`: 0 is invalid; Linux takes at most 127.
    pub fn set_keep_alive_count(&self, value: u32) -> Result<(), ErrorCode> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument);
        }
        Ok(self
            .sock_ref()?
            .set_tcp_keepalive(&TcpKeepalive::new().with_retries(value.min(127)))?)
    }

    /// `hop-limit`: `IP_TTL` or `IPV6_UNICAST_HOPS`.
    pub fn hop_limit(&self) -> Result<u8, ErrorCode> {
        options::hop_limit(self.sock_ref()?, self.family)
    }

    /// `set-hop-limit`: 0 is invalid.
    pub fn set_hop_limit(&self, value: u8) -> Result<(), ErrorCode> {
        options::set_hop_limit(self.sock_ref(), self.family, value)
    }

    /// `receive-buffer-size`.
    pub fn receive_buffer_size(&self) -> Result<u64, ErrorCode> {
        options::receive_buffer_size(self.sock_ref()?)
    }

    /// `set-receive-buffer-size`: 0 is invalid; large values are clamped.
    pub fn set_receive_buffer_size(&self, value: u64) -> Result<(), ErrorCode> {
        options::set_receive_buffer_size(self.sock_ref(), value)
    }

    /// `send-buffer-size`.
    pub fn send_buffer_size(&self) -> Result<u64, ErrorCode> {
        options::send_buffer_size(self.sock_ref()?)
    }

    /// `set-send-buffer-size`: 0 is invalid; large values are clamped.
    pub fn set_send_buffer_size(&self, value: u64) -> Result<(), ErrorCode> {
        options::set_send_buffer_size(self.sock_ref(), value)
    }

    /// `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<(), ErrorCode> {
        let State::Connected(conn) = &self.state else {
            return Err(ErrorCode::InvalidState);
        };
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            conn.shutdown_receive();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            conn.shutdown_send();
        }
        Ok(())
    }

    fn sock_ref(&self) -> Result<SockRef<'_>, ErrorCode> {
        Ok(match &self.state {
            State::Unbound(s)
            | State::BindStarted(Bound::Fresh(s))
            | State::Bound(Bound::Fresh(s)) => SockRef::from(s),
            State::BindStarted(Bound::Preopened(l)) | State::Bound(Bound::Preopened(l)) => {
                SockRef::from(l)
            }
            State::ListenStarted(l) | State::Listening { listener: l, .. } => SockRef::from(&**l),
            State::Connecting(s) => SockRef::from(s),
            State::Connected(conn) => SockRef::from(&conn.stream),
            State::Closed => return Err(ErrorCode::InvalidState),
        })
    }
}

/// The socket of a connection a listener accepted, registered for revocation and carrying
/// the listener's grant and backlog.
fn accepted(
    stream: TcpStream,
    peer: SocketAddr,
    grant: &Grant,
    family: Family,
    backlog: u32,
    held: Holds,
) -> TcpSocket {
    let socket_held = held.socket.clone();
    let conn = Connection::new(stream, grant, Use::TcpAccept, peer, held);
    let mut socket = TcpSocket::with_state(family, State::Connected(conn), Some(grant.clone()));
    socket.backlog = backlog;
    socket.held = socket_held;
    socket
}

/// The counts an accepted connection takes: a socket and a connection, or neither. Refused
/// with `new-socket-limit`, as `accept` is when the process is out of descriptors.
fn hold_accepted(grant: &Grant) -> Result<Holds, ErrorCode> {
    let socket = grant.hold(Limit::Sockets, "tcp-accept")?;
    match grant.hold(Limit::Connections, "tcp-accept") {
        Ok(connection) => Ok(Holds {
            socket: Some(Arc::new(socket)),
            connection: Some(connection),
        }),
        Err(code) => {
            socket.undo();
            Err(code)
        }
    }
}

/// Accepts the connections of one listener from peers the policy allows; see
/// [`TcpSocket::acceptor`].
pub struct Acceptor {
    listener: Arc<TcpListener>,
    grant: Grant,
    preopened: bool,
    family: Family,
    backlog: u32,
    /// An allowed connection taken while the instance was at a limit, served when room is made.
    waiting: Option<(TcpStream, SocketAddr)>,
}

impl Acceptor {
    /// The next connection from an allowed peer; refused peers are closed and logged. A
    /// revoked grant takes no more connections. While the instance is at its `sockets` or
    /// `connections` limit, the stream waits until one of them closes.
    pub fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<TcpSocket, ErrorCode>> {
        loop {
            if self.grant.is_revoked() {
                return Poll::Ready(Err(ErrorCode::AccessDenied));
            }
            let (stream, peer) = match self.waiting.take() {
                Some(allowed) => allowed,
                None => match std::task::ready!(self.listener.poll_accept(cx)) {
                    Ok((stream, peer)) if accept_allowed(&self.grant, self.preopened, peer) => {
                        (stream, peer)
                    }
                    Ok(_) => continue,
                    Err(e) => return Poll::Ready(Err(e.into())),
                },
            };
            // Asked to be woken before the second try, so room made after the first refusal
            // is never missed.
            let mut tries = [false, true].into_iter();
            let held = loop {
                match (hold_accepted(&self.grant), tries.next()) {
                    (Ok(held), _) => break Some(held),
                    (Err(_), Some(false)) => self.grant.wake_on_room(cx),
                    (Err(_), _) => break None,
                }
            };
            match held {
                Some(held) => {
                    let grant = &self.grant;
                    let socket = accepted(stream, peer, grant, self.family, self.backlog, held);
                    return Poll::Ready(Ok(socket));
                }
                None => {
                    self.waiting = Some((stream, peer));
                    return Poll::Pending;
                }
            }
        }
    }
}

fn accept_allowed(grant: &Grant, preopened: bool, peer: SocketAddr) -> bool {
    if preopened {
        grant.check_preopened_accept(peer)
    } else {
        grant.check(Use::TcpAccept, peer).is_ok()
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for TcpSocket {
    async fn ready(&mut self) {
        match &mut self.state {
            State::Connecting(stream) => {
                let _ = stream.writable().await;
            }
            State::Listening { listener, pending } => {
                if pending.is_some() {
                    return;
                }
                let grant = self.grant.as_ref();
                loop {
                    let next = listener.accept().await;
                    let allowed = match (&next, grant) {
                        (Ok((_, peer)), Some(grant)) => {
                            accept_allowed(grant, self.preopened.is_some(), *peer)
                        }
                        _ => true,
                    };
                    if allowed {
                        *pending = Some(next);
                        return;
                    }
                }
            }
            // Bind and listen finish at once; other states have nothing to wait for.
            _ => {}
        }
    }
}

fn local_addr_of(sock: &SockRef<'_>) -> Result<SocketAddr, ErrorCode> {
    sock.local_addr()?
        .as_socket()
        .ok_or(ErrorCode::InvalidState)
}

fn backlog_arg(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Linux keeps keep-alive times in whole seconds, from 1 to 32767.
fn keepalive_duration(nanos: u64) -> Result<Duration, ErrorCode> {
    if nanos == 0 {
        return Err(ErrorCode::InvalidArgument);
    }
    let secs = nanos.div_ceil(1_000_000_000).clamp(1, 32_767);
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::super::options::testing::{grant, show};
    use super::*;
    use crate::ctx::CapnetCtxBuilder;

    fn preopens() -> Preopens {
        CapnetCtxBuilder::new().build().preopens
    }

    /// A socket driven into each state of the WIT's TCP state machine.
    async fn in_state(
        grant: &Grant,
        state: &str,
        peer: SocketAddr,
        refused: SocketAddr,
    ) -> TcpSocket {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut s = TcpSocket::new(Family::V4).unwrap();
        let bind = |s: &mut TcpSocket| s.start_bind(grant, local, &mut preopens()).unwrap();
        match state {
            "unbound" => {}
            "bind-started" => bind(&mut s),
            "bound" => {
                bind(&mut s);
                s.finish_bind().unwrap();
            }
            "listen-started" | "listening" => {
                bind(&mut s);
                s.finish_bind().unwrap();
                s.start_listen().unwrap();
                if state == "listening" {
                    s.finish_listen().unwrap();
                }
            }
            "connect-started" => s.start_connect(grant, peer).unwrap(),
            "connected" | "closed" => {
                let target = if state == "connected" { peer } else { refused };
                s.start_connect(grant, target).unwrap();
                while let Err(ErrorCode::WouldBlock) = s.finish_connect() {
                    s.ready().await;
                }
            }
            other => panic!("no state {other}"),
        }
        s
    }

    /// Every operation in every state gives the result the WIT docs name (and where they are
    /// silent, what wasmtime-wasi gives): one row per operation, one column per state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_operation_in_every_state_gives_the_documented_result() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        let refused = {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            closed.local_addr().unwrap()
        };
        let states = [
            "unbound",
            "bind-started",
            "bound",
            "listen-started",
            "listening",
            "connected",
            "closed",
        ];
        type Op = fn(&mut TcpSocket, &Grant, SocketAddr) -> &'static str;
        let table: [(&str, Op, [&str; 7]); 16] = [
            (
                "is-listening",
                |s, _, _| if s.is_listening() { "true" } else { "false" },
                ["false", "false", "false", "false", "true", "false", "false"],
            ),
            (
                "address-family",
                |s, _, _| {
                    if s.family() == Family::V4 {
                        "ipv4"
                    } else {
                        "ipv6"
                    }
                },
                ["ipv4"; 7],
            ),
            (
                "start-bind",
                |s, g, _| show(s.start_bind(g, "127.0.0.1:0".parse().unwrap(), &mut preopens())),
                [
                    "ok",
                    "concurrency-conflict",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                ],
            ),
            (
                "finish-bind",
                |s, _, _| show(s.finish_bind()),
                [
                    "not-in-progress",
                    "ok",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                ],
            ),
            (
                "start-connect",
                |s, g, p| show(s.start_connect(g, p)),
                [
                    "ok",
                    "concurrency-conflict",
                    "ok",
                    "concurrency-conflict",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                ],
            ),
            (
                "finish-connect",
                |s, _, _| show(s.finish_connect()),
                [
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                ],
            ),
            (
                "start-listen",
                |s, _, _| show(s.start_listen()),
                [
                    "invalid-state",
                    "concurrency-conflict",
                    "ok",
                    "concurrency-conflict",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                ],
            ),
            (
                "finish-listen",
                |s, _, _| show(s.finish_listen()),
                [
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                    "ok",
                    "not-in-progress",
                    "not-in-progress",
                    "not-in-progress",
                ],
            ),
            (
                "accept",
                |s, _, _| show(s.accept().map(drop)),
                [
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "would-block",
                    "invalid-state",
                    "invalid-state",
                ],
            ),
            (
                "local-address",
                |s, _, _| show(s.local_address()),
                [
                    "invalid-state",
                    "invalid-state",
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "invalid-state",
                ],
            ),
            (
                "remote-address",
                |s, _, _| show(s.remote_address()),
                [
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "ok",
                    "invalid-state",
                ],
            ),
            (
                "shutdown",
                |s, _, _| show(s.shutdown(Shutdown::Both)),
                [
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "ok",
                    "invalid-state",
                ],
            ),
            (
                "set-listen-backlog-size 0",
                |s, _, _| show(s.set_listen_backlog_size(0)),
                ["invalid-argument"; 7],
            ),
            (
                "set-listen-backlog-size 16",
                |s, _, _| show(s.set_listen_backlog_size(16)),
                [
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "invalid-state",
                    "invalid-state",
                ],
            ),
            (
                "set-hop-limit 0",
                |s, _, _| show(s.set_hop_limit(0)),
                ["invalid-argument"; 7],
            ),
            (
                "set-keep-alive-count 3",
                |s, _, _| show(s.set_keep_alive_count(3)),
                ["ok", "ok", "ok", "ok", "ok", "ok", "invalid-state"],
            ),
        ];
        let network = grant();
        let mut wrong = Vec::new();
        for (op, run, expected) in table {
            for (state, want) in states.iter().zip(expected) {
                let mut socket = in_state(&network, state, peer, refused).await;
                let got = run(&mut socket, &network, peer);
                if got != want {
                    wrong.push(format!("{op} in {state}: got {got}, the docs say {want}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_through_another_network_than_the_bind_is_invalid_argument() {
        let (bound_with, other) = (grant(), grant());
        let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpSocket::new(Family::V4).unwrap();
        s.start_bind(&bound_with, "127.0.0.1:0".parse().unwrap(), &mut preopens())
            .unwrap();
        s.finish_bind().unwrap();
        let addr = peer.local_addr().unwrap();
        assert_eq!(show(s.start_connect(&other, addr)), "invalid-argument");
        assert_eq!(show(s.start_connect(&bound_with, addr)), "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn option_setters_reject_zero_and_clamp_the_rest() {
        let s = TcpSocket::new(Family::V6).unwrap();
        for (name, result) in [
            ("keep-alive-idle-time", s.set_keep_alive_idle_time(0)),
            ("keep-alive-interval", s.set_keep_alive_interval(0)),
            ("keep-alive-count", s.set_keep_alive_count(0)),
            ("hop-limit", s.set_hop_limit(0)),
            ("receive-buffer-size", s.set_receive_buffer_size(0)),
            ("send-buffer-size", s.set_send_buffer_size(0)),
        ] {
            assert_eq!(show(result), "invalid-argument", "{name} 0");
        }
        // Out-of-range values are clamped, not refused; the value read back is the kernel's.
        s.set_keep_alive_idle_time(u64::MAX).unwrap();
        assert_eq!(s.keep_alive_idle_time().unwrap(), 32_767 * 1_000_000_000);
        s.set_keep_alive_interval(1).unwrap();
        assert_eq!(s.keep_alive_interval().unwrap(), 1_000_000_000);
        s.set_keep_alive_count(u32::MAX).unwrap();
        assert_eq!(s.keep_alive_count().unwrap(), 127);
        s.set_hop_limit(42).unwrap();
        assert_eq!(s.hop_limit().unwrap(), 42);
        s.set_keep_alive_enabled(true).unwrap();
        assert!(s.keep_alive_enabled().unwrap());
        s.set_receive_buffer_size(u64::MAX).unwrap();
        assert!(s.receive_buffer_size().unwrap() > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bind_and_connect_reject_the_addresses_the_docs_name() {
        let g = grant();
        let cases: [(Family, &str, &str, &str); 8] = [
            (Family::V4, "bind", "[::1]:0", "invalid-argument"),
            (Family::V6, "bind", "127.0.0.1:0", "invalid-argument"),
            (
                Family::V6,
                "bind",
                "[::ffff:127.0.0.1]:0",
                "invalid-argument",
            ),
            (Family::V4, "bind", "224.0.0.1:0", "invalid-argument"),
            (Family::V4, "connect", "0.0.0.0:80", "invalid-argument"),
            (Family::V4, "connect", "127.0.0.1:0", "invalid-argument"),
            (
                Family::V6,
                "connect",
                "[::ffff:127.0.0.1]:80",
                "invalid-argument",
            ),
            (
                Family::V4,
                "connect",
                "255.255.255.255:80",
                "invalid-argument",
            ),
        ];
        for (family, op, addr, want) in cases {
            let mut s = TcpSocket::new(family).unwrap();
            let addr: SocketAddr = addr.parse().unwrap();
            let got = match op {
                "bind" => show(s.start_bind(&g, addr, &mut preopens())),
                _ => show(s.start_connect(&g, addr)),
            };
            assert_eq!(got, want, "{op} {addr} on {family:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_bind_to_a_bound_address_is_address_in_use() {
        let g = grant();
        let mut first = TcpSocket::new(Family::V4).unwrap();
        first
            .start_bind(&g, "127.0.0.1:0".parse().unwrap(), &mut preopens())
            .unwrap();
        first.finish_bind().unwrap();
        first.start_listen().unwrap();
        let taken = first.local_address().unwrap();
        let mut second = TcpSocket::new(Family::V4).unwrap();
        assert_eq!(
            show(second.start_bind(&g, taken, &mut preopens())),
            "address-in-use"
        );
        // A failed bind leaves the socket unbound: it may try again elsewhere.
        assert_eq!(
            show(second.start_bind(&g, "127.0.0.1:0".parse().unwrap(), &mut preopens())),
            "ok"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accepted_sockets_inherit_the_listeners_options() {
        let g = grant();
        let mut listener = TcpSocket::new(Family::V4).unwrap();
        listener
            .start_bind(&g, "127.0.0.1:0".parse().unwrap(), &mut preopens())
            .unwrap();
        listener.finish_bind().unwrap();
        listener.set_keep_alive_enabled(true).unwrap();
        listener.set_keep_alive_idle_time(77_000_000_000).unwrap();
        listener.set_hop_limit(33).unwrap();
        listener.start_listen().unwrap();
        listener.finish_listen().unwrap();
        let addr = listener.local_address().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.ready().await;
        let (accepted, _, _) = listener.accept().map_err(ErrorCode::as_str).unwrap();
        assert!(accepted.keep_alive_enabled().unwrap());
        assert_eq!(accepted.keep_alive_idle_time().unwrap(), 77_000_000_000);
        assert_eq!(accepted.hop_limit().unwrap(), 33);
        assert_eq!(accepted.family(), Family::V4);
    }

    fn limited(toml: &str) -> Grant {
        let policy = Policy::builder().toml("policy.toml", toml).unwrap().build();
        Grant::new(Arc::new(policy), Arc::from("test"))
    }

    use capnet_policy::Policy;

    fn listening(grant: &Grant) -> TcpSocket {
        let mut listener =
            TcpSocket::create(grant, Family::V4, false, "create-tcp-socket").unwrap();
        let local = "127.0.0.1:0".parse().unwrap();
        listener.start_bind(grant, local, &mut preopens()).unwrap();
        listener.finish_bind().unwrap();
        listener.start_listen().unwrap();
        listener.finish_listen().unwrap();
        listener
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accept_past_the_socket_limit_is_new_socket_limit_and_the_peer_waits_its_turn() {
        let g = limited("[allow]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nsockets = 2\n");
        let mut listener = listening(&g);
        let addr = listener.local_address().unwrap();
        let _first = std::net::TcpStream::connect(addr).unwrap();
        let _second = std::net::TcpStream::connect(addr).unwrap();
        listener.ready().await;
        let (accepted, ..) = listener.accept().unwrap();
        // The listener and one connection are the two sockets: the next peer is not taken.
        listener.ready().await;
        assert_eq!(show(listener.accept()), "new-socket-limit");
        assert_eq!(show(listener.accept()), "new-socket-limit");
        drop(accepted);
        let (second, ..) = listener.accept().unwrap();
        assert_eq!(
            second.remote_address().unwrap().port(),
            _second.local_addr().unwrap().port(),
            "the peer that waited is the one served"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listen_stream_at_the_limit_waits_until_a_connection_closes() {
        let g = limited("[allow]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nconnections = 1\n");
        let listener = listening(&g);
        let addr = listener.local_address().unwrap();
        let mut acceptor = listener.acceptor().unwrap();
        let _peers = [
            std::net::TcpStream::connect(addr).unwrap(),
            std::net::TcpStream::connect(addr).unwrap(),
        ];
        let first = std::future::poll_fn(|cx| acceptor.poll_accept(cx))
            .await
            .unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(200),
            std::future::poll_fn(|cx| acceptor.poll_accept(cx)),
        )
        .await;
        assert!(waiting.is_err(), "the second connection waits for room");
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(first);
        });
        let second = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| acceptor.poll_accept(cx)),
        )
        .await
        .expect("closing the first connection wakes the stream")
        .unwrap();
        closer.await.unwrap();
        assert!(second.remote_address().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_library_limit_binds_every_network_of_the_library_and_not_the_app() {
        let g = limited(
            "[allow]\nconnect = [\"127.0.0.1\"]\n\
             [library.weather.allow]\nconnect = [\"127.0.0.1\"]\n\
             [library.weather.limits]\nsockets = 1\n",
        );
        let create = |grant: &Grant| {
            show(TcpSocket::create(
                grant,
                Family::V4,
                false,
                "create-tcp-socket",
            ))
        };
        let (one, two) = (g.library("weather"), g.library("weather"));
        let held = TcpSocket::create(&one, Family::V4, false, "create-tcp-socket").unwrap();
        assert_eq!(create(&two), "new-socket-limit", "one count per library");
        assert_eq!(
            create(&g),
            "ok",
            "the app's own sockets are not the library's"
        );
        drop(held);
        assert_eq!(create(&two), "ok");
    }

    #[tokio::test]
    async fn a_pre_opened_listener_is_the_apps_a_library_binding_its_address_is_checked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let policy = capnet_policy::Policy::builder()
            .library_rule(
                "weather",
                capnet_policy::Verdict::Allow,
                "connect",
                "loopback",
            )
            .unwrap()
            .build();
        let mut ctx = CapnetCtxBuilder::new()
            .policy(policy)
            .tcp_listener(listener, None)
            .unwrap()
            .build();
        let weather = ctx.root.library("weather");
        let mut library_socket = TcpSocket::new(Family::V4).unwrap();
        assert_eq!(
            show(library_socket.start_bind(&weather, addr, &mut ctx.preopens)),
            "access-denied",
            "the library has no bind right, and the runtime's listener is not its to adopt"
        );
        let root = ctx.root.clone();
        let mut app_socket = TcpSocket::new(Family::V4).unwrap();
        app_socket
            .start_bind(&root, addr, &mut ctx.preopens)
            .unwrap();
        app_socket.finish_bind().unwrap();
        assert_eq!(
            app_socket.local_address().unwrap(),
            addr,
            "the app adopts it"
        );
    }
}
