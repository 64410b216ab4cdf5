//! The compiled tables agree with a naive linear matcher written here from
//! the rule language alone: same verdict, same reported rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use capnet_policy::{NamedSet, Policy, Reason, Rule, Target, Use, Verdict};
use proptest::prelude::*;
use proptest::sample::select;

/// Folds IPv4-mapped and IPv4-compatible (first octet not 0) to IPv4.
fn reference_normalize(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let o = v6.octets();
    let v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if o[..10].iter().all(|&b| b == 0) && o[10] == 0xff && o[11] == 0xff {
        return IpAddr::V4(v4);
    }
    if o[..12].iter().all(|&b| b == 0) && o[12] != 0 {
        return IpAddr::V4(v4);
    }
    ip
}

/// The address as a bit string, most significant first.
fn bits(ip: IpAddr) -> Vec<bool> {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect()
}

/// Whether `ip` lies in `net/len`, bit by bit, and a special address is
/// named rather than spanned.
fn reference_in(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    if net.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let (nb, ib) = (bits(net), bits(ip));
    let inside = (0..len as usize).all(|i| nb[i] == ib[i]);
    let needed = match ip {
        IpAddr::V4(a) if a.is_unspecified() => 32,
        IpAddr::V4(a) if a.is_multicast() => 4,
        IpAddr::V6(a) if a.is_unspecified() => 128,
        IpAddr::V6(a) if a.is_multicast() => 8,
        _ => 0,
    };
    inside && len >= needed
}

/// How specific a rule's target is for an address: its prefix length,
/// or `None` when it does not match.
fn addr_specificity(rule: &Rule, ip: IpAddr) -> Option<u8> {
    match &rule.target {
        Target::Ip(net) => reference_in(net.addr(), net.prefix(), ip).then_some(net.prefix()),
        Target::Any => {
            let zero = if ip.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            reference_in(zero, 0, ip).then_some(0)
        }
        Target::Set(set) => {
            if !reference_set_contains(*set, ip) {
                return None;
            }
            // Specificity is the prefix of the set's block holding `ip`.
            set.nets()
                .iter()
                .filter(|n| reference_in(n.addr(), n.prefix(), ip))
                .map(|n| n.prefix())
                .max()
        }
        Target::Name(_) | Target::Suffix(_) => None,
    }
}

/// The named sets, written out from their definitions.
fn reference_set_contains(set: NamedSet, ip: IpAddr) -> bool {
    let within = |list: &[&str]| {
        list.iter().any(|t| {
            let (a, len) = t
                .split_once('/')
                .unwrap_or((t, if t.contains(':') { "128" } else { "32" }));
            reference_in(a.parse().unwrap(), len.parse().unwrap(), ip)
        })
    };
    const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128"];
    const PRIVATE: &[&str] = &[
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ];
    const LINK_LOCAL: &[&str] = &["169.254.0.0/16", "fe80::/10"];
    const METADATA: &[&str] = &[
        "169.254.169.254/32",
        "169.254.170.2/32",
        "100.100.100.200/32",
        "fd00:ec2::254/128",
    ];
    match set {
        NamedSet::Loopback => within(LOOPBACK),
        NamedSet::Private => within(PRIVATE),
        NamedSet::LinkLocal => within(LINK_LOCAL),
        NamedSet::Metadata => within(METADATA),
        NamedSet::Public => match ip {
            IpAddr::V4(_) => ![
                LOOPBACK,
                PRIVATE,
                LINK_LOCAL,
                METADATA,
                &["0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"],
            ]
            .iter()
            .any(|l| within(l)),
            IpAddr::V6(_) => within(&["2000::/3"]),
        },
    }
}

