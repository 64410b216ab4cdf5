//! The UDP socket and its datagram streams, over tokio, with per-peer capability checks.
//!
//! A bind needs the `udp-bind` right, except the ephemeral bind (unspecified address, port 0)
//! that wasi-libc makes before a first `sendto`: that bind exposes nothing by itself, since
//! every datagram sent is checked against `udp-send` for its destination and every datagram
//! received against `udp-receive` for its source, so a grant's `udp-send` or `udp-receive`
//! right covers it (a grant with neither is refused, and either way the decision is logged as
//! the grant's). Refused incoming datagrams are dropped and logged; the guest never sees them.
//!
//! Under a `bytes-per-second` rate a datagram moves only while the grant's buckets hold a
//! byte: `check-send` permits none and `receive` takes none from the kernel while they are
//! empty, and the pollables wait for the refill. A datagram is never cut: one larger than
//! what is left goes whole and the buckets owe the rest, waited off before the next. A send
//! takes its bytes in the step that sends it and a receive is charged in the step that read
//! it, so calls in flight at once overdraw the buckets by no more than one datagram.
//!
//! A 0.3 `send` or `receive` left pending holds no buffer of ours: a receive makes its
//! datagram's buffer once one is there to read, and a send holds only the copy of its
//! datagram that the component model made before the host saw the call. The calls pending
//! on a socket are bounded each way by the `datagrams` limit, and those of an instance by
//! `calls-in-flight`; past either the call fails at once with `out-of-memory`.

use super::addr::{self, Family};
use super::options;
use super::poll_now;
use crate::grant::Grant;
use crate::limit::Held;
use crate::rate::Meter;
use crate::socket::ErrorCode;
use capnet_policy::{Limit, Use};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use tokio::io::Interest;
use wasmtime_wasi_io::poll::Pollable;

/// The largest UDP payload (65535 minus the UDP header would be the IPv4 limit; the kernel
/// reports EMSGSIZE for what it cannot send, this bounds what we accept at all).
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// The uses a UDP socket can be put to (a client's ephemeral bind is covered by `udp-send`).
const USES: [Use; 3] = [Use::UdpBind, Use::UdpSend, Use::UdpReceive];

/// A `wasi:sockets/udp.udp-socket`.
pub struct UdpSocket {
    family: Family,
    socket: Arc<tokio::net::UdpSocket>,
    state: State,
    /// The authority the socket was bound under; later checks use it.
    grant: Option<Grant>,
    /// The authority that created the socket: the one a call that names no `network` (all of
    /// 0.3's) is decided by.
    created_under: Option<Grant>,
    /// The peer the current streams are limited to.
    remote: Option<SocketAddr>,
    /// The address the bind gave the socket, port included; see [`UdpSocket::keep_port`].
    bound_at: Option<SocketAddr>,
    /// The socket's count against the instance's `sockets` limit.
    held: Option<Held>,
    /// The 0.3 sends and receives pending on the socket.
    pending: Arc<Pending>,
}

/// The 0.3 calls pending on one socket, each way, counted against the `datagrams` limit.
#[derive(Default)]
struct Pending {
    sends: AtomicU64,
    receives: AtomicU64,
}

/// Which way a pending call moves a datagram.
#[derive(Clone, Copy)]
enum Way {
    Send,
    Receive,
}

impl Pending {
    fn count(&self, way: Way) -> &AtomicU64 {
        match way {
            Way::Send => &self.sends,
            Way::Receive => &self.receives,
        }
    }
}

/// One 0.3 call pending on a socket, counted on the socket and against its instance's (and
/// library's) `calls-in-flight` until it ends.
struct InFlight {
    pending: Arc<Pending>,
    way: Way,
    _held: Held,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pending.count(self.way).fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unbound,
    BindStarted,
    Bound,
}

impl UdpSocket {
    /// `create-udp-socket` (0.2) or `udp-socket.create` (0.3, `call` names which, for the log):
    /// refused with `access-denied` when `grant` gives no UDP use at all, as wasmtime-wasi
    /// refuses a component that may not use UDP.
    pub fn create(grant: &Grant, family: Family, call: &str) -> Result<Self, ErrorCode> {
        grant.check_kind(call, &USES, false)?;
        let held = grant.hold(Limit::Sockets, call)?;
        let mut socket = Self::new(family)?;
        socket.held = Some(held);
        socket.created_under = Some(grant.clone());
        Ok(socket)
    }

