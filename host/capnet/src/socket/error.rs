//! The socket core's errors: what went wrong, in the words every WIT generation of
//! `wasi:sockets` shares. Each front end maps these to its own generated `error-code`.
//!
//! OS errors map by errno first, then by [`io::ErrorKind`], and fall back to `unknown`.

use std::fmt;
use std::io;

/// Why a socket operation failed; the front end turns it into its WIT's `error-code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A failure with no better name.
    Unknown,
    /// The policy, or the OS, refused the use.
    AccessDenied,
    /// The operation is not supported.
    NotSupported,
    /// An argument is invalid (wrong family, multicast, port 0, ...).
    InvalidArgument,
    /// Not enough memory or buffer space.
    OutOfMemory,
    /// The operation timed out.
    Timeout,
    /// Another operation of the same kind is in progress.
    ConcurrencyConflict,
    /// A `finish-*` with no `start-*` before it.
    NotInProgress,
    /// The operation would block; try again when ready.
    WouldBlock,
    /// The socket is not in a state that allows the operation.
    InvalidState,
    /// No more sockets may be opened.
    NewSocketLimit,
    /// The address cannot be bound.
    AddressNotBindable,
    /// The address is in use.
    AddressInUse,
    /// The remote address cannot be reached.
    RemoteUnreachable,
    /// The peer refused the connection.
    ConnectionRefused,
    /// The peer reset the connection.
    ConnectionReset,
    /// The connection was aborted.
    ConnectionAborted,
    /// The connection takes no more writes: the peer is gone (`EPIPE`).
    ConnectionBroken,
    /// The datagram is too large to send.
    DatagramTooLarge,
    /// The name does not resolve.
    NameUnresolvable,
    /// A lookup failed for now; it may work later.
    TemporaryResolverFailure,
    /// A lookup failed for good.
    PermanentResolverFailure,
}

