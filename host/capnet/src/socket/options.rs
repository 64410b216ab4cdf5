//! Socket options shared by TCP and UDP, with the WIT's rules: 0 is `invalid-argument`, other
//! values are clamped to what Linux takes.

use super::addr::Family;
use crate::socket::ErrorCode;
use socket2::SockRef;

/// `hop-limit` / `unicast-hop-limit`: `IP_TTL` or `IPV6_UNICAST_HOPS`.
pub(super) fn hop_limit(sock: SockRef<'_>, family: Family) -> Result<u8, ErrorCode> {
    let hops = match family {
        Family::V4 => sock.ttl_v4()?,
        Family::V6 => sock.unicast_hops_v6()?,
    };
    Ok(u8::try_from(hops).unwrap_or(u8::MAX))
}

/// Sets the hop limit: 0 is invalid, whatever state the socket is in.
pub(super) fn set_hop_limit(
    sock: Result<SockRef<'_>, ErrorCode>,
    family: Family,
    value: u8,
) -> Result<(), ErrorCode> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument);
    }
    let sock = sock?;
    match family {
        Family::V4 => sock.set_ttl_v4(value.into())?,
        Family::V6 => sock.set_unicast_hops_v6(value.into())?,
    }
    Ok(())
}

/// `receive-buffer-size`: the size as the guest set it (see [`as_set`]).
pub(super) fn receive_buffer_size(sock: SockRef<'_>) -> Result<u64, ErrorCode> {
    Ok(as_set(sock.recv_buffer_size()?))
}

/// Sets the receive buffer size: 0 is invalid, whatever state the socket is in; large values
/// are clamped.
pub(super) fn set_receive_buffer_size(
    sock: Result<SockRef<'_>, ErrorCode>,
    value: u64,
) -> Result<(), ErrorCode> {
    let size = buffer_size(value)?;
    Ok(sock?.set_recv_buffer_size(size)?)
}

/// `send-buffer-size`: the size as the guest set it (see [`as_set`]).
pub(super) fn send_buffer_size(sock: SockRef<'_>) -> Result<u64, ErrorCode> {
    Ok(as_set(sock.send_buffer_size()?))
}

/// Linux keeps twice the buffer size it is given (the rest is its bookkeeping) and reports
/// what it keeps; the WIT's getter reads back what was set, so it is halved here.
fn as_set(kept: usize) -> u64 {
    let kept = kept as u64;
    if cfg!(target_os = "linux") {
        kept / 2
    } else {
        kept
    }
}

/// Sets the send buffer size: 0 is invalid, whatever state the socket is in; large values are
/// clamped.
pub(super) fn set_send_buffer_size(
    sock: Result<SockRef<'_>, ErrorCode>,
    value: u64,
) -> Result<(), ErrorCode> {
    let size = buffer_size(value)?;
    Ok(sock?.set_send_buffer_size(size)?)
}

fn buffer_size(value: u64) -> Result<usize, ErrorCode> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument);
    }
    // The kernel doubles what it is given and caps it; keep the request within its int.
    Ok(usize::try_from(value.min(i32::MAX as u64 / 2)).unwrap_or(usize::MAX))
}

/// Helpers the socket state-machine tests share.
#[cfg(test)]
pub(super) mod testing {
    use crate::grant::Grant;
    use crate::socket::ErrorCode;
    use capnet_policy::Policy;
    use std::sync::Arc;

    /// A grant that allows everything: the tests here are about states, not policy.
    pub fn grant() -> Grant {
        Grant::new(Arc::new(Policy::inherit_network()), Arc::from("test"))
    }

    /// `ok` or the WIT name of the error.
    pub fn show<T>(result: Result<T, ErrorCode>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(code) => code.as_str(),
        }
    }
}