    /// A fresh unbound socket; IPv6 sockets are IPv6-only.
    pub fn new(family: Family) -> io::Result<Self> {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(domain, Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
        if family == Family::V6 {
            socket.set_only_v6(true)?;
        }
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        Ok(Self {
            family,
            socket: Arc::new(socket),
            state: State::Unbound,
            grant: None,
            created_under: None,
            remote: None,
            bound_at: None,
            held: None,
            pending: Arc::default(),
        })
    }

    /// Counts one 0.3 call about to be left pending on the socket: refused with
    /// `out-of-memory`, and logged, when the socket has its `datagrams` limit of them pending
    /// that way, or the instance (or library) its `calls-in-flight`.
    fn in_flight(&self, grant: &Grant, way: Way) -> Result<InFlight, ErrorCode> {
        let call = match way {
            Way::Send => "udp-socket.send",
            Way::Receive => "udp-socket.receive",
        };
        let count = self.pending.count(way);
        let max = grant.limit(Limit::Datagrams);
        let counted = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
        if counted.is_err() {
            return Err(grant.refuse_on_socket(call, Limit::Datagrams, max));
        }
        let in_flight = |held| InFlight {
            pending: self.pending.clone(),
            way,
            _held: held,
        };
        match grant.hold(Limit::CallsInFlight, call) {
            Ok(held) => Ok(in_flight(held)),
            Err(code) => {
                count.fetch_sub(1, Ordering::AcqRel);
                Err(code)
            }
        }
    }

    /// The grant the socket was created under, if it was.
    pub(crate) fn created_under(&self) -> Option<&Grant> {
        self.created_under.as_ref()
    }

    /// `start-bind`, with the `udp-bind` right (for the ephemeral bind, `udp-send` or
    /// `udp-receive` will do: see the module docs).
    pub fn start_bind(&mut self, grant: &Grant, local: SocketAddr) -> Result<(), ErrorCode> {
        match self.state {
            State::Unbound => {}
            State::BindStarted => return Err(ErrorCode::ConcurrencyConflict),
            State::Bound => return Err(ErrorCode::InvalidState),
        }
        addr::validate_local(self.family, &local)?;
        grant.check(Use::UdpBind, local)?;
        SockRef::from(&*self.socket).bind(&local.into())?;
        self.bound_at = Some(self.socket.local_addr()?);
        self.state = State::BindStarted;
        self.grant = Some(grant.clone());
        Ok(())
    }

    /// `finish-bind`.
    pub fn finish_bind(&mut self) -> Result<(), ErrorCode> {
        if self.state != State::BindStarted {
            return Err(ErrorCode::NotInProgress);
        }
        self.state = State::Bound;
        Ok(())
    }

    /// `%stream`: limits the socket to `remote` (with the `udp-send` right for it) or lifts the
    /// limit, and returns the streams. The caller makes sure older streams are gone.
    pub fn stream(
        &mut self,
        remote: Option<SocketAddr>,
    ) -> Result<(IncomingDatagramStream, OutgoingDatagramStream), ErrorCode> {
        let grant = self.bound_grant()?.clone();
        self.set_remote(remote)?;
        // Datagrams one `check-send` permits and one `receive` returns at most.
        let batch = usize::try_from(grant.limit(Limit::Datagrams)).unwrap_or(usize::MAX);
        let incoming = IncomingDatagramStream {
            batch,
            meter: Meter::new(grant.clone()),
            socket: self.socket.clone(),
            hearing: Hearing::new(grant.clone(), self.remote),
            scratch: vec![0; MAX_DATAGRAM].into_boxed_slice(),
        };
        let outgoing = OutgoingDatagramStream {
            meter: Meter::new(grant.clone()),
            socket: self.socket.clone(),
            family: self.family,
            grant,
            remote: self.remote,
            batch,
            permit: 0,
            seen_writable: false,
            full: false,
        };
        Ok((incoming, outgoing))
    }

    /// Binds an unbound socket to the unspecified address and an ephemeral port, as a first
    /// send or a connect does; a bound socket stays as it is.
    pub fn bind_ephemeral(&mut self, grant: &Grant) -> Result<(), ErrorCode> {
        if self.state != State::Unbound {
            return Ok(());
        }
        let any = match self.family {
            Family::V4 => SocketAddr::from(([0, 0, 0, 0], 0)),
            Family::V6 => SocketAddr::from(([0u16; 8], 0)),
        };
        self.start_bind(grant, any)?;
        self.finish_bind()
    }

    /// Linux lets go of a port the system chose (a bind to port 0, or an ephemeral one) when
    /// a connected UDP socket is disconnected, and would pick another at the next send or
    /// connect. The WIT keeps the local address for the socket's life, so the socket is bound
    /// to it again (the port was free a moment ago; if another socket took it in between,
    /// the call fails with `address-in-use`).
    fn keep_port(&self) -> Result<(), ErrorCode> {
        let Some(bound_at) = self.bound_at else {
            return Ok(());
        };
        if self.socket.local_addr()?.port() == 0 {
            SockRef::from(&*self.socket).bind(&bound_at.into())?;
        }
        Ok(())
    }

    /// 0.3's `connect`: limits the socket to `remote`, binding an unbound socket to an
    /// ephemeral port first. The address and the `udp-send` right are checked before that
    /// bind, so a refused connect leaves the socket unbound.
    pub fn connect(&mut self, grant: &Grant, remote: SocketAddr) -> Result<(), ErrorCode> {
        if self.state != State::Unbound {
            return self.set_remote(Some(remote));
        }
        addr::validate_remote(self.family, &remote)?;
        grant.check(Use::UdpSend, remote)?;
        self.bind_ephemeral(grant)?;
        self.redirect(Some(remote))
    }

    /// 0.3's `send`: [`UdpSocket::sender`], binding an unbound socket to an ephemeral port
    /// first. The size, the destination and its `udp-send` right are checked before that
    /// bind, so a refused send leaves the socket unbound.
    pub fn sender_binding(
        &mut self,
        grant: &Grant,
        dest: Option<SocketAddr>,
        len: usize,
    ) -> Result<Sender, ErrorCode> {
        if self.state != State::Unbound {
            return self.sender(dest, len);
        }
        if len > MAX_DATAGRAM {
            return Err(ErrorCode::DatagramTooLarge);
        }
        // An unbound socket has no peer: the destination is required, and decided once.
        let dest = destination(self.family, grant, None, dest)?;
        let in_flight = self.in_flight(grant, Way::Send)?;
        self.bind_ephemeral(grant)?;
        Ok(Sender {
            socket: self.socket.clone(),
            dest,
            meter: Meter::if_limited(grant),
            _in_flight: in_flight,
        })
    }

    /// Limits the socket to `remote`, or lifts the limit (`None`), after the address and
    /// `udp-send` checks: `%stream`'s first half, and all of 0.3's `connect` and `disconnect`
    /// on a bound socket.
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) -> Result<(), ErrorCode> {
        let grant = self.bound_grant()?;
        if let Some(peer) = remote {
            addr::validate_remote(self.family, &peer)?;
            grant.check(Use::UdpSend, peer)?;
        }
        self.redirect(remote)
    }

