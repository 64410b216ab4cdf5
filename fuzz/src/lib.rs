//! What the fuzz targets check, beyond "does not panic".
//!
//! Each target turns its input into policy text, flags, targets or addresses and hands them to
//! a check here. A check panics, which libFuzzer reports as a crash with the input that caused
//! it, when a property of the policy crate fails:
//!
//! - a load error of a file names a line and column inside the file, and the rule when it is
//!   about one (the column then points at the rule's string);
//! - a policy that loads renders back to TOML that loads to the same rules ([`render_toml`]);
//! - a target, network or port range renders to text that parses back to itself;
//! - the compiled tables decide every probe as a linear scan of [`Rule::covers`] does, and name
//!   a rule that covers the probe with the decided verdict and is as specific as any other;
//! - an IPv4-mapped or IPv4-compatible IPv6 address is decided as its IPv4 address;
//! - normalising is idempotent and folds exactly the mapped and compatible spellings;
//! - a DNS answer is refused exactly when it lies in a range a name must never point at and no
//!   allow rule of the policy names the address ([`Policy::refuses_dns_answer`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use capnet_policy::{
    IpNet, NamedSet, Origin, Policy, PolicyError, PortRange, Reason, Rule, Target, Use, Verdict,
    normalize,
};

pub mod input;

/// The origin every fuzzed file is loaded under.
pub const ORIGIN: &str = "fuzz.toml";

/// Loads `text` as a policy file and checks the error or the policy.
pub fn check_toml(text: &str) {
    match Policy::builder().toml(ORIGIN, text) {
        Err(e) => check_file_error(&e, text),
        Ok(builder) => {
            let policy = builder.build();
            for rule in all_rules(&policy) {
                let Origin::File { path, line, column } = &rule.source.origin else {
                    panic!("a rule of a file has origin {:?}", rule.source.origin);
                };
                assert_eq!(&**path, ORIGIN);
                assert!(
                    place_in(text, *line, *column).is_some(),
                    "rule {rule} is placed outside the file"
                );
            }
            for warning in policy.warnings() {
                assert!(
                    warning.starts_with(&format!("{ORIGIN}:")),
                    "a warning without its place: {warning}"
                );
            }
            check_policy(&policy, &probes(&policy, &[]));
        }
    }
}

/// A load error of a file: one line, `fuzz.toml:LINE:COLUMN: ...` with LINE and COLUMN inside
/// the file; about a rule, it quotes the rule and points at its string.
pub fn check_file_error(e: &PolicyError, text: &str) {
    let shown = e.to_string();
    assert!(one_line(&shown), "a load error spans lines: {shown:?}");
    let Some((line, column)) = e.line_column() else {
        panic!("a load error names no line: {shown}");
    };
    let at = place_in(text, line, column)
        .unwrap_or_else(|| panic!("{shown}: {line}:{column} is outside the file"));
    assert!(
        shown.starts_with(&format!("{ORIGIN}:{line}:{column}: ")),
        "{shown}"
    );
    if let Some(rule) = e.rule() {
        assert!(
            shown.contains(&format!("rule \"{}\": ", escaped(rule))),
            "{shown}"
        );
        assert!(
            matches!(at, Some('"' | '\'')),
            "{shown}: the place of a rule is not its string but {at:?}"
        );
    }
}

/// `text` with its control characters escaped, as messages write them.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether `text` is one line with no control character (a message must not forge lines or
/// drive the terminal with what a policy holds).
fn one_line(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// The character at 1-based `line` and `column` (in characters) of `text`: `Some(None)` just
/// past a line's end, `None` outside the file.
fn place_in(text: &str, line: u32, column: u32) -> Option<Option<char>> {
    let row = text.split('\n').nth(line.checked_sub(1)? as usize)?;
    let column = column.checked_sub(1)? as usize;
    let width = row.chars().count();
    (column <= width).then(|| row.chars().nth(column))
}

/// Adds one CLI flag (`--allow-WORD` / `--deny-WORD`) and checks the error or its rules.
pub fn check_flag(verdict: Verdict, word: &str, list: &str) -> Option<Policy> {
    let flag = format!("--{verdict}-{word}");
    match Policy::builder().flag(&flag, verdict, word, list) {
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{}: ", escaped(&flag))),
                "{shown}"
            );
            assert!(one_line(&shown), "{shown:?}");
            assert_eq!(e.line_column(), None);
            None
        }
        Ok(builder) => {
            let policy = builder.build();
            let items: Vec<&str> = list.split(',').map(str::trim).collect();
            for rule in policy.rules() {
                assert_eq!(rule.source.origin, Origin::Flag(flag.as_str().into()));
                assert!(
                    items.contains(&rule.source.text.as_str()),
                    "{rule}: not an item of {list:?}"
                );
            }
            Some(policy)
        }
    }
}

