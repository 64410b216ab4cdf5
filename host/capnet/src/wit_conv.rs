//! Conversions between a WIT generation's addresses and families and the socket core's
//! `std::net` ones. Both generations spell them alike, so one macro writes them for each front.

/// Writes the `From` conversions between the WIT types in module `$wit` (`ip-address-family`,
/// `ip-socket-address`, `ip-address`) and the core's `Family` and `std::net` addresses.
macro_rules! address_conversions {
    ($($wit:ident)::+) => {
        use crate::socket::addr::Family;
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
        use $($wit)::+::{
            IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
        };

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
    };
}

pub(crate) use address_conversions;
