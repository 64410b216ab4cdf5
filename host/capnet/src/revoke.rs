//! The listeners and connections an instance has open, each with the grant and the use it
//! was opened under, so that a revoker or a revoking reload can find and close them.
//!
//! Registering costs one uncontended lock at listen, connect and accept, never on the data
//! path. Closing is a `shutdown` of the socket: the peer sees the end of the stream, the
//! guest's next read ends and its next write fails, and a listener stops accepting.

use crate::grant::Grant;
use crate::socket::stream::Connection;
use capnet_policy::Use;
use std::any::Any;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use tokio::net::TcpListener;

/// What was opened, and under which authority.
pub(crate) struct Opened {
    /// The grant it was opened through.
    pub grant: Grant,
    /// `tcp-listen` (on the bound address), `tcp-connect` or `tcp-accept` (the peer).
    pub use_: Use,
    /// The address `use_` was decided on.
    pub addr: SocketAddr,
    /// The socket, without keeping it alive.
    pub what: Closable,
}

/// A socket a revocation can close.
pub(crate) enum Closable {
    /// A connected socket, shared by the `tcp-socket` and its streams.
    Connection(Weak<Connection>),
    /// A listening socket.
    Listener(Weak<TcpListener>),
}

impl Closable {
    /// Shuts the socket down both ways. Returns the handle it took to reach the socket, `None`
    /// when the socket is gone already. The caller drops that handle only after releasing the
    /// registry's lock: when the guest lets go of the socket meanwhile, it is the last handle,
    /// and the last handle of a connection removes the connection's entry under that lock.
    fn close(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        match self {
            Closable::Connection(conn) => {
                let conn = conn.upgrade()?;
                conn.revoke();
                Some(conn)
            }
            Closable::Listener(listener) => {
                let listener = listener.upgrade()?;
                // On Linux this stops the listen: queued and later peers are refused and a
                // pending accept wakes with an error.
                let _ = socket2::SockRef::from(&*listener).shutdown(Shutdown::Both);
                Some(listener)
            }
        }
    }
}

/// The open listeners and connections of one instance.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: HashMap<u64, Opened>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.lock().open.len();
        f.debug_struct("Registry").field("open", &open).finish()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `opened`; the key removes it.
    pub(crate) fn insert(&self, opened: Opened) -> u64 {
        let mut inner = self.lock();
        let key = inner.next;
        inner.next += 1;
        inner.open.insert(key, opened);
        key
    }

    /// Forgets the entry of a socket that closed.
    pub(crate) fn remove(&self, key: u64) {
        // Taken out under the lock, dropped after it: the entry holds a grant.
        let removed = self.lock().open.remove(&key);
        drop(removed);
    }

    /// Closes every open socket `refused` picks and forgets it; returns how many it closed.
    /// `refused` runs under the registry's lock, which is never held while a policy check
    /// takes its own locks elsewhere, so the order is always registry, policy, DNS pins.
    pub(crate) fn close_where(&self, refused: impl Fn(&Opened) -> bool) -> usize {
        let mut inner = self.lock();
        let keys: Vec<u64> = inner
            .open
            .iter()
            .filter(|(_, opened)| refused(opened))
            .map(|(key, _)| *key)
            .collect();
        let mut gone = Vec::with_capacity(keys.len());
        let mut handles = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(opened) = inner.open.remove(&key) {
                handles.extend(opened.what.close());
                gone.push(opened);
            }
        }
        let closed = handles.len();
        // After the lock: a handle may be the socket's last, whose drop takes the lock.
        drop(inner);
        drop(gone);
        drop(handles);
        closed
    }
}