    /// Points the kernel's socket at `remote`, or at no peer, once the checks are done.
    fn redirect(&mut self, remote: Option<SocketAddr>) -> Result<(), ErrorCode> {
        if self.remote.is_some() {
            disconnect(&self.socket)?;
            self.remote = None;
            self.keep_port()?;
        }
        if let Some(peer) = remote {
            connect(&self.socket, peer)?;
            self.remote = Some(peer);
        }
        Ok(())
    }

    /// The grant a bound socket was bound under; `invalid-state` before it is bound.
    fn bound_grant(&self) -> Result<&Grant, ErrorCode> {
        match (&self.state, &self.grant) {
            (State::Bound, Some(grant)) => Ok(grant),
            _ => Err(ErrorCode::InvalidState),
        }
    }

    /// What one datagram of `len` bytes to `dest` (or to the connected peer, for `None`) is
    /// sent with, after the size and `udp-send` checks.
    pub fn sender(&self, dest: Option<SocketAddr>, len: usize) -> Result<Sender, ErrorCode> {
        if len > MAX_DATAGRAM {
            return Err(ErrorCode::DatagramTooLarge);
        }
        let grant = self.bound_grant()?;
        let dest = destination(self.family, grant, self.remote, dest)?;
        Ok(Sender {
            socket: self.socket.clone(),
            dest,
            meter: Meter::if_limited(grant),
            _in_flight: self.in_flight(grant, Way::Send)?,
        })
    }

    /// What receives the socket's datagrams, away from the socket itself: every source is
    /// checked against `udp-receive`, and refused datagrams are dropped.
    pub fn receiver(&self) -> Result<Receiver, ErrorCode> {
        let grant = self.bound_grant()?.clone();
        Ok(Receiver {
            socket: self.socket.clone(),
            meter: Meter::if_limited(&grant),
            _in_flight: self.in_flight(&grant, Way::Receive)?,
            hearing: Hearing::new(grant, self.remote),
        })
    }

    /// `local-address`.
    pub fn local_address(&self) -> Result<SocketAddr, ErrorCode> {
        if self.state != State::Bound {
            return Err(ErrorCode::InvalidState);
        }
        Ok(self.socket.local_addr()?)
    }

    /// `remote-address`.
    pub fn remote_address(&self) -> Result<SocketAddr, ErrorCode> {
        self.remote.ok_or(ErrorCode::InvalidState)
    }

    /// `address-family`.
    pub fn family(&self) -> Family {
        self.family
    }

    /// `unicast-hop-limit`.
    pub fn unicast_hop_limit(&self) -> Result<u8, ErrorCode> {
        options::hop_limit(SockRef::from(&*self.socket), self.family)
    }

