//! Socket activation: listening sockets a service manager (systemd, `systemd-socket-activate`)
//! passed to `capnet run`, adopted as pre-opened listeners the same way `--tcplisten` binds them.
//!
//! The protocol is systemd's: descriptors from 3 on, `LISTEN_FDS` of them, for the process whose
//! id is `LISTEN_PID`, optionally named by `LISTEN_FDNAMES` (colon separated). Descriptors meant
//! for another process (a `LISTEN_PID` that is not ours, or none) are left alone, as
//! `sd_listen_fds` does.

use std::net::{SocketAddr, TcpListener};

/// The first descriptor a service manager passes.
const FIRST_FD: i32 = 3;

/// What a socket must be for capnet to adopt it, said the way a unit file says it.
const WANTED: &str = "capnet adopts listening TCP sockets: ListenStream=[ADDR:]PORT with Accept=no";

/// One listening socket passed by the service manager.
#[derive(Debug)]
pub struct Activated {
    /// Its descriptor number, for messages.
    pub fd: i32,
    /// Its name from `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`, by default the unit's
    /// name), if the manager gave names.
    pub name: Option<String>,
    /// The listener, close-on-exec.
    pub listener: TcpListener,
    /// Where it listens on the host.
    pub addr: SocketAddr,
}

impl Activated {
    /// `fd 3 ("web")` or `fd 3`, for messages.
    pub fn describe(&self) -> String {
        describe(self.fd, self.name.as_deref())
    }
}

fn describe(fd: i32, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("fd {fd} ({name:?})"),
        None => format!("fd {fd}"),
    }
}

/// The listeners passed to this process, not yet handed to the guest.
#[derive(Debug, Default)]
pub struct ActivatedListeners(Vec<Activated>);

impl ActivatedListeners {
    /// Adopts the sockets the service manager passed to this process, if it passed any.
    ///
    /// `LISTEN_PID` and `LISTEN_FDS` are removed from capnet's environment; none of the three
    /// variables reaches the guest, whose environment holds only what `--env` gives it.
    ///
    /// # Errors
    /// A passed descriptor that is not a TCP socket, or not listening; a `LISTEN_FDNAMES` whose
    /// count of names is not `LISTEN_FDS`.
    pub fn from_env() -> Result<Self, String> {
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            == Some(std::process::id());
        let names = std::env::var("LISTEN_FDNAMES").ok();
        // Reads LISTEN_FDS and removes it and LISTEN_PID, whoever they were meant for.
        let mut fds = listenfd::ListenFd::from_env();
        if !ours || fds.len() == 0 {
            return Ok(Self::default());
        }
        let names: Vec<Option<String>> = match names {
            None => vec![None; fds.len()],
            Some(names) => {
                let names: Vec<_> = names.split(':').map(|n| Some(n.to_owned())).collect();
                if names.len() != fds.len() {
                    return Err(format!(
                        "socket activation: LISTEN_FDNAMES names {} socket(s) but LISTEN_FDS passes {}",
                        names.len(),
                        fds.len()
                    ));
                }
                names
            }
        };
        let mut adopted = Vec::with_capacity(names.len());
        for (index, name) in names.into_iter().enumerate() {
            let fd = FIRST_FD + index as i32;
            let describe = describe(fd, name.as_deref());
            let listener = match fds.take_tcp_listener(index) {
                Ok(Some(listener)) => listener,
                Ok(None) => return Err(format!("socket activation: {describe} is not open")),
                Err(e) => {
                    return Err(format!(
                        "socket activation: {describe} is not a TCP socket ({e}); {WANTED}"
                    ));
                }
            };
            let listening = socket2::SockRef::from(&listener)
                .is_listener()
                .map_err(|e| format!("socket activation: {describe}: {e}"))?;
            if !listening {
                return Err(format!(
                    "socket activation: {describe} is a TCP socket that is not listening; {WANTED}"
                ));
            }
            let addr = listener
                .local_addr()
                .map_err(|e| format!("socket activation: {describe}: {e}"))?;
            adopted.push(Activated {
                fd,
                name,
                listener,
                addr,
            });
        }
        Ok(Self(adopted))
    }

    /// Takes the listener bound to exactly `addr`, if one was passed (never for port 0).
    pub fn take_at(&mut self, addr: SocketAddr) -> Option<Activated> {
        let at = self.0.iter().position(|a| a.addr == addr)?;
        Some(self.0.remove(at))
    }

    /// Takes the listener named `name` by `LISTEN_FDNAMES`.
    ///
    /// # Errors
    /// When no passed socket has that name: says which names there are.
    pub fn take_named(&mut self, name: &str) -> Result<Activated, String> {
        if let Some(at) = self.0.iter().position(|a| a.name.as_deref() == Some(name)) {
            return Ok(self.0.remove(at));
        }
        let names: Vec<_> = self.0.iter().filter_map(|a| a.name.as_deref()).collect();
        Err(if names.is_empty() {
            format!(
                "no socket named {name:?} was passed by a service manager (no LISTEN_FDNAMES for this process)"
            )
        } else {
            format!(
                "no socket named {name:?} was passed by the service manager (LISTEN_FDNAMES left: {})",
                names.join(", ")
            )
        })
    }

    /// Every listener no `--tcplisten` asked for by address or name.
    pub fn into_rest(self) -> Vec<Activated> {
        self.0
    }
}