/// Adds one `--library-allow`/`--library-deny` spec (`NAME=USE LIST`) and checks the error.
pub fn check_library_flag(verdict: Verdict, spec: &str) -> Option<Policy> {
    let flag = format!("--library-{verdict}");
    match Policy::builder()
        .rule(Verdict::Allow, "all", "any")
        .expect("a valid rule")
        .library_flag(&flag, verdict, spec)
    {
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("{flag}: ")), "{shown}");
            assert!(one_line(&shown), "{shown:?}");
            None
        }
        Ok(builder) => {
            let policy = builder.build();
            let name = spec.split_once('=').expect("a spec that loaded has '='").0;
            let library = policy
                .library(name.trim())
                .expect("the spec's library is in the policy");
            for rule in library.rules() {
                assert_eq!(
                    rule.source.origin,
                    Origin::Flag(format!("{flag} {}", name.trim()).into())
                );
            }
            Some(policy)
        }
    }
}

/// One rule written as one string (`USE TARGET[:PORTS]`), as a guest hands it to
/// `capnet:sockets/attenuate`.
pub fn check_rule_text(verdict: Verdict, text: &str) -> Option<Policy> {
    match Policy::builder().rule_text(verdict, text) {
        Err(e) => {
            let shown = e.to_string();
            assert!(one_line(&shown), "{shown:?}");
            assert_eq!(e.line_column(), None);
            assert_eq!(e.origin(), None);
            None
        }
        Ok(builder) => Some(builder.build()),
    }
}

/// Parses `text` as a target, a network, a port range and a rule entry, and checks that what
/// parses renders to text that parses back to the same value.
pub fn check_target_text(text: &str) {
    if let Ok(target) = Target::parse(text) {
        let shown = target.to_string();
        let again = Target::parse(&shown)
            .unwrap_or_else(|e| panic!("{text:?} parsed to {shown:?}, which does not: {e}"));
        assert_eq!(again, target, "{text:?} -> {shown:?}");
        match &target {
            Target::Name(name) => {
                assert!(target.allows_name(name), "{name} does not match itself");
                assert!(target.allows_name(&format!("{}.", name.to_ascii_uppercase())));
                assert!(!target.allows_name(&format!("x.{name}")));
            }
            Target::Suffix(suffix) => {
                assert!(target.allows_name(&format!("a.{suffix}")));
                assert!(target.allows_name(&format!("A.B.{}.", suffix.to_ascii_uppercase())));
                assert!(!target.allows_name(suffix), "*.{suffix} matches {suffix}");
            }
            Target::Ip(net) => check_net(*net),
            Target::Any | Target::Set(_) => {}
        }
    }
    if let Ok(net) = IpNet::parse(text) {
        check_net(net);
    }
    if let Ok(ports) = PortRange::parse(text) {
        assert!(ports.lo() <= ports.hi());
        assert_eq!(PortRange::parse(&ports.to_string()).ok(), Some(ports));
    }
    for (verdict, word) in [
        (Verdict::Allow, "connect"),
        (Verdict::Deny, "lookup"),
        (Verdict::Allow, "listen"),
    ] {
        match Policy::builder().rule(verdict, word, text) {
            Err(e) => {
                let shown = e.to_string();
                assert!(shown.starts_with("rule \""), "{shown}");
                assert!(one_line(&shown), "{shown:?}");
            }
            Ok(builder) => {
                let policy = builder.build();
                check_round_trip(&policy);
            }
        }
    }
}

/// A network is stored normalised, holds its own address, and renders to text that parses
/// back to it.
fn check_net(net: IpNet) {
    assert_eq!(normalize(net.addr()), net.addr(), "{net} is not normalised");
    assert!(net.contains(net.addr()), "{net} does not hold its address");
    let again = IpNet::parse(&net.to_string())
        .unwrap_or_else(|e| panic!("{net} renders to text that does not parse: {e}"));
    assert_eq!(again, net);
}

