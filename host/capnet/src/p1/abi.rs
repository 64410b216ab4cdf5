//! The preview 1 ABI as capnet's socket functions see it: guest memory read and written at
//! the offsets `wasi_snapshot_preview1.witx` lays its records out at, and the errno a call
//! returns.
//!
//! A pointer out of bounds traps (the witx docs: "the function shall trap"); every other
//! failure is an errno the guest reads.

use crate::socket::ErrorCode;
use std::io;
use wasmtime_wasi::p1::types::Errno;

/// How a socket call ends when it does not succeed: an errno for the guest, or a trap.
pub(crate) enum Fail {
    /// Returned to the guest.
    Errno(Errno),
    /// Ends the guest: a pointer outside its memory.
    Trap(wasmtime::Error),
}

impl From<Errno> for Fail {
    fn from(errno: Errno) -> Self {
        Fail::Errno(errno)
    }
}

impl From<ErrorCode> for Fail {
    fn from(code: ErrorCode) -> Self {
        Fail::Errno(errno(code))
    }
}

impl From<io::Error> for Fail {
    fn from(error: io::Error) -> Self {
        ErrorCode::from(error).into()
    }
}

/// The result of a socket call as the ABI returns it: 0 or the errno, or a trap.
pub(crate) fn returned(result: Result<(), Fail>) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(0),
        Err(Fail::Errno(errno)) => Ok(i32::from(u16::from(errno))),
        Err(Fail::Trap(trap)) => Err(trap),
    }
}

/// The errno the socket core's error code is, as wasi-libc names the POSIX error.
pub(crate) fn errno(code: ErrorCode) -> Errno {
    match code {
        ErrorCode::Unknown => Errno::Io,
        ErrorCode::AccessDenied => Errno::Acces,
        ErrorCode::NotSupported => Errno::Notsup,
        ErrorCode::InvalidArgument => Errno::Inval,
        ErrorCode::OutOfMemory => Errno::Nomem,
        ErrorCode::Timeout => Errno::Timedout,
        ErrorCode::ConcurrencyConflict => Errno::Already,
        ErrorCode::NotInProgress => Errno::Inval,
        ErrorCode::WouldBlock => Errno::Again,
        ErrorCode::InvalidState => Errno::Notconn,
        // An accept past the `sockets` or `connections` limit, as the kernel's EMFILE.
        ErrorCode::NewSocketLimit => Errno::Mfile,
        ErrorCode::AddressNotBindable => Errno::Addrnotavail,
        ErrorCode::AddressInUse => Errno::Addrinuse,
        ErrorCode::RemoteUnreachable => Errno::Hostunreach,
        ErrorCode::ConnectionRefused => Errno::Connrefused,
        ErrorCode::ConnectionReset => Errno::Connreset,
        ErrorCode::ConnectionAborted => Errno::Connaborted,
        ErrorCode::ConnectionBroken => Errno::Pipe,
        ErrorCode::DatagramTooLarge => Errno::Msgsize,
        ErrorCode::NameUnresolvable
        | ErrorCode::TemporaryResolverFailure
        | ErrorCode::PermanentResolverFailure => Errno::Io,
    }
}

fn out_of_bounds() -> Fail {
    Fail::Trap(wasmtime::format_err!(
        "a preview 1 socket call was passed a pointer outside the guest's memory"
    ))
}

/// A guest pointer or length, as the ABI passes it.
pub(crate) fn addr(value: i32) -> usize {
    value as u32 as usize
}

/// The `len` bytes at `ptr`.
pub(crate) fn bytes(memory: &[u8], ptr: usize, len: usize) -> Result<&[u8], Fail> {
    let end = ptr.checked_add(len).ok_or_else(out_of_bounds)?;
    memory.get(ptr..end).ok_or_else(out_of_bounds)
}

/// The `len` bytes at `ptr`, to write.
pub(crate) fn bytes_mut(memory: &mut [u8], ptr: usize, len: usize) -> Result<&mut [u8], Fail> {
    let end = ptr.checked_add(len).ok_or_else(out_of_bounds)?;
    memory.get_mut(ptr..end).ok_or_else(out_of_bounds)
}

