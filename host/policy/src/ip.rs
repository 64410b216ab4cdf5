//! IP networks (CIDR) and the address normalisation every check starts with.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ErrorKind;

/// Folds the IPv6 spellings of IPv4 addresses to IPv4, so a rule written for
/// `10.0.0.1` also governs `::ffff:10.0.0.1` and cannot be bypassed by it.
///
/// IPv4-mapped addresses (`::ffff:a.b.c.d`) always fold. IPv4-compatible
/// addresses (`::a.b.c.d`, deprecated) fold when `a` is not 0, so `::` (the
/// unspecified address), `::1` (loopback) and the rest of `::/104` stay IPv6.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match fold_v6(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
    }
}

/// The IPv4 address an IPv6 address stands for, if any (see [`normalize`]).
fn fold_v6(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = v6.to_bits();
    let low = bits as u32;
    match bits >> 32 {
        0xffff => Some(Ipv4Addr::from_bits(low)),
        0 if low >> 24 != 0 => Some(Ipv4Addr::from_bits(low)),
        _ => None,
    }
}

/// The shortest prefix a rule must have to match `ip` (already normalised).
///
/// Unspecified and multicast addresses are not ordinary peers: binding
/// `0.0.0.0` exposes every interface, and a multicast group reaches many
/// hosts. They match only rules that name them: `0.0.0.0` or `::` exactly,
/// and a network inside `224.0.0.0/4` or `ff00::/8`. `any`, `0.0.0.0/0` and
/// other broad networks do not cover them.
pub(crate) fn min_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(a) if a.is_unspecified() => 32,
        IpAddr::V4(a) if a.is_multicast() => 4,
        IpAddr::V6(a) if a.is_unspecified() => 128,
        IpAddr::V6(a) if a.is_multicast() => 8,
        _ => 0,
    }
}

/// The mask of a `len`-bit IPv4 prefix.
pub(crate) const fn mask_v4(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// The mask of a `len`-bit IPv6 prefix.
pub(crate) const fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// An IP network: an address with no host bits set and a prefix length.
///
/// IPv6 networks inside `::ffff:0:0/96` (and IPv4-compatible ones, see
/// [`normalize`]) are stored as the IPv4 network they stand for, because
/// addresses are folded the same way before matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network `addr/prefix`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PrefixTooLong`] past 32 (IPv4) or 128 (IPv6) bits, and
    /// [`ErrorKind::HostBits`] when `addr` has bits set past the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpNet, ErrorKind> {
        Self::checked(addr, prefix, &prefix.to_string())
    }

    fn checked(addr: IpAddr, prefix: u8, prefix_text: &str) -> Result<IpNet, ErrorKind> {
        let (family, max) = match addr {
            IpAddr::V4(_) => ("IPv4", 32),
            IpAddr::V6(_) => ("IPv6", 128),
        };
        if prefix > max {
            return Err(ErrorKind::PrefixTooLong {
                prefix: prefix_text.to_owned(),
                family,
                max,
            });
        }
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(a.to_bits() & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(a.to_bits() & mask_v6(prefix))),
        };
        if masked != addr {
            return Err(ErrorKind::HostBits {
                given: format!("{addr}/{prefix}"),
                network: format!("{masked}/{prefix}"),
            });
        }
        Ok(Self::fold(IpNet { addr, prefix }))
    }

    /// Rewrites an IPv6 network that lies wholly in the IPv4-mapped (or
    /// foldable IPv4-compatible) space as the IPv4 network.
    fn fold(net: IpNet) -> IpNet {
        let IpAddr::V6(v6) = net.addr else {
            return net;
        };
        let bits = v6.to_bits();
        let mapped = net.prefix >= 96 && bits >> 32 == 0xffff;
        let compat = net.prefix >= 104 && bits >> 32 == 0 && (bits as u32) >> 24 != 0;
        if mapped || compat {
            IpNet {
                addr: IpAddr::V4(Ipv4Addr::from_bits(bits as u32)),
                prefix: net.prefix - 96,
            }
        } else {
            net
        }
    }

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`, IPv4 or IPv6, without brackets
    /// or ports (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`, `::1`).
    ///
    /// # Errors
    ///
    /// An [`ErrorKind`] naming the first problem: not an address, a prefix
    /// that is not a number or too long, host bits set.
    pub fn parse(text: &str) -> Result<IpNet, ErrorKind> {
        let Some((addr_text, prefix_text)) = text.split_once('/') else {
            let addr: IpAddr = text
                .parse()
                .map_err(|_| ErrorKind::BadAddress(text.to_owned()))?;
            let full = if addr.is_ipv4() { 32 } else { 128 };
            return Self::checked(addr, full, "");
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| ErrorKind::BadCidr(text.to_owned()))?;
        if prefix_text.is_empty() || !prefix_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ErrorKind::BadPrefix(prefix_text.to_owned()));
        }
        // Any all-digit prefix too large for u8 is certainly too long.
        let prefix = prefix_text.parse::<u8>().unwrap_or(u8::MAX);
        Self::checked(addr, prefix, prefix_text).map_err(|e| match e {
            // Quote the CIDR as written, not as re-rendered.
            ErrorKind::HostBits { network, .. } => ErrorKind::HostBits {
                given: text.to_owned(),
                network,
            },
            e => e,
        })
    }

    /// The network address (host bits zero; IPv4 for folded IPv6 networks).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (normalised first) lies inside the network, ignoring the
    /// special-address rule of [`IpNet::allows`].
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalize(ip)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => a.to_bits() & mask_v4(self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(a)) => a.to_bits() & mask_v6(self.prefix) == net.to_bits(),
            _ => false,
        }
    }

    /// Whether a rule on this network matches `ip`: it lies inside, and if it
    /// is unspecified or multicast the network names it rather than merely
    /// spanning it (so `0.0.0.0/0` does not allow binding `0.0.0.0`).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        self.prefix >= min_prefix(ip) && self.contains(ip)
    }
}

