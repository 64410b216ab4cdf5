//! Address families and the address rules the WIT docs state for bind and connect, on
//! `std::net` addresses (each front end converts its WIT addresses).

use super::ErrorCode;
use std::net::{IpAddr, SocketAddr};

/// The two families a socket can be created for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET`
    V4,
    /// `AF_INET6`, always with `IPV6_V6ONLY` set.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }
}

/// Checks a local address for `start-bind`: the socket's family, unicast, not IPv4-mapped.
pub fn validate_local(family: Family, addr: &SocketAddr) -> Result<(), ErrorCode> {
    validate_family_and_unicast(family, addr)
}

/// Checks a remote address for `start-connect`: as for bind, plus a real address and port.
pub fn validate_remote(family: Family, addr: &SocketAddr) -> Result<(), ErrorCode> {
    validate_family_and_unicast(family, addr)?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(ErrorCode::InvalidArgument);
    }
    Ok(())
}

fn validate_family_and_unicast(family: Family, addr: &SocketAddr) -> Result<(), ErrorCode> {
    if Family::of(addr) != family {
        return Err(ErrorCode::InvalidArgument);
    }
    let unicast = match addr.ip() {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_multicast() && v6.to_ipv4_mapped().is_none(),
    };
    if unicast {
        Ok(())
    } else {
        Err(ErrorCode::InvalidArgument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bind_rejects_wrong_family_multicast_broadcast_and_mapped_addresses() {
        let invalid = [
            (Family::V4, "[::1]:80"),
            (Family::V6, "127.0.0.1:80"),
            (Family::V4, "224.0.0.1:80"),
            (Family::V4, "255.255.255.255:80"),
            (Family::V6, "[ff02::1]:80"),
            (Family::V6, "[::ffff:127.0.0.1]:80"),
        ];
        for (family, a) in invalid {
            assert!(
                validate_local(family, &addr(a)).is_err(),
                "{a} on {family:?}"
            );
        }
        assert!(validate_local(Family::V4, &addr("0.0.0.0:0")).is_ok());
        assert!(validate_local(Family::V6, &addr("[::]:0")).is_ok());
    }

    #[test]
    fn connect_rejects_unspecified_address_and_port_zero() {
        assert!(validate_remote(Family::V4, &addr("0.0.0.0:80")).is_err());
        assert!(validate_remote(Family::V6, &addr("[::]:80")).is_err());
        assert!(validate_remote(Family::V4, &addr("127.0.0.1:0")).is_err());
        assert!(validate_remote(Family::V4, &addr("127.0.0.1:80")).is_ok());
    }
}
