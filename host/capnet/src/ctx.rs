//! The per-instance context: the instance's root grant and the sockets pre-opened for it.

use crate::grant::{Grant, PolicyHandle, Recorder};
use capnet_policy::Policy;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::ResourceTable;

/// capnet's state for one component instance. Build it with [`CapnetCtx::builder`].
///
/// The default context denies every network use and pre-opens nothing.
#[derive(Debug)]
pub struct CapnetCtx {
    pub(crate) root: Grant,
    pub(crate) preopens: Preopens,
    /// Each library's grant, made at the library's first use (see [`crate::library`]).
    pub(crate) libraries: HashMap<Arc<str>, Grant>,
    /// The 0.2 streams of its TCP connections, which `read` and `write` serve straight
    /// between the socket and guest memory.
    pub(crate) streams: crate::p2::streams::Streams,
}

impl Default for CapnetCtx {
    fn default() -> Self {
        CapnetCtxBuilder::new().build()
    }
}

impl CapnetCtx {
    /// A builder starting from deny-by-default and no pre-opened sockets.
    pub fn builder() -> CapnetCtxBuilder {
        CapnetCtxBuilder::new()
    }

    /// A handle to replace this instance's policy while it runs (e.g. on a reload of the
    /// policy file); take it before the context moves into the store.
    pub fn policy_handle(&self) -> PolicyHandle {
        self.root.policy_handle().clone()
    }
}

/// Builds a [`CapnetCtx`].
#[derive(Debug)]
pub struct CapnetCtxBuilder {
    policy: Arc<Policy>,
    instance: Arc<str>,
    preopens: Vec<Preopen>,
    name_servers: Option<Vec<SocketAddr>>,
    recorder: Option<Arc<Recorder>>,
}

impl CapnetCtxBuilder {
    /// Deny-by-default, no pre-opens, instance named `component`.
    pub fn new() -> Self {
        Self {
            policy: Arc::new(Policy::deny_all()),
            instance: Arc::from("component"),
            preopens: Vec::new(),
            name_servers: None,
            recorder: None,
        }
    }

    /// Learn mode: every use the policy denies only by default (no deny rule names it) is
    /// allowed instead and recorded in `recorder`, for the app or, through a library's own
    /// grant, for that library; from the record a least-privilege policy can be written.
    /// Deny rules still win. For finding what a workload needs, never for running it.
    pub fn learn(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The DNS servers name lookups ask (UDP, and TCP on the same port when an answer is
    /// truncated), instead of the system's from /etc/resolv.conf. Answers carry TTLs, which
    /// bound how long a DNS-pinned grant lets the guest connect to the addresses returned.
    /// `localhost` and /etc/hosts names are still answered locally.
    pub fn name_servers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.name_servers = Some(servers.into_iter().collect());
        self
    }

    /// The policy every `network` of this instance is checked against.
    pub fn policy(mut self, policy: impl Into<Arc<Policy>>) -> Self {
        self.policy = policy.into();
        self
    }

    /// The name decision logs give this instance.
    pub fn instance_name(mut self, name: &str) -> Self {
        self.instance = Arc::from(name);
        self
    }

    /// Hands the guest a listening socket it may serve on with no bind or listen right.
    ///
    /// The guest gets it from `capnet:sockets/preopens`, or by binding `guest_addr` (or the
    /// listener's own address when `None`) the ordinary way, as an unmodified guest would.
    ///
    /// # Errors
    /// When the listener's local address cannot be read or it cannot be made non-blocking.
    pub fn tcp_listener(
        mut self,
        listener: std::net::TcpListener,
        guest_addr: Option<SocketAddr>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let guest_addr = match guest_addr {
            Some(addr) => addr,
            None => listener.local_addr()?,
        };
        self.preopens.push(Preopen {
            listener: Some(listener),
            guest_addr: normalize_socket_addr(guest_addr),
        });
        Ok(self)
    }

    /// The context.
    pub fn build(self) -> CapnetCtx {
        CapnetCtx {
            root: Grant::with_dns(
                PolicyHandle::new(self.policy, self.recorder),
                self.instance,
                crate::grant::Dns::new(self.name_servers),
            ),
            preopens: Preopens(self.preopens),
            libraries: HashMap::new(),
            streams: Default::default(),
        }
    }
}

impl Default for CapnetCtxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Listening sockets opened by the runtime, each claimable once by the guest.
#[derive(Debug, Default)]
pub(crate) struct Preopens(Vec<Preopen>);

#[derive(Debug)]
struct Preopen {
    listener: Option<std::net::TcpListener>,
    guest_addr: SocketAddr,
}

impl Preopens {
    /// Takes the pre-opened listener a guest names by binding `addr` through `grant`, if there
    /// is one and `grant` is the instance's own: the runtime opened it for the app, and a
    /// library or a narrowed `network` holds only what its own rules name.
    pub(crate) fn claim_for(
        &mut self,
        grant: &Grant,
        addr: SocketAddr,
    ) -> Option<std::net::TcpListener> {
        if !grant.is_root() {
            return None;
        }
        let addr = normalize_socket_addr(addr);
        self.0
            .iter_mut()
            .find(|p| p.listener.is_some() && same_endpoint(p.guest_addr, addr))
            .and_then(|p| p.listener.take())
    }

    /// Whether the runtime pre-opened any listener for the instance, claimed or not.
    pub(crate) fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Takes every listener not yet claimed, with the address the guest knows it by.
    pub(crate) fn take_all(&mut self) -> Vec<(std::net::TcpListener, SocketAddr)> {
        self.0
            .iter_mut()
            .filter_map(|p| p.listener.take().map(|l| (l, p.guest_addr)))
            .collect()
    }
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

fn normalize_socket_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(capnet_policy::normalize(addr.ip()), addr.port())
}

/// What the sockets implementation borrows from the store: the context and the resource table.
pub struct CapnetCtxView<'a> {
    /// The instance's capnet context.
    pub ctx: &'a mut CapnetCtx,
    /// The store's resource table, shared with the rest of WASI.
    pub table: &'a mut ResourceTable,
}

/// Implemented by a store's data to give capnet its context, like `wasmtime_wasi::WasiView`.
pub trait CapnetView: Send {
    /// Borrows the context and the table.
    fn capnet(&mut self) -> CapnetCtxView<'_>;
}