/// `10.0.0.0/8`, or the bare address for a single host (`127.0.0.1`, `::1`).
impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_mapped_ipv6_folds_to_ipv4() {
        assert_eq!(normalize(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn ipv4_compatible_ipv6_folds_to_ipv4() {
        assert_eq!(normalize(ip("::127.0.0.1")), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_loopback_and_unspecified_do_not_fold() {
        assert_eq!(normalize(ip("::1")), ip("::1"));
        assert_eq!(normalize(ip("::")), ip("::"));
        assert_eq!(normalize(ip("::0.255.0.1")), ip("::0.255.0.1"));
    }

    #[test]
    fn mapped_network_is_stored_as_ipv4() {
        let net = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(net, IpNet::parse("10.0.0.0/8").unwrap());
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn broad_ipv6_network_containing_the_mapped_space_stays_ipv6() {
        let net = IpNet::parse("::/64").unwrap();
        assert!(net.addr().is_ipv6());
        assert!(!net.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn network_contains_addresses_under_its_prefix_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.0")));
        assert!(net.contains(ip("::ffff:10.1.0.7")));
    }

    #[test]
    fn unspecified_address_needs_a_rule_that_names_it() {
        assert!(!IpNet::parse("0.0.0.0/0").unwrap().allows(ip("0.0.0.0")));
        assert!(!IpNet::parse("0.0.0.0/8").unwrap().allows(ip("0.0.0.0")));
        assert!(IpNet::parse("0.0.0.0").unwrap().allows(ip("0.0.0.0")));
        assert!(IpNet::parse("::").unwrap().allows(ip("::")));
    }

    #[test]
    fn multicast_needs_a_rule_inside_the_multicast_range() {
        assert!(!IpNet::parse("192.0.0.0/2").unwrap().allows(ip("224.0.0.1")));
        assert!(IpNet::parse("224.0.0.0/4").unwrap().allows(ip("224.0.0.1")));
        assert!(IpNet::parse("ff02::/16").unwrap().allows(ip("ff02::1")));
        assert!(!IpNet::parse("::/0").unwrap().allows(ip("ff02::1")));
    }
}
