//! The 0.2 sockets interfaces' errors: a WIT [`ErrorCode`] for the guest, or a trap (see
//! [`crate::trappable`]), and the mapping from the socket core's codes.

use crate::p2::bindings::sockets::network::ErrorCode;
use crate::socket::ErrorCode as Core;

/// The result type of every fallible sockets call.
pub type SocketResult<T> = Result<T, SocketError>;

/// An `error-code` returned to the guest, or a trap that ends the guest's instance.
pub type SocketError = crate::trappable::TrappableError<ErrorCode>;

impl From<ErrorCode> for SocketError {
    fn from(code: ErrorCode) -> Self {
        Self::code(code)
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
            // 0.2 has no `connection-broken`; a write to a peer that is gone was always this.
            Core::ConnectionAborted | Core::ConnectionBroken => ErrorCode::ConnectionAborted,
            Core::DatagramTooLarge => ErrorCode::DatagramTooLarge,
            Core::NameUnresolvable => ErrorCode::NameUnresolvable,
            Core::TemporaryResolverFailure => ErrorCode::TemporaryResolverFailure,
            Core::PermanentResolverFailure => ErrorCode::PermanentResolverFailure,
        }
    }
}

/// The WIT spelling of an error code, as guests and logs show it.
pub fn code_name(code: ErrorCode) -> &'static str {
    code.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every core code reaches the guest as the 0.2 code of the same name, but
    /// `connection-broken`, which 0.2 lacks.
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
        let broken = ErrorCode::from(Core::ConnectionBroken);
        assert_eq!(code_name(broken), "connection-aborted");
    }
}
