//! The error type of the 0.3 sockets interfaces: a WIT `error-code` for the guest, or a trap.
//!
//! 0.3's codes are fewer than the core's: a core code with no 0.3 twin reaches the guest as
//! `other` with the core's name (`other(some("new-socket-limit"))`), so nothing is lost.

use crate::p3::bindings::sockets::ip_name_lookup::ErrorCode as LookupCode;
use crate::p3::bindings::sockets::types::ErrorCode;
use crate::socket::ErrorCode as Core;

/// The result type of every fallible 0.3 `types` call.
pub type SocketResult<T> = Result<T, SocketError>;

/// An `error-code` returned to the guest, or a trap that ends the guest's instance.
pub type SocketError = crate::trappable::TrappableError<ErrorCode>;

impl From<Core> for ErrorCode {
    fn from(code: Core) -> Self {
        match code {
            Core::AccessDenied => ErrorCode::AccessDenied,
            Core::NotSupported => ErrorCode::NotSupported,
            Core::InvalidArgument => ErrorCode::InvalidArgument,
            Core::OutOfMemory => ErrorCode::OutOfMemory,
            Core::Timeout => ErrorCode::Timeout,
            // 0.3 calls are whole operations: a second one in flight is the wrong state.
            Core::InvalidState | Core::ConcurrencyConflict | Core::NotInProgress => {
                ErrorCode::InvalidState
            }
            Core::AddressNotBindable => ErrorCode::AddressNotBindable,
            Core::AddressInUse => ErrorCode::AddressInUse,
            Core::RemoteUnreachable => ErrorCode::RemoteUnreachable,
            Core::ConnectionRefused => ErrorCode::ConnectionRefused,
            Core::ConnectionReset => ErrorCode::ConnectionReset,
            Core::ConnectionAborted => ErrorCode::ConnectionAborted,
            Core::ConnectionBroken => ErrorCode::ConnectionBroken,
            Core::DatagramTooLarge => ErrorCode::DatagramTooLarge,
            Core::Unknown => ErrorCode::Other(None),
            Core::WouldBlock
            | Core::NewSocketLimit
            | Core::NameUnresolvable
            | Core::TemporaryResolverFailure
            | Core::PermanentResolverFailure => ErrorCode::Other(Some(code.as_str().to_owned())),
        }
    }
}

impl From<Core> for LookupCode {
    fn from(code: Core) -> Self {
        match code {
            Core::AccessDenied => LookupCode::AccessDenied,
            Core::InvalidArgument => LookupCode::InvalidArgument,
            Core::NameUnresolvable => LookupCode::NameUnresolvable,
            Core::TemporaryResolverFailure => LookupCode::TemporaryResolverFailure,
            Core::PermanentResolverFailure => LookupCode::PermanentResolverFailure,
            Core::Unknown => LookupCode::Other(None),
            other => LookupCode::Other(Some(other.as_str().to_owned())),
        }
    }
}

impl crate::p3::bindings::sockets::types::Host for crate::ctx::CapnetCtxView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.into_code()
    }
}