/// The independent definition of normalising: IPv4-mapped (`::ffff:a.b.c.d`) and
/// IPv4-compatible with a first octet not 0 (`::a.b.c.d`) fold to IPv4.
fn folded(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let o = v6.octets();
    let v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let zeros = |r: std::ops::Range<usize>| o[r].iter().all(|&b| b == 0);
    let mapped = zeros(0..10) && o[10] == 0xff && o[11] == 0xff;
    let compatible = zeros(0..12) && o[12] != 0;
    if mapped || compatible {
        IpAddr::V4(v4)
    } else {
        ip
    }
}

/// Normalising: idempotent, and as [`folded`] defines it.
pub fn check_normalize(ip: IpAddr) {
    let n = normalize(ip);
    assert_eq!(n, folded(ip), "{ip}");
    assert_eq!(normalize(n), n, "{ip}: not idempotent");
    if let IpAddr::V4(v4) = ip {
        assert_eq!(normalize(IpAddr::V6(v4.to_ipv6_mapped())), ip);
    }
}

/// The IPv6 spellings of an IPv4 address that must be decided as the address itself.
fn v6_spellings(v4: Ipv4Addr) -> Vec<IpAddr> {
    let mut out = vec![IpAddr::V6(v4.to_ipv6_mapped())];
    if v4.octets()[0] != 0 {
        out.push(IpAddr::V6(v4.to_ipv6_compatible()));
    }
    out
}

/// What to ask a policy: addresses with ports, and names with ports.
#[derive(Debug, Default)]
pub struct Probes {
    /// Addresses, each asked on each of its ports.
    pub addrs: Vec<(IpAddr, Vec<u16>)>,
    /// Host names (or IP literals written as names), each asked on each of its ports.
    pub names: Vec<(String, Vec<u16>)>,
}

/// Probes at the edges of every rule of `policy`: each network's first and last address and
/// the addresses beside them, each port range's ends and the ports beside them, each name and
/// names just above and beside it; plus `extra` addresses.
pub fn probes(policy: &Policy, extra: &[IpAddr]) -> Probes {
    const MAX: usize = 48;
    let mut addrs: Vec<(IpAddr, Vec<u16>)> = extra.iter().map(|ip| (*ip, vec![0, 80])).collect();
    let mut names = Vec::new();
    for rule in all_rules(policy) {
        let (lo, hi) = (rule.ports.lo(), rule.ports.hi());
        let ports = vec![lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)];
        let nets: Vec<IpNet> = match &rule.target {
            Target::Ip(net) => vec![*net],
            Target::Set(set) => set.nets().iter().take(2).copied().collect(),
            Target::Name(n) => {
                names.push((n.clone(), ports.clone()));
                names.push((format!("sub.{n}"), ports.clone()));
                names.push((format!("{}.", n.to_ascii_uppercase()), ports.clone()));
                continue;
            }
            Target::Suffix(s) => {
                names.push((s.clone(), ports.clone()));
                names.push((format!("a.{s}"), ports.clone()));
                names.push((format!("x{s}"), ports.clone()));
                continue;
            }
            Target::Any => {
                names.push(("any.example".to_owned(), ports.clone()));
                continue;
            }
        };
        for net in nets {
            for ip in edges(net) {
                addrs.push((ip, ports.clone()));
            }
        }
        if addrs.len() > MAX {
            break;
        }
    }
    addrs.truncate(MAX);
    names.truncate(MAX / 2);
    Probes { addrs, names }
}

/// A network's first and last addresses and their neighbours outside it.
fn edges(net: IpNet) -> Vec<IpAddr> {
    match net.addr() {
        IpAddr::V4(a) => {
            let lo = a.to_bits();
            let size = if net.prefix() == 0 {
                u32::MAX
            } else {
                (1u32 << (32 - net.prefix())) - 1
            };
            let hi = lo | size;
            [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]
                .map(|b| IpAddr::V4(Ipv4Addr::from_bits(b)))
                .to_vec()
        }
        IpAddr::V6(a) => {
            let lo = a.to_bits();
            let size = if net.prefix() == 0 {
                u128::MAX
            } else {
                (1u128 << (128 - net.prefix())) - 1
            };
            let hi = lo | size;
            [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]
                .map(|b| IpAddr::V6(Ipv6Addr::from_bits(b)))
                .to_vec()
        }
    }
}

