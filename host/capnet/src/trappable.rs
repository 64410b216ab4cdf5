//! The error type of every front's fallible socket calls: an `error-code` of that front's WIT
//! for the guest, or a trap for a host-side fault (a resource-table miss, a bug). The socket
//! core's codes and OS errors convert into whichever front's code they meet.

use crate::socket::ErrorCode as Core;
use std::fmt;
use std::io;

/// An `error-code` (`C`, a front's generated type) returned to the guest, or a trap that ends
/// the guest's instance.
pub struct TrappableError<C>(Repr<C>);

enum Repr<C> {
    Code(C),
    Trap(wasmtime::Error),
}

impl<C> TrappableError<C> {
    /// An error the guest sees as `code`.
    pub fn code(code: C) -> Self {
        Self(Repr::Code(code))
    }

    /// An error that traps the guest instead of being returned to it.
    pub fn trap(error: impl Into<wasmtime::Error>) -> Self {
        Self(Repr::Trap(error.into()))
    }

    /// The code the guest sees, or the trap to raise.
    pub fn into_code(self) -> wasmtime::Result<C> {
        match self.0 {
            Repr::Code(code) => Ok(code),
            Repr::Trap(error) => Err(error),
        }
    }

    /// The code, if this error is one the guest sees.
    pub fn as_code(&self) -> Option<&C> {
        match &self.0 {
            Repr::Code(code) => Some(code),
            Repr::Trap(_) => None,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for TrappableError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => write!(f, "{code:?}"),
            Repr::Trap(error) => write!(f, "trap: {error:?}"),
        }
    }
}

impl<C: fmt::Debug> fmt::Display for TrappableError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => write!(f, "{code:?}"),
            Repr::Trap(error) => write!(f, "trap: {error}"),
        }
    }
}

impl<C: fmt::Debug> std::error::Error for TrappableError<C> {}

impl<C: From<Core>> From<Core> for TrappableError<C> {
    fn from(code: Core) -> Self {
        Self::code(code.into())
    }
}

impl<C: From<Core>> From<io::Error> for TrappableError<C> {
    fn from(error: io::Error) -> Self {
        Core::from(error).into()
    }
}

impl<C> From<wasmtime::component::ResourceTableError> for TrappableError<C> {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        Self::trap(error)
    }
}