impl ErrorCode {
    /// The kebab-case name every WIT generation gives the code, as logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "unknown",
            ErrorCode::AccessDenied => "access-denied",
            ErrorCode::NotSupported => "not-supported",
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::OutOfMemory => "out-of-memory",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ConcurrencyConflict => "concurrency-conflict",
            ErrorCode::NotInProgress => "not-in-progress",
            ErrorCode::WouldBlock => "would-block",
            ErrorCode::InvalidState => "invalid-state",
            ErrorCode::NewSocketLimit => "new-socket-limit",
            ErrorCode::AddressNotBindable => "address-not-bindable",
            ErrorCode::AddressInUse => "address-in-use",
            ErrorCode::RemoteUnreachable => "remote-unreachable",
            ErrorCode::ConnectionRefused => "connection-refused",
            ErrorCode::ConnectionReset => "connection-reset",
            ErrorCode::ConnectionAborted => "connection-aborted",
            ErrorCode::ConnectionBroken => "connection-broken",
            ErrorCode::DatagramTooLarge => "datagram-too-large",
            ErrorCode::NameUnresolvable => "name-unresolvable",
            ErrorCode::TemporaryResolverFailure => "temporary-resolver-failure",
            ErrorCode::PermanentResolverFailure => "permanent-resolver-failure",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ErrorCode {}

impl From<io::Error> for ErrorCode {
    fn from(error: io::Error) -> Self {
        error_code_of(&error)
    }
}

/// Maps an OS error to the code that names it.
pub fn error_code_of(error: &io::Error) -> ErrorCode {
    if let Some(code) = error.raw_os_error().and_then(errno_code) {
        return code;
    }
    match error.kind() {
        io::ErrorKind::PermissionDenied => ErrorCode::AccessDenied,
        io::ErrorKind::AddrInUse => ErrorCode::AddressInUse,
        io::ErrorKind::AddrNotAvailable => ErrorCode::AddressNotBindable,
        io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
        io::ErrorKind::ConnectionReset => ErrorCode::ConnectionReset,
        io::ErrorKind::ConnectionAborted => ErrorCode::ConnectionAborted,
        io::ErrorKind::BrokenPipe => ErrorCode::ConnectionBroken,
        io::ErrorKind::TimedOut => ErrorCode::Timeout,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::NetworkDown => ErrorCode::RemoteUnreachable,
        io::ErrorKind::InvalidInput => ErrorCode::InvalidArgument,
        io::ErrorKind::OutOfMemory => ErrorCode::OutOfMemory,
        io::ErrorKind::WouldBlock => ErrorCode::WouldBlock,
        io::ErrorKind::Unsupported => ErrorCode::NotSupported,
        io::ErrorKind::NotConnected => ErrorCode::InvalidState,
        _ => ErrorCode::Unknown,
    }
}

fn errno_code(errno: i32) -> Option<ErrorCode> {
    Some(match errno {
        libc::EACCES | libc::EPERM => ErrorCode::AccessDenied,
        libc::EOPNOTSUPP => ErrorCode::NotSupported,
        libc::EINVAL | libc::EAFNOSUPPORT => ErrorCode::InvalidArgument,
        libc::ENOMEM | libc::ENOBUFS => ErrorCode::OutOfMemory,
        libc::ETIMEDOUT => ErrorCode::Timeout,
        libc::EALREADY => ErrorCode::ConcurrencyConflict,
        libc::EWOULDBLOCK => ErrorCode::WouldBlock,
        libc::EISCONN | libc::ENOTCONN | libc::EDESTADDRREQ => ErrorCode::InvalidState,
        libc::EMFILE | libc::ENFILE => ErrorCode::NewSocketLimit,
        libc::EADDRNOTAVAIL => ErrorCode::AddressNotBindable,
        libc::EADDRINUSE => ErrorCode::AddressInUse,
        libc::EHOSTUNREACH
        | libc::EHOSTDOWN
        | libc::ENETUNREACH
        | libc::ENETDOWN
        | libc::ENONET => ErrorCode::RemoteUnreachable,
        libc::ECONNREFUSED => ErrorCode::ConnectionRefused,
        libc::ECONNRESET => ErrorCode::ConnectionReset,
        libc::ECONNABORTED => ErrorCode::ConnectionAborted,
        libc::EPIPE => ErrorCode::ConnectionBroken,
        libc::EMSGSIZE => ErrorCode::DatagramTooLarge,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_maps_to_the_code_its_wit_docs_name() {
        let table = [
            (libc::EACCES, ErrorCode::AccessDenied),
            (libc::EPERM, ErrorCode::AccessDenied),
            (libc::EOPNOTSUPP, ErrorCode::NotSupported),
            (libc::EINVAL, ErrorCode::InvalidArgument),
            (libc::EAFNOSUPPORT, ErrorCode::InvalidArgument),
            (libc::ENOMEM, ErrorCode::OutOfMemory),
            (libc::ENOBUFS, ErrorCode::OutOfMemory),
            (libc::ETIMEDOUT, ErrorCode::Timeout),
            (libc::EALREADY, ErrorCode::ConcurrencyConflict),
            (libc::EAGAIN, ErrorCode::WouldBlock),
            (libc::EISCONN, ErrorCode::InvalidState),
            (libc::ENOTCONN, ErrorCode::InvalidState),
            (libc::EDESTADDRREQ, ErrorCode::InvalidState),
            (libc::EMFILE, ErrorCode::NewSocketLimit),
            (libc::ENFILE, ErrorCode::NewSocketLimit),
            (libc::EADDRNOTAVAIL, ErrorCode::AddressNotBindable),
            (libc::EADDRINUSE, ErrorCode::AddressInUse),
            (libc::EHOSTUNREACH, ErrorCode::RemoteUnreachable),
            (libc::EHOSTDOWN, ErrorCode::RemoteUnreachable),
            (libc::ENETUNREACH, ErrorCode::RemoteUnreachable),
            (libc::ENETDOWN, ErrorCode::RemoteUnreachable),
            (libc::ENONET, ErrorCode::RemoteUnreachable),
            (libc::ECONNREFUSED, ErrorCode::ConnectionRefused),
            (libc::ECONNRESET, ErrorCode::ConnectionReset),
            (libc::ECONNABORTED, ErrorCode::ConnectionAborted),
            (libc::EPIPE, ErrorCode::ConnectionBroken),
            (libc::EMSGSIZE, ErrorCode::DatagramTooLarge),
            (libc::EIO, ErrorCode::Unknown),
        ];
        for (errno, expected) in table {
            let got = error_code_of(&io::Error::from_raw_os_error(errno));
            assert_eq!(
                got.as_str(),
                expected.as_str(),
                "errno {errno} ({})",
                io::Error::from_raw_os_error(errno)
            );
        }
    }

    #[test]
    fn errors_without_errno_map_by_kind() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "no");
        assert_eq!(error_code_of(&refused).as_str(), "connection-refused");
        let other = io::Error::other("strange");
        assert_eq!(error_code_of(&other).as_str(), "unknown");
    }
}