/// Linear scan: deny first, then allow; the best rule has the longest
/// prefix, then the narrowest port range, then the lowest index.
fn reference_decide(policy: &Policy, use_: Use, addr: SocketAddr) -> (Verdict, Option<usize>) {
    let ip = reference_normalize(addr.ip());
    for verdict in [Verdict::Deny, Verdict::Allow] {
        let best = policy
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.verdict == verdict && r.uses.contains(use_))
            .filter(|(_, r)| r.ports.lo() <= addr.port() && addr.port() <= r.ports.hi())
            .filter_map(|(i, r)| {
                let len = addr_specificity(r, ip)?;
                Some(((std::cmp::Reverse(len), r.ports.hi() - r.ports.lo(), i), i))
            })
            .min();
        if let Some((_, i)) = best {
            return (verdict, Some(i));
        }
    }
    let default = if policy.is_inherit_network() {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    (default, None)
}

/// Linear scan for the DNS-rebinding question: of the allow rules of `use_`
/// covering `ip` on some port, deny rules aside, the best one on the lowest
/// port any of them covers.
fn reference_allow_rule_any_port(policy: &Policy, use_: Use, ip: IpAddr) -> Option<usize> {
    let ip = reference_normalize(ip);
    let covering: Vec<(usize, &Rule, u8)> = policy
        .rules()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.verdict == Verdict::Allow && r.uses.contains(use_))
        .filter_map(|(i, r)| Some((i, r, addr_specificity(r, ip)?)))
        .collect();
    let port = covering.iter().map(|(_, r, _)| r.ports.lo()).min()?;
    covering
        .iter()
        .filter(|(_, r, _)| r.ports.lo() <= port && port <= r.ports.hi())
        .min_by_key(|(i, r, len)| (std::cmp::Reverse(*len), r.ports.hi() - r.ports.lo(), *i))
        .map(|(i, _, _)| *i)
}

/// Linear scan for names: an exact name beats the longest suffix beats `any`.
fn reference_decide_name(policy: &Policy, name: &str) -> (Verdict, Option<usize>) {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    for verdict in [Verdict::Deny, Verdict::Allow] {
        let best = policy
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.verdict == verdict && r.uses.contains(Use::Lookup))
            .filter_map(|(i, r)| {
                let rank = match &r.target {
                    Target::Name(n) if *n == name => 1000,
                    Target::Suffix(s) if name.ends_with(&format!(".{s}")) => s.split('.').count(),
                    Target::Any if r.ports.lo() == 0 && r.ports.hi() == u16::MAX => 0,
                    _ => return None,
                };
                Some(((std::cmp::Reverse(rank), i), i))
            })
            .min();
        if let Some((_, i)) = best {
            return (verdict, Some(i));
        }
    }
    let default = if policy.is_inherit_network() {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    (default, None)
}

/// Addresses clustered so rules and queries overlap often.
const V4_BASES: [u32; 11] = [
    0xa9fe_a9fe, // 169.254.169.254
    0x6440_0001, // 100.64.0.1
    0x0808_0808, // 8.8.8.8
    0x0a00_0000, // 10.0.0.0
    0x0a01_0203, // 10.1.2.3
    0x7f00_0001, // 127.0.0.1
    0xc0a8_0101, // 192.168.1.1
    0xe000_00fb, // 224.0.0.251
    0x0000_0000, // 0.0.0.0
    0xffff_ffff, // 255.255.255.255
    0xcb00_7107, // 203.0.113.7
];

const V6_BASES: [u128; 8] = [
    0xfd00_0ec2_0000_0000_0000_0000_0000_0254, // fd00:ec2::254
    0x2606_4700_0000_0000_0000_0000_0000_1111, // 2606:4700::1111
    0,                                         // ::
    1,                                         // ::1
    0xfd00_0000_0000_0000_0000_0000_0000_0001, // fd00::1
    0xff02_0000_0000_0000_0000_0000_0000_00fb, // ff02::fb
    0x2001_0db8_0000_0000_0000_0000_0000_0007, // 2001:db8::7
    0x0000_0000_0000_0000_0000_ffff_0a01_0203, // ::ffff:10.1.2.3
];

fn v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    (select(V4_BASES.to_vec()), 0u32..=32, any::<u32>()).prop_map(|(base, keep, noise)| {
        // Keep the top `keep` bits of the base, take the rest from noise
        // (often none, so exact hits are common).
        let mask = if keep == 0 {
            0
        } else {
            u32::MAX << (32 - keep)
        };
        let noise = if keep > 24 {
            noise & !mask
        } else {
            noise & !mask & 0xff
        };
        Ipv4Addr::from_bits(base & mask | noise)
    })
}

fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    (select(V6_BASES.to_vec()), 0u32..=128, any::<u128>()).prop_map(|(base, keep, noise)| {
        let mask = if keep == 0 {
            0
        } else {
            u128::MAX << (128 - keep)
        };
        Ipv6Addr::from_bits(base & mask | noise & !mask & 0xffff)
    })
}

fn ports() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("*".to_owned())),
        select(vec![0u16, 22, 80, 443, 8080, 65535]).prop_map(|p| Some(p.to_string())),
        (select(vec![0u16, 80, 443, 1024, 8000]), 0u16..2000)
            .prop_map(|(lo, w)| Some(format!("{lo}-{}", lo.saturating_add(w)))),
        // A port list: `;` joins ports and ranges.
        (
            select(vec![22u16, 80, 443]),
            select(vec![80u16, 8000, 65535])
        )
            .prop_map(|(a, b)| Some(format!("{a};{b}-{b}"))),
    ]
}

/// A target string as a user writes it, with a valid prefix (host bits
/// cleared so it loads).
fn address_target() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        (v4_addr(), 0u32..=32).prop_map(|(a, len)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let net = Ipv4Addr::from_bits(a.to_bits() & mask);
            let text = if len == 32 {
                net.to_string()
            } else {
                format!("{net}/{len}")
            };
            (text, false)
        }),
        (v6_addr(), 0u32..=128).prop_map(|(a, len)| {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let net = Ipv6Addr::from_bits(a.to_bits() & mask);
            let text = if len == 128 {
                net.to_string()
            } else {
                format!("{net}/{len}")
            };
            (text, true)
        }),
        Just(("any".to_owned(), false)),
        select(NamedSet::ALL.to_vec()).prop_map(|s| (s.to_string(), false)),
    ]
}

const ADDRESS_WORDS: [&str; 14] = [
    "tcp-bind",
    "tcp-listen",
    "tcp-accept",
    "tcp-connect",
    "udp-bind",
    "udp-send",
    "udp-receive",
    "lookup",
    "connect",
    "bind",
    "listen",
    "accept",
    "udp",
    "all",
];

fn address_rule() -> impl Strategy<Value = (Verdict, &'static str, String)> {
    (
        select(vec![Verdict::Allow, Verdict::Deny]),
        select(ADDRESS_WORDS.to_vec()),
        address_target(),
        ports(),
    )
        .prop_map(|(verdict, word, (target, v6), ports)| {
            let ports = if word == "lookup" || word == "all" {
                None
            } else {
                ports
            };
            let text = match (v6, ports) {
                (true, Some(p)) => format!("[{target}]:{p}"),
                (false, Some(p)) => format!("{target}:{p}"),
                (_, None) => target,
            };
            (verdict, word, text)
        })
}

fn query_addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        v4_addr().prop_map(IpAddr::V4),
        v6_addr().prop_map(IpAddr::V6),
        // The same IPv4 addresses spelled as IPv4-mapped IPv6.
        v4_addr().prop_map(|a| IpAddr::V6(a.to_ipv6_mapped())),
        // ... and as IPv4-compatible IPv6 (folds unless the first octet is 0).
        v4_addr().prop_map(|a| IpAddr::V6(a.to_ipv6_compatible())),
    ];
    let port = prop_oneof![
        select(vec![0u16, 22, 80, 443, 1023, 1024, 8000, 8080, 9999, 65535]),
        any::<u16>(),
    ];
    (ip, port).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(select(vec!["a", "b", "x-y", "example", "com", "org"]), 1..5)
        .prop_map(|labels| labels.join("."))
}

fn name_rule() -> impl Strategy<Value = (Verdict, String)> {
    (
        select(vec![Verdict::Allow, Verdict::Deny]),
        prop_oneof![
            name(),
            name().prop_map(|n| format!("*.{n}")),
            Just("any".to_owned()),
        ],
    )
}

