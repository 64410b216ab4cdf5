//! The one error type of the sockets interfaces: a WIT `error-code` for the guest, or a trap.
//!
//! Every failure a guest can cause or observe is an [`ErrorCode`]; only host-side faults (a
//! resource-table miss, a bug) trap. OS errors map by errno first, then by [`io::ErrorKind`],
//! and fall back to `unknown`.

use crate::bindings::sockets::network::ErrorCode;
use std::fmt;
use std::io;

/// The result type of every fallible sockets call.
pub type SocketResult<T> = Result<T, SocketError>;

/// An `error-code` returned to the guest, or a trap that ends the guest's instance.
pub struct SocketError(Repr);

enum Repr {
    Code(ErrorCode),
    Trap(wasmtime::Error),
}

impl SocketError {
    /// An error that traps the guest instead of being returned to it.
    pub fn trap(error: impl Into<wasmtime::Error>) -> Self {
        Self(Repr::Trap(error.into()))
    }

    /// The code the guest sees, or the trap to raise.
    pub fn into_code(self) -> wasmtime::Result<ErrorCode> {
        match self.0 {
            Repr::Code(code) => Ok(code),
            Repr::Trap(error) => Err(error),
        }
    }

    /// The code, if this error is one the guest sees.
    pub fn code(&self) -> Option<ErrorCode> {
        match &self.0 {
            Repr::Code(code) => Some(*code),
            Repr::Trap(_) => None,
        }
    }
}

impl fmt::Debug for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => write!(f, "{}", code_name(*code)),
            Repr::Trap(error) => write!(f, "trap: {error:?}"),
        }
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => f.write_str(code_name(*code)),
            Repr::Trap(error) => write!(f, "trap: {error}"),
        }
    }
}

impl std::error::Error for SocketError {}

impl From<ErrorCode> for SocketError {
    fn from(code: ErrorCode) -> Self {
        Self(Repr::Code(code))
    }
}

impl From<io::Error> for SocketError {
    fn from(error: io::Error) -> Self {
        Self(Repr::Code(error_code_of(&error)))
    }
}

impl From<wasmtime::component::ResourceTableError> for SocketError {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        Self::trap(error)
    }
}

impl From<io::Error> for ErrorCode {
    fn from(error: io::Error) -> Self {
        error_code_of(&error)
    }
}

/// Maps an OS error to the WIT code that names it.
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
        io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            ErrorCode::ConnectionAborted
        }
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
        libc::ECONNABORTED | libc::EPIPE => ErrorCode::ConnectionAborted,
        libc::EMSGSIZE => ErrorCode::DatagramTooLarge,
        _ => return None,
    })
}

/// The WIT spelling of an error code, as guests and logs show it.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
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
        ErrorCode::DatagramTooLarge => "datagram-too-large",
        ErrorCode::NameUnresolvable => "name-unresolvable",
        ErrorCode::TemporaryResolverFailure => "temporary-resolver-failure",
        ErrorCode::PermanentResolverFailure => "permanent-resolver-failure",
    }
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
            (libc::EPIPE, ErrorCode::ConnectionAborted),
            (libc::EMSGSIZE, ErrorCode::DatagramTooLarge),
            (libc::EIO, ErrorCode::Unknown),
        ];
        for (errno, expected) in table {
            let got = error_code_of(&io::Error::from_raw_os_error(errno));
            assert_eq!(
                code_name(got),
                code_name(expected),
                "errno {errno} ({})",
                io::Error::from_raw_os_error(errno)
            );
        }
    }

    #[test]
    fn errors_without_errno_map_by_kind() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "no");
        assert_eq!(code_name(error_code_of(&refused)), "connection-refused");
        let other = io::Error::other("strange");
        assert_eq!(code_name(error_code_of(&other)), "unknown");
    }
}