/// The app's rules and every library's.
fn all_rules(policy: &Policy) -> impl Iterator<Item = &Rule> {
    policy
        .rules()
        .iter()
        .chain(policy.libraries().flat_map(|(_, l)| l.rules().iter()))
}

/// Every check of a loaded policy: the round trip through TOML, and each probe decided as the
/// reference decides it (in the app's policy and in each library's).
pub fn check_policy(policy: &Policy, probes: &Probes) {
    for rule in all_rules(policy) {
        assert!(one_line(&rule.to_string()), "{:?}", rule.to_string());
    }
    check_round_trip(policy);
    check_decisions(policy, probes);
    for (_, library) in policy.libraries() {
        check_decisions(library, probes);
    }
}

/// Checks every probe against the linear reference, the IPv6 spellings of IPv4 probes, the
/// DNS answer filter and `allow_rule_any_port`.
pub fn check_decisions(policy: &Policy, probes: &Probes) {
    for (ip, ports) in &probes.addrs {
        check_normalize(*ip);
        check_dns_answer(policy, *ip);
        for use_ in Use::ALL {
            check_any_port(policy, use_, *ip);
            for &port in ports {
                let addr = SocketAddr::new(*ip, port);
                let decision = policy.decide(use_, addr);
                check_addr_decision(policy, use_, addr, decision.verdict, decision.rule);
                if let IpAddr::V4(v4) = ip {
                    for spelling in v6_spellings(*v4) {
                        let other = policy.decide(use_, SocketAddr::new(spelling, port));
                        assert_eq!(
                            (other.verdict, other.rule),
                            (decision.verdict, decision.rule),
                            "{use_} {spelling} port {port} is not decided as {v4}"
                        );
                    }
                }
            }
        }
    }
    for (name, ports) in &probes.names {
        for use_ in [Use::Lookup, Use::TcpConnect, Use::UdpSend] {
            for &port in ports {
                let decision = policy.decide_host(use_, name, port);
                check_name_decision(policy, use_, name, port, decision.verdict, decision.rule);
            }
        }
    }
}

