//! Conversions between the 0.3 WIT's addresses and families and the core's `std::net` ones.

crate::wit_conv::address_conversions!(crate::p3::bindings::sockets::types);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_and_std_addresses_round_trip() {
        for s in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%3]:22", "0.0.0.0:0"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(SocketAddr::from(IpSocketAddress::from(a)), a);
        }
    }
}