    /// `set-unicast-hop-limit`: 0 is invalid.
    pub fn set_unicast_hop_limit(&self, value: u8) -> Result<(), ErrorCode> {
        options::set_hop_limit(Ok(SockRef::from(&*self.socket)), self.family, value)
    }

    /// `receive-buffer-size`.
    pub fn receive_buffer_size(&self) -> Result<u64, ErrorCode> {
        options::receive_buffer_size(SockRef::from(&*self.socket))
    }

    /// `set-receive-buffer-size`: 0 is invalid; large values are clamped.
    pub fn set_receive_buffer_size(&self, value: u64) -> Result<(), ErrorCode> {
        options::set_receive_buffer_size(Ok(SockRef::from(&*self.socket)), value)
    }

    /// `send-buffer-size`.
    pub fn send_buffer_size(&self) -> Result<u64, ErrorCode> {
        options::send_buffer_size(SockRef::from(&*self.socket))
    }

    /// `set-send-buffer-size`: 0 is invalid; large values are clamped.
    pub fn set_send_buffer_size(&self, value: u64) -> Result<(), ErrorCode> {
        options::set_send_buffer_size(Ok(SockRef::from(&*self.socket)), value)
    }
}

/// Binding finishes at once: the socket's pollable is always ready.
#[wasmtime_wasi_io::async_trait]
impl Pollable for UdpSocket {
    async fn ready(&mut self) {}
}

fn connect(socket: &tokio::net::UdpSocket, peer: SocketAddr) -> Result<(), ErrorCode> {
    SockRef::from(socket).connect(&peer.into())?;
    Ok(())
}

/// Which datagrams a socket's receiver lets through: those of the peer it is limited to, if
/// any, from sources `udp-receive` allows.
struct Hearing {
    grant: Grant,
    /// The peer the socket is limited to; datagrams others queued before are dropped.
    remote: Option<SocketAddr>,
    /// Whether `remote` may be heard, decided once (quietly: a refusal is logged when a
    /// datagram from it is dropped), so its datagrams then cost no policy work.
    remote_allowed: bool,
}

impl Hearing {
    fn new(grant: Grant, remote: Option<SocketAddr>) -> Self {
        let remote_allowed = remote.is_some_and(|peer| grant.permits(Use::UdpReceive, peer));
        Self {
            grant,
            remote,
            remote_allowed,
        }
    }

    /// The sender of a received datagram, normalised, when the datagram may reach the guest.
    fn admits(&self, from: SocketAddr) -> Option<SocketAddr> {
        let peer = SocketAddr::new(capnet_policy::normalize(from.ip()), from.port());
        let admitted = match self.remote {
            // A datagram another peer sent before the socket was limited to `remote` still
            // waits in the kernel's queue: it is not the remote's, so it is dropped.
            Some(remote) if !same_peer(remote, peer) => false,
            Some(_) if self.remote_allowed => true,
            // Logs the refusal of this datagram.
            _ => self.grant.check(Use::UdpReceive, peer).is_ok(),
        };
        admitted.then_some(peer)
    }
}

/// Where one datagram goes, `None` for the connected peer: a destination given on a
/// connected socket must be its peer, one is required on an unconnected socket, and it is
/// checked against `udp-send`.
fn destination(
    family: Family,
    grant: &Grant,
    remote: Option<SocketAddr>,
    dest: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, ErrorCode> {
    match (dest, remote) {
        (Some(dest), Some(peer)) if dest == peer => Ok(None),
        (Some(_), Some(_)) | (None, None) => Err(ErrorCode::InvalidArgument),
        (None, Some(_)) => Ok(None),
        (Some(dest), None) => {
            addr::validate_remote(family, &dest)?;
            grant.check(Use::UdpSend, dest)?;
            Ok(Some(dest))
        }
    }
}

/// The error the kernel queued on the socket (an ICMP error a connected socket heard), taken
/// only when tokio saw error readiness, so an empty receive costs no system call otherwise.
/// Taking it clears tokio's error readiness too.
fn pending_error(socket: &tokio::net::UdpSocket) -> io::Result<Option<io::Error>> {
    let flagged = poll_now(|cx| std::pin::pin!(socket.ready(Interest::ERROR)).poll(cx));
    if flagged.is_pending() {
        return Ok(None);
    }
    let pending = socket.take_error()?;
    // Clear tokio's error readiness: the kernel has no error left to report.
    let _ = socket.try_io(Interest::ERROR, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
    Ok(pending)
}

/// Whether `peer` (normalised) is `remote`, the address a stream was limited to.
fn same_peer(remote: SocketAddr, peer: SocketAddr) -> bool {
    capnet_policy::normalize(remote.ip()) == peer.ip() && remote.port() == peer.port()
}

/// Dissolves a UDP association (`connect` to `AF_UNSPEC`).
fn disconnect(socket: &tokio::net::UdpSocket) -> Result<(), ErrorCode> {
    match rustix::net::connect_unspec(socket) {
        Ok(()) => Ok(()),
        // Some kernels report an error even though the association is gone.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::AFNOSUPPORT) => Ok(()),
        Err(e) => Err(io::Error::from(e).into()),
    }
}

/// Sends one datagram; see [`UdpSocket::sender`].
pub struct Sender {
    socket: Arc<tokio::net::UdpSocket>,
    /// The destination to name, `None` when the socket is connected.
    dest: Option<SocketAddr>,
    /// The grant's buckets, when a rate was set as the call began.
    meter: Option<Meter>,
    _in_flight: InFlight,
}

impl Sender {
    /// Sends `data` once the socket has room and, under a rate, the buckets hold a byte. The
    /// datagram's bytes are taken in the step that sends it, and given back if the kernel
    /// refuses it, so sends in flight at once never pass on the same bytes.
    pub async fn send(mut self, data: &[u8]) -> Result<(), ErrorCode> {
        loop {
            if let Some(meter) = &mut self.meter {
                meter.ready().await;
            }
            self.socket.writable().await?;
            if let Some(meter) = &mut self.meter
                && !meter.take_whole(data.len())
            {
                continue;
            }
            let sent = match self.dest {
                Some(dest) => self.socket.try_send_to(data, dest),
                None => self.socket.try_send(data),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if let Some(meter) = &self.meter {
                        meter.give_back(data.len());
                    }
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Err(e.into());
                    }
                }
            }
        }
    }
}

