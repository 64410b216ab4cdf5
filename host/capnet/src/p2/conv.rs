//! Conversions between the 0.2 WIT's addresses and families and the core's `std::net` ones.

use crate::p2::bindings::sockets::network::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use crate::socket::addr::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

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
}