pub(crate) fn read_u16(memory: &[u8], ptr: usize) -> Result<u16, Fail> {
    let b = bytes(memory, ptr, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn read_u32(memory: &[u8], ptr: usize) -> Result<u32, Fail> {
    let b = bytes(memory, ptr, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn read_u64(memory: &[u8], ptr: usize) -> Result<u64, Fail> {
    let mut b = [0; 8];
    b.copy_from_slice(bytes(memory, ptr, 8)?);
    Ok(u64::from_le_bytes(b))
}

pub(crate) fn write_u32(memory: &mut [u8], ptr: usize, value: u32) -> Result<(), Fail> {
    bytes_mut(memory, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Writes `value` at `ptr`: `bytes` of its little-endian form (1, 2 or 8).
pub(crate) fn write_le(memory: &mut [u8], ptr: usize, value: u64, len: usize) -> Result<(), Fail> {
    bytes_mut(memory, ptr, len)?.copy_from_slice(&value.to_le_bytes()[..len]);
    Ok(())
}

/// The first non-empty buffer of an `iovec` (or `ciovec`) array at `iovs`, as `(ptr, len)`:
/// a socket call moves one buffer, as wasmtime-wasi's preview 1 does, and the guest's
/// `read`/`write` loop comes back for the rest.
pub(crate) fn first_buffer(memory: &[u8], iovs: i32, count: i32) -> Result<(usize, usize), Fail> {
    let (iovs, count) = (addr(iovs), addr(count));
    for i in 0..count {
        // An iovec is { buf: u32, buf_len: u32 }.
        let at = iovs.checked_add(i * 8).ok_or_else(out_of_bounds)?;
        let (ptr, len) = (read_u32(memory, at)?, read_u32(memory, at + 4)?);
        if len != 0 {
            let (ptr, len) = (ptr as usize, len as usize);
            bytes(memory, ptr, len)?;
            return Ok((ptr, len));
        }
    }
    Ok((0, 0))
}

/// `fdstat`: `{ fs_filetype: u8 @0, fs_flags: u16 @2, fs_rights_base: u64 @8,
/// fs_rights_inheriting: u64 @16 }`, 24 bytes.
pub(crate) const FDSTAT_SIZE: usize = 24;
/// `filestat`: 64 bytes, `filetype: u8` at 16, every other field a `u64`.
pub(crate) const FILESTAT_SIZE: usize = 64;
/// `subscription`: `{ userdata: u64 @0, tag: u8 @8, body @16 }`, 48 bytes. A clock's body is
/// `{ id: u32 @16, timeout: u64 @24, precision: u64 @32, flags: u16 @40 }`; an fd's,
/// `{ fd: u32 @16 }`.
pub(crate) const SUBSCRIPTION_SIZE: usize = 48;
/// `event`: `{ userdata: u64 @0, error: u16 @8, type: u8 @10, nbytes: u64 @16,
/// flags: u16 @24 }`, 32 bytes.
pub(crate) const EVENT_SIZE: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_code_maps_to_the_errno_posix_names_it_by() {
        let rows = [
            (ErrorCode::AccessDenied, Errno::Acces),
            (ErrorCode::WouldBlock, Errno::Again),
            (ErrorCode::NewSocketLimit, Errno::Mfile),
            (ErrorCode::ConnectionReset, Errno::Connreset),
            (ErrorCode::ConnectionAborted, Errno::Connaborted),
            (ErrorCode::ConnectionBroken, Errno::Pipe),
            (ErrorCode::ConnectionRefused, Errno::Connrefused),
            (ErrorCode::InvalidState, Errno::Notconn),
            (ErrorCode::AddressInUse, Errno::Addrinuse),
            (ErrorCode::OutOfMemory, Errno::Nomem),
            (ErrorCode::Timeout, Errno::Timedout),
            (ErrorCode::NotSupported, Errno::Notsup),
            (ErrorCode::Unknown, Errno::Io),
        ];
        for (code, expected) in rows {
            assert_eq!(errno(code), expected, "{code:?}");
        }
    }

    #[test]
    fn a_buffer_past_the_end_of_memory_traps() {
        let mut memory = [0u8; 16];
        // One iovec at 0 naming 8 bytes at 12: past the end.
        memory[0..4].copy_from_slice(&12u32.to_le_bytes());
        memory[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(first_buffer(&memory, 0, 1), Err(Fail::Trap(_))));
        memory[4..8].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(first_buffer(&memory, 0, 1), Ok((12, 4))));
    }
}