/// Receives datagrams from allowed sources; see [`UdpSocket::receiver`].
pub struct Receiver {
    socket: Arc<tokio::net::UdpSocket>,
    hearing: Hearing,
    /// The grant's buckets, when a rate was set as the call began.
    meter: Option<Meter>,
    _in_flight: InFlight,
}

impl Receiver {
    /// The next datagram from a source the policy allows, and its sender. Its buffer is made
    /// once a datagram is there, so a pending receive holds none. Under a rate, nothing is
    /// taken from the kernel unless the buckets hold a byte when it is read, and the
    /// datagram is charged in that same step.
    pub async fn receive(&mut self) -> Result<(Vec<u8>, SocketAddr), ErrorCode> {
        loop {
            if let Some(meter) = &mut self.meter {
                meter.ready().await;
            }
            // Readable, or an error the kernel queued (an ICMP error on a connected socket).
            self.socket
                .ready(Interest::READABLE | Interest::ERROR)
                .await?;
            if let Some(meter) = &mut self.meter
                && !meter.holds_any()
            {
                continue;
            }
            // Only the pages the datagram fills are touched, and the rest is given back.
            let mut buf = Vec::with_capacity(MAX_DATAGRAM);
            let (len, peer) = match self.socket.try_recv_buf_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match pending_error(&self.socket)? {
                        Some(e) => return Err(e.into()),
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(peer) = self.hearing.admits(peer) {
                if let Some(meter) = &self.meter {
                    meter.charge(len);
                }
                buf.shrink_to_fit();
                return Ok((buf, peer));
            }
        }
    }
}

/// The receiving half of a UDP socket's streams.
pub struct IncomingDatagramStream {
    /// The most datagrams one `receive` returns: the grant's `datagrams` limit.
    batch: usize,
    meter: Meter,
    socket: Arc<tokio::net::UdpSocket>,
    hearing: Hearing,
    /// Where a datagram lands before it is copied out at its exact size.
    scratch: Box<[u8]>,
}

impl IncomingDatagramStream {
    /// `receive`: up to `max` waiting datagrams from peers the policy allows, never waiting,
    /// each made by `datagram` from its payload and sender straight into the list returned
    /// (one allocation for the list and whatever `datagram` makes); under a rate, none while
    /// the buckets are empty, and none after those that used up what they held.
    pub fn receive<D>(
        &mut self,
        max: u64,
        mut datagram: impl FnMut(&[u8], SocketAddr) -> D,
    ) -> Result<Vec<D>, ErrorCode> {
        let max = usize::try_from(max).unwrap_or(usize::MAX).min(self.batch);
        let mut out = Vec::new();
        // Each datagram is read only while the buckets hold a byte, and charged at once.
        while out.len() < max && self.meter.holds_any() {
            let (len, peer) = match self.socket.try_recv_from(&mut self.scratch) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && out.is_empty() => {
                    match pending_error(&self.socket)? {
                        Some(e) => return Err(e.into()),
                        None => break,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e.into()),
            };
            if let Some(peer) = self.hearing.admits(peer) {
                self.meter.charge(len);
                out.push(datagram(&self.scratch[..len], peer));
            }
        }
        Ok(out)
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for IncomingDatagramStream {
    /// Ready for a datagram, and for an error the kernel queued: a connected socket learns
    /// of an ICMP port-unreachable this way, and `receive` then reports `connection-refused`.
    async fn ready(&mut self) {
        self.meter.ready().await;
        let _ = self
            .socket
            .ready(Interest::READABLE | Interest::ERROR)
            .await;
    }
}

/// The sending half of a UDP socket's streams.
pub struct OutgoingDatagramStream {
    meter: Meter,
    socket: Arc<tokio::net::UdpSocket>,
    family: Family,
    grant: Grant,
    remote: Option<SocketAddr>,
    /// The most datagrams one `check-send` permits: the grant's `datagrams` limit.
    batch: usize,
    /// Datagrams the last `check-send` allowed; `send` uses them up.
    permit: usize,
    /// Whether tokio has reported the socket writable yet; until then it knows nothing.
    seen_writable: bool,
    /// Set when the kernel refused a datagram for want of room before tokio ever reported the
    /// socket writable.
    full: bool,
}

/// What `send` does with a guest that sends beyond its permit.
pub enum SendError {
    /// The guest sees this code.
    Code(ErrorCode),
    /// The guest broke the `check-send` contract.
    Unpermitted,
}

impl From<ErrorCode> for SendError {
    fn from(code: ErrorCode) -> Self {
        SendError::Code(code)
    }
}

impl OutgoingDatagramStream {
    /// `check-send`: a batch when the socket can take datagrams now, else 0 (and 0 while the
    /// buckets of a `bytes-per-second` rate are empty).
    ///
    /// A new socket can send at once, as a native one can (and as on wasmtime-wasi, which waits
    /// at creation until tokio knows it): until tokio has seen the socket writable, a batch is
    /// permitted unless the kernel already said it was full.
    pub fn check_send(&mut self) -> u64 {
        if !self.meter.holds_any() {
            self.permit = 0;
            return 0;
        }
        self.permit = match poll_now(|cx| self.socket.poll_send_ready(cx)) {
            Poll::Ready(_) => {
                self.seen_writable = true;
                self.batch
            }
            Poll::Pending if !self.seen_writable && !self.full => self.batch,
            Poll::Pending => 0,
        };
        self.permit as u64
    }

    /// `send`: datagrams in order, each destination checked against `udp-send`; stops at the
    /// first failure and reports it only when nothing was sent. Under a rate each datagram
    /// takes its bytes before it is sent, and the send stops once the buckets are empty (the
    /// last one may overdraw them).
    pub fn send<'a>(
        &mut self,
        datagrams: impl ExactSizeIterator<Item = (&'a [u8], Option<SocketAddr>)>,
    ) -> Result<u64, SendError> {
        if datagrams.len() == 0 {
            return Ok(0);
        }
        if datagrams.len() > self.permit {
            return Err(SendError::Unpermitted);
        }
        self.permit = 0;
        let mut sent = 0;
        for (data, dest) in datagrams {
            if !self.meter.take_whole(data.len()) {
                break;
            }
            let outcome = self.send_one(data, dest);
            if !matches!(outcome, Ok(true)) {
                self.meter.give_back(data.len());
            }
            match outcome {
                Ok(true) => sent += 1,
                Ok(false) => break,
                Err(_) if sent > 0 => break,
                Err(code) => return Err(code.into()),
            }
        }
        Ok(sent)
    }

    /// Sends one datagram: `Ok(false)` when the kernel has no room now.
    fn send_one(&mut self, data: &[u8], dest: Option<SocketAddr>) -> Result<bool, ErrorCode> {
        if data.len() > MAX_DATAGRAM {
            return Err(ErrorCode::DatagramTooLarge);
        }
        let dest = destination(self.family, &self.grant, self.remote, dest)?;
        // Once tokio has seen the socket writable its readiness stays right, so the probe is
        // needed only before that.
        let known_writable =
            self.seen_writable || poll_now(|cx| self.socket.poll_send_ready(cx)).is_ready();
        self.seen_writable = known_writable;
        let result = match (known_writable, dest) {
            // tokio's own sends keep its readiness right when the kernel is full.
            (true, Some(dest)) => self.socket.try_send_to(data, dest),
            (true, None) => self.socket.try_send(data),
            // tokio has not seen the socket writable yet: ask the kernel itself.
            (false, Some(dest)) => SockRef::from(&*self.socket).send_to(data, &dest.into()),
            (false, None) => SockRef::from(&*self.socket).send(data),
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.full |= !known_writable;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for OutgoingDatagramStream {
    async fn ready(&mut self) {
        self.meter.ready().await;
        let _ = self.socket.writable().await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::options::testing::{grant, show};
    use super::*;

    fn in_state(grant: &Grant, state: &str, peer: SocketAddr) -> UdpSocket {
        let mut s = UdpSocket::new(Family::V4).unwrap();
        if state != "unbound" {
            s.start_bind(grant, "127.0.0.1:0".parse().unwrap()).unwrap();
        }
        if state != "unbound" && state != "bind-started" {
            s.finish_bind().unwrap();
        }
        match state {
            "streaming" => drop(s.stream(None).unwrap()),
            "streaming-to-peer" => drop(s.stream(Some(peer)).unwrap()),
            _ => {}
        }
        s
    }

    /// Every operation in every state gives the result the WIT docs name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_operation_in_every_state_gives_the_documented_result() {
        let peer_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = peer_socket.local_addr().unwrap();
        let states = [
            "unbound",
            "bind-started",
            "bound",
            "streaming",
            "streaming-to-peer",
        ];
        type Op = fn(&mut UdpSocket, &Grant, SocketAddr) -> &'static str;
        let table: [(&str, Op, [&str; 5]); 8] = [
            (
                "start-bind",
                |s, g, _| show(s.start_bind(g, "127.0.0.1:0".parse().unwrap())),
                [
                    "ok",
                    "concurrency-conflict",
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
                ],
            ),
            (
                "stream none",
                |s, _, _| show(s.stream(None)),
                ["invalid-state", "invalid-state", "ok", "ok", "ok"],
            ),
            (
                "stream peer",
                |s, _, p| show(s.stream(Some(p))),
                ["invalid-state", "invalid-state", "ok", "ok", "ok"],
            ),
            (
                "local-address",
                |s, _, _| show(s.local_address()),
                ["invalid-state", "invalid-state", "ok", "ok", "ok"],
            ),
            (
                "remote-address",
                |s, _, _| show(s.remote_address()),
                [
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "invalid-state",
                    "ok",
                ],
            ),
            (
                "set-unicast-hop-limit 0",
                |s, _, _| show(s.set_unicast_hop_limit(0)),
                ["invalid-argument"; 5],
            ),
            (
                "set-receive-buffer-size 0",
                |s, _, _| show(s.set_receive_buffer_size(0)),
                ["invalid-argument"; 5],
            ),
        ];
        let network = grant();
        let mut wrong = Vec::new();
        for (op, run, expected) in table {
            for (state, want) in states.iter().zip(expected) {
                let mut socket = in_state(&network, state, peer);
                let got = run(&mut socket, &network, peer);
                if got != want {
                    wrong.push(format!("{op} in {state}: got {got}, the docs say {want}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn options_read_back_and_reject_zero() {
        for family in [Family::V4, Family::V6] {
            let s = UdpSocket::new(family).unwrap();
            assert_eq!(s.family(), family);
            s.set_unicast_hop_limit(17).unwrap();
            assert_eq!(s.unicast_hop_limit().unwrap(), 17);
            assert_eq!(show(s.set_unicast_hop_limit(0)), "invalid-argument");
            s.set_send_buffer_size(64 * 1024).unwrap();
            assert!(s.send_buffer_size().unwrap() >= 64 * 1024);
            s.set_receive_buffer_size(64 * 1024).unwrap();
            assert!(s.receive_buffer_size().unwrap() >= 64 * 1024);
            assert_eq!(show(s.set_send_buffer_size(0)), "invalid-argument");
        }
    }

    fn send(out: &mut OutgoingDatagramStream, batch: &[(&[u8], Option<SocketAddr>)]) -> String {
        match out.send(batch.iter().copied()) {
            Ok(n) => format!("sent {n}"),
            Err(SendError::Code(code)) => code.as_str().to_string(),
            Err(SendError::Unpermitted) => "trap".to_string(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_follows_the_permit_and_destination_rules() {
        let peer_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = peer_socket.local_addr().unwrap();
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let network = grant();

        let mut unconnected = in_state(&network, "bound", peer);
        let (_, mut out) = unconnected.stream(None).unwrap();
        assert_eq!(
            send(&mut out, &[(b"x", Some(peer))]),
            "trap",
            "no permit yet"
        );
        // Writability is known once the reactor has seen the socket: wait as a guest would.
        out.ready().await;
        assert_eq!(Some(out.check_send()), Limit::Datagrams.default_value());
        assert_eq!(send(&mut out, &[]), "sent 0");
        assert_eq!(
            send(&mut out, &[(b"x", None)]),
            "invalid-argument",
            "no destination"
        );
        out.check_send();
        assert_eq!(
            send(&mut out, &[(b"x", Some("0.0.0.0:80".parse().unwrap()))]),
            "invalid-argument"
        );
        out.check_send();
        assert_eq!(
            send(&mut out, &[(b"x", Some("[::1]:80".parse().unwrap()))]),
            "invalid-argument"
        );
        out.check_send();
        let huge = vec![0; MAX_DATAGRAM + 1];
        assert_eq!(send(&mut out, &[(&huge, Some(peer))]), "datagram-too-large");
        out.check_send();
        assert_eq!(
            send(&mut out, &[(b"a", Some(peer)), (b"b", Some(peer))]),
            "sent 2"
        );
        // The permit is spent by a send; more than it allowed traps.
        assert_eq!(send(&mut out, &[(b"c", Some(peer))]), "trap");
        let too_many: Vec<(&[u8], Option<SocketAddr>)> =
            vec![(b"d", Some(peer)); Limit::Datagrams.default_value().unwrap() as usize + 1];
        out.check_send();
        assert_eq!(send(&mut out, &too_many), "trap");

        let mut connected = in_state(&network, "bound", peer);
        let (_, mut out) = connected.stream(Some(peer)).unwrap();
        out.ready().await;
        out.check_send();
        assert_eq!(
            send(&mut out, &[(b"e", Some(other))]),
            "invalid-argument",
            "another peer"
        );
        out.check_send();
        assert_eq!(
            send(&mut out, &[(b"f", None), (b"g", Some(peer))]),
            "sent 2"
        );

        let mut buf = [0; 8];
        let got: Vec<u8> = (0..4)
            .map(|_| {
                let (n, _) = peer_socket.recv_from(&mut buf).unwrap();
                buf[..n][0]
            })
            .collect();
        assert_eq!(got, b"abfg");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receive_returns_nothing_for_zero_and_never_would_block() {
        let network = grant();
        let mut s = in_state(&network, "bound", "127.0.0.1:9".parse().unwrap());
        let (mut incoming, _) = s.stream(None).unwrap();
        assert!(incoming.receive(0, owned).unwrap().is_empty());
        assert!(
            incoming.receive(10, owned).unwrap().is_empty(),
            "nothing has arrived"
        );
        let to = s.local_address().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"one", to).unwrap();
        sender.send_to(b"two", to).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            incoming.ready().await;
            got.extend(incoming.receive(10, owned).unwrap());
        }
        assert_eq!(got[0], (b"one".to_vec(), sender.local_addr().unwrap()));
        assert_eq!(got[1].0, b"two");
    }

    /// A received datagram as the tests keep it: its payload and who sent it.
    fn owned(data: &[u8], from: SocketAddr) -> (Vec<u8>, SocketAddr) {
        (data.to_vec(), from)
    }

    /// A `tracing` subscriber that counts denials (`capnet.verdict = "deny"`).
    #[derive(Default)]
    struct Denials(std::sync::atomic::AtomicUsize);

    impl tracing::Subscriber for Denials {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Deny(bool);
            impl tracing::field::Visit for Deny {
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    self.0 |= field.name() == "capnet.verdict" && value == "deny";
                }
                fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
            }
            let mut deny = Deny(false);
            event.record(&mut deny);
            if deny.0 {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Limiting a stream to a peer decides quietly whether the peer may be heard: with only
    /// `udp-send` allowed, nothing was received, so no denial is logged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn limiting_a_stream_to_a_peer_logs_no_receive_decision() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let policy = capnet_policy::Policy::builder()
            .rule(capnet_policy::Verdict::Allow, "udp-send", "127.0.0.1:9")
            .unwrap()
            .build();
        let grant = Grant::new(Arc::new(policy), Arc::from("test"));
        let mut socket = UdpSocket::new(Family::V4).unwrap();
        socket
            .start_bind(&grant, "0.0.0.0:0".parse().unwrap())
            .unwrap();
        socket.finish_bind().unwrap();
        let denials = Arc::new(Denials::default());
        let streams =
            tracing::subscriber::with_default(denials.clone(), || socket.stream(Some(peer)));
        assert!(
            streams.is_ok(),
            "the send right is enough to limit the stream"
        );
        assert_eq!(denials.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    /// Linux gives back a port the system chose when a connected socket is disconnected; the
    /// socket keeps it (0.2's `%stream` to another peer disconnects first, as 0.3's
    /// `disconnect` does), on the unspecified address as on a bound one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disconnecting_keeps_the_port_the_system_chose() {
        let g = grant();
        let peers = ["127.0.0.1:9", "127.0.0.1:10"].map(|p| p.parse::<SocketAddr>().unwrap());
        for local in ["127.0.0.1:0", "0.0.0.0:0"] {
            let mut s = UdpSocket::new(Family::V4).unwrap();
            s.start_bind(&g, local.parse().unwrap()).unwrap();
            s.finish_bind().unwrap();
            let bound = s.local_address().unwrap();
            s.set_remote(Some(peers[0])).unwrap();
            s.set_remote(Some(peers[1])).unwrap();
            assert_eq!(s.local_address().unwrap().port(), bound.port(), "{local}");
            s.set_remote(None).unwrap();
            assert_eq!(s.local_address().unwrap(), bound, "{local}, disconnected");
        }
    }
}
