//! The one error type of the 0.2 sockets interfaces: a WIT `error-code` for the guest, or a
//! trap.
//!
//! Every failure a guest can cause or observe is an [`ErrorCode`]; only host-side faults (a
//! resource-table miss, a bug) trap. The socket core's codes and OS errors convert here.

use crate::p2::bindings::sockets::network::ErrorCode;
use crate::socket::ErrorCode as Core;
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
        Core::from(error).into()
    }
}

impl From<Core> for SocketError {
    fn from(code: Core) -> Self {
        Self(Repr::Code(code.into()))
    }
}

impl From<Core> for ErrorCode {
    fn from(code: Core) -> Self {
        match code {
            Core::Unknown => ErrorCode::Unknown,
            Core::AccessDenied => ErrorCode::AccessDenied,
            Core::NotSupported => ErrorCode::NotSupported,
            Core::InvalidArgument => ErrorCode::InvalidArgument,
            Core::OutOfMemory => ErrorCode::OutOfMemory,
            Core::Timeout => ErrorCode::Timeout,
            Core::ConcurrencyConflict => ErrorCode::ConcurrencyConflict,
            Core::NotInProgress => ErrorCode::NotInProgress,
            Core::WouldBlock => ErrorCode::WouldBlock,
            Core::InvalidState => ErrorCode::InvalidState,
            Core::NewSocketLimit => ErrorCode::NewSocketLimit,
            Core::AddressNotBindable => ErrorCode::AddressNotBindable,
            Core::AddressInUse => ErrorCode::AddressInUse,
            Core::RemoteUnreachable => ErrorCode::RemoteUnreachable,
            Core::ConnectionRefused => ErrorCode::ConnectionRefused,
            Core::ConnectionReset => ErrorCode::ConnectionReset,
            Core::ConnectionAborted => ErrorCode::ConnectionAborted,
            Core::DatagramTooLarge => ErrorCode::DatagramTooLarge,
            Core::NameUnresolvable => ErrorCode::NameUnresolvable,
            Core::TemporaryResolverFailure => ErrorCode::TemporaryResolverFailure,
            Core::PermanentResolverFailure => ErrorCode::PermanentResolverFailure,
        }
    }
}

impl From<wasmtime::component::ResourceTableError> for SocketError {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        Self::trap(error)
    }
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

    /// Every core code reaches the guest as the 0.2 code of the same name.
    #[test]
    fn every_core_code_becomes_the_02_code_of_its_name() {
        let all = [
            Core::Unknown,
            Core::AccessDenied,
            Core::NotSupported,
            Core::InvalidArgument,
            Core::OutOfMemory,
            Core::Timeout,
            Core::ConcurrencyConflict,
            Core::NotInProgress,
            Core::WouldBlock,
            Core::InvalidState,
            Core::NewSocketLimit,
            Core::AddressNotBindable,
            Core::AddressInUse,
            Core::RemoteUnreachable,
            Core::ConnectionRefused,
            Core::ConnectionReset,
            Core::ConnectionAborted,
            Core::DatagramTooLarge,
            Core::NameUnresolvable,
            Core::TemporaryResolverFailure,
            Core::PermanentResolverFailure,
        ];
        for core in all {
            assert_eq!(code_name(core.into()), core.as_str());
        }
    }
}