fn index_of(policy: &Policy, rule: Option<&Rule>) -> Option<usize> {
    rule.map(|r| {
        policy
            .rules()
            .iter()
            .position(|p| std::ptr::eq(p, r))
            .expect("decision names one of the policy's rules")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn compiled_matcher_agrees_with_linear_reference_on_addresses(
        rules in proptest::collection::vec(address_rule(), 0..30),
        queries in proptest::collection::vec((select(Use::ALL.to_vec()), query_addr()), 1..30),
        inherit in any::<bool>(),
    ) {
        let mut builder = Policy::builder().inherit_network(inherit);
        for (verdict, word, target) in &rules {
            builder = builder.rule(*verdict, word, target).unwrap();
        }
        let policy = builder.build();
        for (use_, addr) in queries {
            let decision = policy.decide(use_, addr);
            let got = (decision.verdict, index_of(&policy, decision.rule));
            prop_assert_eq!(got, reference_decide(&policy, use_, addr), "{} {}", use_, addr);
            prop_assert_eq!(decision.reason == Reason::Rule, decision.rule.is_some());
        }
    }

    #[test]
    fn allow_rule_any_port_agrees_with_linear_reference_and_ignores_deny_rules(
        rules in proptest::collection::vec(address_rule(), 0..30),
        queries in proptest::collection::vec((select(Use::ALL.to_vec()), query_addr()), 1..30),
        inherit in any::<bool>(),
    ) {
        let mut builder = Policy::builder().inherit_network(inherit);
        for (verdict, word, target) in &rules {
            builder = builder.rule(*verdict, word, target).unwrap();
        }
        let policy = builder.build();
        for (use_, addr) in queries {
            let ip = addr.ip();
            let found = policy.allow_rule_any_port(use_, ip);
            let got = index_of(&policy, found);
            prop_assert_eq!(got, reference_allow_rule_any_port(&policy, use_, ip), "{} {}", use_, ip);
            // The runtime's former scan, through the public rule API.
            let scanned = policy.rules().iter().any(|r| {
                r.verdict == Verdict::Allow && r.uses.contains(use_) && r.target.allows_ip(ip)
            });
            prop_assert_eq!(found.is_some(), scanned, "{} {}", use_, ip);
        }
    }

    #[test]
    fn compiled_matcher_agrees_with_linear_reference_on_names(
        rules in proptest::collection::vec(name_rule(), 0..20),
        queries in proptest::collection::vec((name(), any::<bool>(), any::<bool>()), 1..20),
        inherit in any::<bool>(),
    ) {
        let mut builder = Policy::builder().inherit_network(inherit);
        for (verdict, target) in &rules {
            builder = builder.rule(*verdict, "lookup", target).unwrap();
        }
        let policy = builder.build();
        for (name, upper, dot) in queries {
            let mut query = if upper { name.to_ascii_uppercase() } else { name };
            if dot {
                query.push('.');
            }
            let decision = policy.decide_name(Use::Lookup, &query);
            let got = (decision.verdict, index_of(&policy, decision.rule));
            prop_assert_eq!(got, reference_decide_name(&policy, &query), "{}", query);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Hundreds of rules: interval search trees three and four levels deep.
    #[test]
    fn compiled_matcher_agrees_with_linear_reference_with_deep_search_trees(
        rules in proptest::collection::vec(address_rule(), 200..600),
        queries in proptest::collection::vec((select(Use::ALL.to_vec()), query_addr()), 1..60),
    ) {
        let mut builder = Policy::builder();
        for (verdict, word, target) in &rules {
            builder = builder.rule(*verdict, word, target).unwrap();
        }
        let policy = builder.build();
        for (use_, addr) in queries {
            let decision = policy.decide(use_, addr);
            let got = (decision.verdict, index_of(&policy, decision.rule));
            prop_assert_eq!(got, reference_decide(&policy, use_, addr), "{} {}", use_, addr);
            let found = index_of(&policy, policy.allow_rule_any_port(use_, addr.ip()));
            prop_assert_eq!(found, reference_allow_rule_any_port(&policy, use_, addr.ip()));
        }
    }
}
