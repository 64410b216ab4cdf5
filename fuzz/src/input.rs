//! Structured inputs: rules, flags and addresses drawn from bytes, clustered around a few
//! addresses and names so that rules overlap one another and the probes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Result, Unstructured};
use capnet_policy::{Policy, Verdict, words};

/// IPv4 addresses rules and probes are drawn near.
const V4: [u32; 12] = [
    0x7f00_0001, // 127.0.0.1
    0x0a00_0000, // 10.0.0.0
    0xac10_0001, // 172.16.0.1
    0xc0a8_0001, // 192.168.0.1
    0x6440_0000, // 100.64.0.0
    0xa9fe_a9fe, // 169.254.169.254
    0xa9fe_aa02, // 169.254.170.2
    0x6464_64c8, // 100.100.100.200
    0x0000_0000, // 0.0.0.0
    0xe000_0001, // 224.0.0.1
    0x0101_0101, // 1.1.1.1
    0xffff_ffff, // 255.255.255.255
];

/// IPv6 addresses rules and probes are drawn near.
const V6: [u128; 9] = [
    0,                                         // ::
    1,                                         // ::1
    0xfd00_0ec2_0000_0000_0000_0000_0000_0254, // fd00:ec2::254
    0xfe80_0000_0000_0000_0000_0000_0000_0001, // fe80::1
    0xfc00_0000_0000_0000_0000_0000_0000_0000, // fc00::
    0xff02_0000_0000_0000_0000_0000_0000_0001, // ff02::1
    0x2001_0db8_0000_0000_0000_0000_0000_0001, // 2001:db8::1
    0x0000_0000_0000_0000_0000_ffff_7f00_0001, // ::ffff:127.0.0.1
    0x0000_0000_0000_0000_0000_0000_0a00_0001, // ::10.0.0.1
];

/// Names and suffixes rules and probes are drawn from.
const NAMES: [&str; 6] = [
    "example.com",
    "api.example.com",
    "a.b.example.com",
    "localhost",
    "internal",
    "xn--bcher-kva.example",
];

/// An address near one of the bases: the base's top `keep` bits, the rest from `noise`.
pub fn v4(u: &mut Unstructured<'_>) -> Result<Ipv4Addr> {
    let base = *u.choose(&V4)?;
    let keep = u.int_in_range(0..=32u32)?;
    let noise: u32 = u.arbitrary()?;
    let mask = u32::MAX.checked_shl(32 - keep).unwrap_or(0);
    Ok(Ipv4Addr::from_bits(base & mask | noise & !mask))
}

/// As [`v4`], for IPv6.
pub fn v6(u: &mut Unstructured<'_>) -> Result<Ipv6Addr> {
    let base = *u.choose(&V6)?;
    let keep = u.int_in_range(0..=128u32)?;
    let noise: u128 = u.arbitrary()?;
    let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
    Ok(Ipv6Addr::from_bits(base & mask | noise & !mask))
}

/// An address of either family, sometimes an IPv6 spelling of an IPv4 one.
pub fn ip(u: &mut Unstructured<'_>) -> Result<IpAddr> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => IpAddr::V4(v4(u)?),
        2 => IpAddr::V6(v6(u)?),
        _ => IpAddr::V6(v4(u)?.to_ipv6_mapped()),
    })
}

/// A target as a rule writes it, mostly valid, sometimes raw text.
pub fn target(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 | 1 => {
            let prefix = u.int_in_range(0..=32u8)?;
            let a = v4(u)?.to_bits();
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", Ipv4Addr::from_bits(a & mask))
        }
        2 => v4(u)?.to_string(),
        3 => {
            let prefix = u.int_in_range(0..=128u8)?;
            let a = v6(u)?.to_bits();
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("[{}/{prefix}]", Ipv6Addr::from_bits(a & mask))
        }
        4 => format!("[{}]", v6(u)?),
        5 => u
            .choose(&[
                "loopback",
                "private",
                "link-local",
                "metadata",
                "public",
                "any",
            ])?
            .to_string(),
        6 => u.choose(&NAMES)?.to_string(),
        7 => format!("*.{}", u.choose(&NAMES)?),
        8 => {
            // A mapped network: ::ffff:a.b.c.d/96+n.
            let prefix = u.int_in_range(96..=128u8)?;
            let a = v4(u)?.to_ipv6_mapped().to_bits();
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("[{}/{prefix}]", Ipv6Addr::from_bits(a & mask))
        }
        _ => String::arbitrary(u)?,
    })
}