/// The default verdict when no rule matches.
fn default_verdict(policy: &Policy) -> Verdict {
    if policy.is_inherit_network() {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}

/// How specific `rule` is for `ip`: its prefix length, the prefix of a named set's block
/// holding `ip`, 0 for `any`. Only called for rules that cover `ip`.
fn specificity(rule: &Rule, ip: IpAddr) -> u8 {
    match &rule.target {
        Target::Ip(net) => net.prefix(),
        Target::Set(set) => set
            .nets()
            .iter()
            .filter(|n| n.allows(ip))
            .map(|n| n.prefix())
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

fn width(rule: &Rule) -> u16 {
    rule.ports.hi() - rule.ports.lo()
}

/// A decision on an address against the linear scan: deny rules first, then allow rules, then
/// the default; the rule named covers the address with the decided verdict and no covering
/// rule of that verdict is more specific (longer prefix, then fewer ports).
fn check_addr_decision(
    policy: &Policy,
    use_: Use,
    addr: SocketAddr,
    verdict: Verdict,
    rule: Option<&Rule>,
) {
    let covering = |v: Verdict| {
        policy
            .rules()
            .iter()
            .filter(move |r| r.verdict == v && r.covers(use_, addr))
    };
    let expected = if covering(Verdict::Deny).next().is_some() {
        Verdict::Deny
    } else if covering(Verdict::Allow).next().is_some() {
        Verdict::Allow
    } else {
        assert_eq!(
            rule, None,
            "{use_} {addr}: no rule covers it, yet one is named"
        );
        assert_eq!(verdict, default_verdict(policy), "{use_} {addr}");
        return;
    };
    assert_eq!(verdict, expected, "{use_} {addr}: decided {verdict:?}");
    let rule = rule.unwrap_or_else(|| panic!("{use_} {addr}: a rule covers it, none is named"));
    assert_eq!(rule.verdict, verdict, "{use_} {addr}: {rule}");
    assert!(
        rule.covers(use_, addr),
        "{use_} {addr}: {rule} does not cover it"
    );
    let ip = normalize(addr.ip());
    let best = covering(verdict)
        .map(|r| (std::cmp::Reverse(specificity(r, ip)), width(r)))
        .min();
    assert_eq!(
        Some((std::cmp::Reverse(specificity(rule, ip)), width(rule))),
        best,
        "{use_} {addr}: {rule} is not the most specific covering rule"
    );
}

/// Whether `rule` covers `use_` of `name` on `port`, as [`Policy::decide_host`] documents: an
/// exact name, a name strictly below a suffix, or `any` on every port (an `any` on some ports
/// decides the addresses, not the name).
fn covers_host(rule: &Rule, use_: Use, name: &str, port: u16) -> bool {
    rule.uses.contains(use_)
        && rule.ports.allows(port)
        && rule.target.allows_name(name)
        && (rule.target != Target::Any || rule.ports.is_any())
}

/// A decision on a host name against the linear scan (IP literals as addresses).
fn check_name_decision(
    policy: &Policy,
    use_: Use,
    name: &str,
    port: u16,
    verdict: Verdict,
    rule: Option<&Rule>,
) {
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let literal = lower
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(&lower)
        .parse::<IpAddr>();
    if let Ok(ip) = literal {
        return check_addr_decision(policy, use_, SocketAddr::new(ip, port), verdict, rule);
    }
    let covering = |v: Verdict| {
        policy
            .rules()
            .iter()
            .filter(move |r| r.verdict == v && covers_host(r, use_, name, port))
    };
    let expected = if covering(Verdict::Deny).next().is_some() {
        Verdict::Deny
    } else if covering(Verdict::Allow).next().is_some() {
        Verdict::Allow
    } else {
        assert_eq!(rule, None, "{use_} {name:?} port {port}: no rule covers it");
        assert_eq!(verdict, default_verdict(policy), "{use_} {name:?}");
        return;
    };
    assert_eq!(verdict, expected, "{use_} {name:?} port {port}");
    let rule = rule.unwrap_or_else(|| panic!("{use_} {name:?}: a rule covers it, none named"));
    assert_eq!(rule.verdict, verdict);
    assert!(
        covers_host(rule, use_, name, port),
        "{use_} {name:?} port {port}: {rule} does not cover it"
    );
    // An exact name beats the longest suffix, which beats `any`.
    let rank = |r: &Rule| match &r.target {
        Target::Name(_) => usize::MAX,
        Target::Suffix(s) => s.split('.').count(),
        _ => 0,
    };
    let best = covering(verdict).map(rank).max();
    assert_eq!(
        Some(rank(rule)),
        best,
        "{use_} {name:?}: {rule} is not the most specific"
    );
}

/// `allow_rule_any_port` finds an allow rule of `use_` covering `ip` on some port exactly when
/// the linear scan does.
fn check_any_port(policy: &Policy, use_: Use, ip: IpAddr) {
    let covers_some_port = |r: &Rule| r.covers(use_, SocketAddr::new(ip, r.ports.lo()));
    let expected = policy
        .rules()
        .iter()
        .any(|r| r.verdict == Verdict::Allow && covers_some_port(r));
    let found = policy.allow_rule_any_port(use_, ip);
    assert_eq!(
        found.is_some(),
        expected,
        "allow_rule_any_port({use_}, {ip})"
    );
    if let Some(rule) = found {
        assert_eq!(rule.verdict, Verdict::Allow);
        assert!(covers_some_port(rule), "{use_} {ip}: {rule}");
    }
}

/// The ranges a DNS answer must never point at unless a rule names the address.
fn never_from_dns(ip: IpAddr) -> bool {
    ip.is_unspecified()
        || [
            NamedSet::Loopback,
            NamedSet::Private,
            NamedSet::LinkLocal,
            NamedSet::Metadata,
        ]
        .iter()
        .any(|set| set.contains(ip))
}

/// The DNS answer filter against its definition: an answer (normalised) in `loopback`,
/// `private`, `link-local`, `metadata` or unspecified is refused unless the policy inherits
/// the network or an allow rule of `tcp-connect` or `udp-send` covers it on some port; the
/// IPv6 spellings of an IPv4 answer are refused as it is.
pub fn check_dns_answer(policy: &Policy, ip: IpAddr) {
    let n = folded(ip);
    let named = [Use::TcpConnect, Use::UdpSend].iter().any(|&u| {
        policy
            .rules()
            .iter()
            .any(|r| r.verdict == Verdict::Allow && r.covers(u, SocketAddr::new(n, r.ports.lo())))
    });
    let refuse = never_from_dns(n) && !policy.is_inherit_network() && !named;
    let refused = policy.refuses_dns_answer(ip);
    assert_eq!(
        refused.is_some(),
        refuse,
        "DNS answer {ip}: refused as {refused:?}"
    );
    if let IpAddr::V4(v4) = n {
        for spelling in v6_spellings(v4) {
            assert_eq!(policy.refuses_dns_answer(spelling), refused, "{spelling}");
        }
    }
}

/// The rules of one table as comparable keys: verdict, use, target and ports.
fn keys(rules: &[Rule]) -> BTreeSet<(&'static str, Use, String, u16, u16)> {
    rules
        .iter()
        .flat_map(|r| {
            r.uses.iter().map(move |u| {
                (
                    r.verdict.as_str(),
                    u,
                    r.target.to_string(),
                    r.ports.lo(),
                    r.ports.hi(),
                )
            })
        })
        .collect()
}

/// `TARGET[:PORTS]` as a rule entry writes it: IPv6 in brackets, no ports for every port.
pub fn entry_text(target: &Target, ports: PortRange) -> String {
    let shown = match target {
        Target::Ip(net) if net.addr().is_ipv6() => format!("[{net}]"),
        t => t.to_string(),
    };
    if ports.is_any() {
        shown
    } else {
        format!("{shown}:{ports}")
    }
}

/// A policy file that loads to the same rules as `policy`: one entry per rule and use, under
/// the use's own word, the app's and each library's.
pub fn render_toml(policy: &Policy) -> String {
    let mut out = String::new();
    writeln!(out, "inherit-network = {}", policy.is_inherit_network()).unwrap();
    render_tables(&mut out, "", policy.rules());
    for (name, library) in policy.libraries() {
        writeln!(out, "[library.{name}]").unwrap();
        render_tables(&mut out, &format!("library.{name}."), library.rules());
    }
    out
}

fn render_tables(out: &mut String, prefix: &str, rules: &[Rule]) {
    for verdict in [Verdict::Allow, Verdict::Deny] {
        writeln!(out, "[{prefix}{verdict}]").unwrap();
        for use_ in Use::ALL {
            let entries: Vec<String> = rules
                .iter()
                .filter(|r| r.verdict == verdict && r.uses.contains(use_))
                .map(|r| format!("{:?}", entry_text(&r.target, r.ports)))
                .collect();
            if !entries.is_empty() {
                writeln!(out, "{use_} = [{}]", entries.join(", ")).unwrap();
            }
        }
    }
}

/// The policy, rendered to TOML and loaded again, has the same rules, setting and libraries.
pub fn check_round_trip(policy: &Policy) {
    let text = render_toml(policy);
    let again = match Policy::builder().toml("rendered.toml", &text) {
        Ok(builder) => builder.build(),
        Err(e) => panic!("the rendering of a policy does not load: {e}\n{text}"),
    };
    assert_eq!(again.is_inherit_network(), policy.is_inherit_network());
    assert_eq!(keys(again.rules()), keys(policy.rules()), "\n{text}");
    let libraries = |p: &Policy| -> Vec<String> { p.libraries().map(|(n, _)| n.into()).collect() };
    assert_eq!(libraries(&again), libraries(policy), "\n{text}");
    for (name, library) in policy.libraries() {
        let other = again.library(name).expect("the library loads again");
        assert_eq!(keys(other.rules()), keys(library.rules()), "{name}\n{text}");
    }
}

/// A decision's reason agrees with its rule.
pub fn check_reason(policy: &Policy, use_: Use, addr: SocketAddr) {
    let d = policy.decide(use_, addr);
    match d.reason {
        Reason::Rule => assert!(d.rule.is_some()),
        Reason::DefaultDeny => assert!(d.rule.is_none() && !policy.is_inherit_network()),
        Reason::InheritNetwork => assert!(d.rule.is_none() && policy.is_inherit_network()),
        Reason::EphemeralBind => panic!("decide answers no ephemeral bind"),
    }
}
