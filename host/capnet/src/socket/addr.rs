//! Conversions between WIT socket addresses and `std::net`, and the address rules the WIT docs
//! state for bind and connect.

use crate::bindings::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

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

impl From<IpAddressFamily> for Family {
    fn from(family: IpAddressFamily) -> Self {
        match family {
            IpAddressFamily::Ipv4 => Family::V4,
            IpAddressFamily::Ipv6 => Family::V6,
        }
    }
}

impl From<Family> for IpAddressFamily {
    fn from(family: Family) -> Self {
        match family {
            Family::V4 => IpAddressFamily::Ipv4,
            Family::V6 => IpAddressFamily::Ipv6,
        }
    }
}

impl From<IpSocketAddress> for SocketAddr {
    fn from(addr: IpSocketAddress) -> Self {
        match addr {
            IpSocketAddress::Ipv4(a) => {
                let (b0, b1, b2, b3) = a.address;
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(b0, b1, b2, b3), a.port))
            }
            IpSocketAddress::Ipv6(a) => {
                let (s0, s1, s2, s3, s4, s5, s6, s7) = a.address;
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7),
                    a.port,
                    a.flow_info,
                    a.scope_id,
                ))
            }
        }
    }
}

impl From<SocketAddr> for IpSocketAddress {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => {
                let [b0, b1, b2, b3] = a.ip().octets();
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port: a.port(),
                    address: (b0, b1, b2, b3),
                })
            }
            SocketAddr::V6(a) => {
                let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port: a.port(),
                    flow_info: a.flowinfo(),
                    address: (s0, s1, s2, s3, s4, s5, s6, s7),
                    scope_id: a.scope_id(),
                })
            }
        }
    }
}

impl From<IpAddr> for IpAddress {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [b0, b1, b2, b3] = v4.octets();
                IpAddress::Ipv4((b0, b1, b2, b3))
            }
            IpAddr::V6(v6) => {
                let [s0, s1, s2, s3, s4, s5, s6, s7] = v6.segments();
                IpAddress::Ipv6((s0, s1, s2, s3, s4, s5, s6, s7))
            }
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
    fn wit_and_std_addresses_round_trip() {
        for s in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%3]:22", "0.0.0.0:0"] {
            let a = addr(s);
            assert_eq!(SocketAddr::from(IpSocketAddress::from(a)), a);
        }
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
