//! Named address sets: `loopback`, `private`, `link-local`, `metadata`,
//! `public` (and `any`, which is [`crate::Target::Any`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use crate::IpNet;

/// A named set of addresses a rule can target instead of a CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamedSet {
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918 (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`), CGNAT
    /// (`100.64.0.0/10`) and RFC 4193 unique local IPv6 (`fc00::/7`).
    Private,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// Cloud instance-metadata endpoints: `169.254.169.254` (AWS, GCP,
    /// Azure, ...), `169.254.170.2` (AWS ECS), `100.100.100.200` (Alibaba),
    /// `fd00:ec2::254` (AWS IPv6).
    Metadata,
    /// Every unicast address in none of the other sets: IPv4 outside them
    /// and outside `0.0.0.0/8`, multicast `224.0.0.0/4` and reserved
    /// `240.0.0.0/4`; IPv6 global unicast `2000::/3`.
    Public,
}

impl NamedSet {
    /// Every named set, for tables, help and tests.
    pub const ALL: [NamedSet; 5] = [
        NamedSet::Loopback,
        NamedSet::Private,
        NamedSet::LinkLocal,
        NamedSet::Metadata,
        NamedSet::Public,
    ];

    /// The word a rule writes for this set.
    pub const fn as_str(self) -> &'static str {
        match self {
            NamedSet::Loopback => "loopback",
            NamedSet::Private => "private",
            NamedSet::LinkLocal => "link-local",
            NamedSet::Metadata => "metadata",
            NamedSet::Public => "public",
        }
    }

    /// The set named `word` (case-insensitive), if any.
    pub fn from_word(word: &str) -> Option<NamedSet> {
        NamedSet::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
    }

    /// The networks making up the set, disjoint for `public`.
    pub fn nets(self) -> &'static [IpNet] {
        static TABLES: OnceLock<[Vec<IpNet>; 5]> = OnceLock::new();
        let tables = TABLES.get_or_init(|| NamedSet::ALL.map(build));
        &tables[self as usize]
    }

    /// Whether `ip` (normalised) is in the set.
    pub fn contains(self, ip: IpAddr) -> bool {
        self.nets().iter().any(|n| n.allows(ip))
    }
}

impl fmt::Display for NamedSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn net(text: &str) -> IpNet {
    IpNet::parse(text).expect("a valid built-in network")
}

const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1"];
const PRIVATE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];
const LINK_LOCAL: &[&str] = &["169.254.0.0/16", "fe80::/10"];
const METADATA: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
];
/// IPv4 space that is never `public` besides the other sets.
const V4_RESERVED: &[&str] = &["0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"];

fn build(set: NamedSet) -> Vec<IpNet> {
    let list = |l: &[&str]| l.iter().map(|t| net(t)).collect::<Vec<_>>();
    match set {
        NamedSet::Loopback => list(LOOPBACK),
        NamedSet::Private => list(PRIVATE),
        NamedSet::LinkLocal => list(LINK_LOCAL),
        NamedSet::Metadata => list(METADATA),
        NamedSet::Public => {
            let mut holes: Vec<(u32, u8)> = [LOOPBACK, PRIVATE, LINK_LOCAL, METADATA, V4_RESERVED]
                .concat()
                .iter()
                .map(|t| net(t))
                .filter_map(|n| match n.addr() {
                    IpAddr::V4(a) => Some((a.to_bits(), n.prefix())),
                    IpAddr::V6(_) => None,
                })
                .collect();
            holes.sort_unstable();
            let mut out = Vec::new();
            complement_v4(0, 0, &holes, &mut out);
            let mut nets: Vec<IpNet> = out
                .into_iter()
                .map(|(a, len)| {
                    IpNet::new(IpAddr::V4(Ipv4Addr::from_bits(a)), len).expect("aligned")
                })
                .collect();
            nets.push(
                IpNet::new(IpAddr::V6(Ipv6Addr::from_bits(0x2000 << 112)), 3).expect("aligned"),
            );
            nets
        }
    }
}

/// Pushes the CIDR blocks of `base/len` that no hole overlaps.
fn complement_v4(base: u32, len: u8, holes: &[(u32, u8)], out: &mut Vec<(u32, u8)>) {
    let mask = crate::ip::mask_v4(len);
    let overlapping = holes.iter().filter(|&&(h, hl)| {
        let m = crate::ip::mask_v4(hl.min(len));
        h & m == base & m
    });
    let mut any = false;
    for &(_, hl) in overlapping {
        if hl <= len {
            return; // the whole block is a hole
        }
        any = true;
    }
    if !any {
        out.push((base & mask, len));
        return;
    }
    let half = 1u32 << (31 - len);
    complement_v4(base, len + 1, holes, out);
    complement_v4(base | half, len + 1, holes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_excludes_every_other_set_and_reserved_space() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            assert!(!NamedSet::Public.contains(ip(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "223.255.255.255",
            "2606:4700::1111",
        ] {
            assert!(NamedSet::Public.contains(ip(a)), "{a}");
        }
    }

    #[test]
    fn sets_hold_their_documented_members() {
        assert!(NamedSet::Loopback.contains(ip("127.5.5.5")));
        assert!(NamedSet::Loopback.contains(ip("::1")));
        assert!(NamedSet::Private.contains(ip("100.127.255.255")));
        assert!(NamedSet::Private.contains(ip("fd12::1")));
        assert!(NamedSet::LinkLocal.contains(ip("fe80::1")));
        assert!(NamedSet::Metadata.contains(ip("169.254.169.254")));
        assert!(NamedSet::Metadata.contains(ip("fd00:ec2::254")));
        assert!(!NamedSet::Metadata.contains(ip("169.254.169.253")));
    }
}