/// Ports as a rule writes them (`:443`, `:8000-8100`, `:*`, `:80;443`), or none.
pub fn ports(u: &mut Unstructured<'_>) -> Result<String> {
    let one = |u: &mut Unstructured<'_>| -> Result<String> {
        Ok(match u.int_in_range(0..=3u8)? {
            0 => u.choose(&[0u16, 53, 80, 443, 8080, 65535])?.to_string(),
            1 => {
                let lo = u.int_in_range(0..=1024u16)?;
                let hi = u.int_in_range(lo..=lo.saturating_add(9000))?;
                format!("{lo}-{hi}")
            }
            2 => "*".to_owned(),
            _ => u16::arbitrary(u)?.to_string(),
        })
    };
    Ok(match u.int_in_range(0..=4u8)? {
        0 | 1 => String::new(),
        2 | 3 => format!(":{}", one(u)?),
        _ => {
            let n = u.int_in_range(1..=3usize)?;
            let list: Result<Vec<String>> = (0..n).map(|_| one(u)).collect();
            format!(":{}", list?.join(";"))
        }
    })
}

/// One rule: a verdict, a USE word (rarely a made-up one) and `TARGET[:PORTS]`.
#[derive(Debug)]
pub struct RuleSpec {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The USE word.
    pub word: String,
    /// `TARGET[:PORTS]`.
    pub entry: String,
}

impl<'a> Arbitrary<'a> for RuleSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let verdict = if u.arbitrary()? {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        let all: Vec<&str> = words().collect();
        let word = if u.ratio(1, 32)? {
            String::arbitrary(u)?
        } else {
            u.choose(&all)?.to_string()
        };
        let entry = format!("{}{}", target(u)?, ports(u)?);
        Ok(RuleSpec {
            verdict,
            word,
            entry,
        })
    }
}

/// A policy of up to 24 rules (those that load), maybe inheriting the network, with a library
/// of its own rules, and addresses to probe it with.
#[derive(Debug)]
pub struct PolicySpec {
    /// Whether unmatched uses are allowed.
    pub inherit_network: bool,
    /// The app's rules.
    pub rules: Vec<RuleSpec>,
    /// The library `lib`'s rules.
    pub library: Vec<RuleSpec>,
    /// Addresses to ask about besides the rules' edges.
    pub extra: Vec<IpAddr>,
}

impl<'a> Arbitrary<'a> for PolicySpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let inherit_network = u.ratio(1, 8)?;
        let n = u.int_in_range(0..=24usize)?;
        let rules = (0..n)
            .map(|_| RuleSpec::arbitrary(u))
            .collect::<Result<_>>()?;
        let n = u.int_in_range(0..=4usize)?;
        let library = (0..n)
            .map(|_| RuleSpec::arbitrary(u))
            .collect::<Result<_>>()?;
        let n = u.int_in_range(0..=8usize)?;
        let extra = (0..n).map(|_| ip(u)).collect::<Result<_>>()?;
        Ok(PolicySpec {
            inherit_network,
            rules,
            library,
            extra,
        })
    }
}

impl PolicySpec {
    /// The policy of the rules that load (a rule that does not is skipped).
    pub fn build(&self) -> Policy {
        let mut builder = Policy::builder().inherit_network(self.inherit_network);
        for rule in &self.rules {
            if let Ok(b) = builder.clone().rule(rule.verdict, &rule.word, &rule.entry) {
                builder = b;
            }
        }
        for rule in &self.library {
            if let Ok(b) =
                builder
                    .clone()
                    .library_rule("lib", rule.verdict, &rule.word, &rule.entry)
            {
                builder = b;
            }
        }
        builder.build()
    }
}
