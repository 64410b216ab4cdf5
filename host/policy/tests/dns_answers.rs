//! The DNS rebinding defence, port by port: an answer a DNS server gave in a guarded range
//! (loopback, private, link-local, metadata, unspecified) is kept at lookup when a rule names
//! the address on some port, and reached at connect or send only where a rule naming the
//! address allows that very port. A name's rule never widens it.

use capnet_policy::{Pinned, Policy, Use, Verdict};
use std::net::SocketAddr;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn policy(rules: &[(Verdict, &str, &str)]) -> Policy {
    rules
        .iter()
        .fold(Policy::builder(), |b, (verdict, word, target)| {
            b.rule(*verdict, word, target).unwrap()
        })
        .build()
}

const FROM_DNS: [Pinned<'static>; 1] = [Pinned {
    name: "some.example.com",
    from_dns: true,
}];

#[test]
fn an_address_rule_on_other_ports_keeps_a_loopback_answer_but_never_admits_the_names_port() {
    let policy = policy(&[
        (Verdict::Allow, "connect", "some.example.com:8001"),
        (Verdict::Allow, "connect", "127.0.0.1:8002;8003"),
    ]);
    // At lookup there is no port: the answer is kept, as a rule names the address.
    assert_eq!(
        policy.refuses_dns_answer("127.0.0.1".parse().unwrap()),
        None
    );
    // At connect there is: the name's port is not one the address rule allows.
    let decision = policy.decide_pinned(Use::TcpConnect, addr("127.0.0.1:8001"), FROM_DNS);
    assert!(!decision.is_allowed(), "{decision}");
    for port in [8002, 8003] {
        let at = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
        let decision = policy.decide_pinned(Use::TcpConnect, at, FROM_DNS);
        assert_eq!(
            decision.to_string(),
            r#"rule "connect 127.0.0.1:8002;8003""#,
            "{at}"
        );
    }
}

#[test]
fn a_guarded_answer_is_reached_through_a_name_for_udp_send_only_where_the_address_allows_it() {
    let policy = policy(&[
        (Verdict::Allow, "udp-send", "some.example.com:53"),
        (Verdict::Allow, "udp-send", "10.0.0.0/8:5353"),
    ]);
    for (at, allowed) in [
        ("10.1.2.3:53", false),
        ("10.1.2.3:5353", true),
        ("192.168.1.1:53", false),
    ] {
        let decision = policy.decide_pinned(Use::UdpSend, addr(at), FROM_DNS);
        assert_eq!(decision.is_allowed(), allowed, "{at}: {decision}");
    }
}

#[test]
fn every_guarded_range_gains_nothing_from_a_name() {
    let policy = policy(&[(Verdict::Allow, "connect", "some.example.com:80")]);
    for at in [
        "127.0.0.1:80",
        "[::1]:80",
        "10.0.0.1:80",
        "169.254.169.254:80",
        "[fe80::1]:80",
        "0.0.0.0:80",
        "[::ffff:127.0.0.1]:80",
    ] {
        let decision = policy.decide_pinned(Use::TcpConnect, addr(at), FROM_DNS);
        assert!(!decision.is_allowed(), "{at}: {decision}");
    }
}

#[test]
fn a_public_answer_is_reached_on_the_names_port_only() {
    let policy = policy(&[(Verdict::Allow, "connect", "some.example.com:443")]);
    let decision = policy.decide_pinned(Use::TcpConnect, addr("93.184.216.34:443"), FROM_DNS);
    assert_eq!(
        decision.to_string(),
        r#"rule "connect some.example.com:443""#
    );
    let decision = policy.decide_pinned(Use::TcpConnect, addr("93.184.216.34:80"), FROM_DNS);
    assert!(!decision.is_allowed());
}

#[test]
fn an_answer_the_host_gave_itself_is_reached_through_the_name() {
    // `localhost` and /etc/hosts are the operator's, not a DNS server's.
    let policy = policy(&[(Verdict::Allow, "connect", "localhost:8001")]);
    let local = [Pinned {
        name: "localhost",
        from_dns: false,
    }];
    let decision = policy.decide_pinned(Use::TcpConnect, addr("127.0.0.1:8001"), local);
    assert_eq!(decision.to_string(), r#"rule "connect localhost:8001""#);
}

#[test]
fn a_deny_rule_naming_the_host_wins_over_an_address_allow() {
    let policy = policy(&[
        (Verdict::Allow, "connect", "127.0.0.1"),
        (Verdict::Deny, "connect", "some.example.com"),
    ]);
    let decision = policy.decide_pinned(Use::TcpConnect, addr("127.0.0.1:8001"), FROM_DNS);
    assert!(!decision.is_allowed());
    assert_eq!(decision.to_string(), r#"rule "connect some.example.com""#);
}

#[test]
fn other_uses_are_decided_by_the_address_alone() {
    let policy = policy(&[
        (Verdict::Allow, "connect", "some.example.com"),
        (Verdict::Allow, "udp-send", "some.example.com"),
    ]);
    let at = addr("93.184.216.34:80");
    assert!(
        policy
            .decide_pinned(Use::UdpSend, at, FROM_DNS)
            .is_allowed()
    );
    for use_ in [Use::UdpReceive, Use::TcpAccept, Use::TcpBind] {
        assert!(
            !policy.decide_pinned(use_, at, FROM_DNS).is_allowed(),
            "{use_}"
        );
    }
}

#[test]
fn a_udp_clients_ephemeral_bind_needs_a_udp_right_and_only_that() {
    let ephemeral = addr("0.0.0.0:0");
    let sender = policy(&[(Verdict::Allow, "udp-send", "127.0.0.1:9000")]);
    assert_eq!(
        sender.decide_udp_bind(ephemeral).to_string(),
        "no rule: an ephemeral bind, covered by udp-send or udp-receive"
    );
    assert!(sender.decide_udp_bind(addr("[::]:0")).is_allowed());
    // A bind with an address or a port of its own is a bind.
    assert!(!sender.decide_udp_bind(addr("0.0.0.0:5000")).is_allowed());
    assert!(!sender.decide_udp_bind(addr("127.0.0.1:0")).is_allowed());
    // No UDP right at all: refused.
    let tcp_only = policy(&[(Verdict::Allow, "connect", "loopback")]);
    assert!(!tcp_only.decide_udp_bind(ephemeral).is_allowed());
    // A deny rule naming it wins.
    let denied = policy(&[
        (Verdict::Allow, "udp-send", "127.0.0.1:9000"),
        (Verdict::Deny, "udp-bind", "0.0.0.0"),
    ]);
    assert!(!denied.decide_udp_bind(ephemeral).is_allowed());
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    const TARGETS: [&str; 11] = [
        "127.0.0.1",
        "127.0.0.0/8",
        "loopback",
        "private",
        "10.0.0.0/8",
        "metadata",
        "public",
        "any",
        "0.0.0.0",
        "[::1]",
        "[fe80::/10]",
    ];
    const PORTS: [&str; 5] = ["", ":80", ":8001;8002", ":1-1000", ":*"];

    fn rule() -> impl Strategy<Value = (Verdict, &'static str, String)> {
        (
            select(vec![Verdict::Allow, Verdict::Deny]),
            select(vec!["connect", "udp-send"]),
            prop_oneof![select(TARGETS.to_vec()), Just("some.example.com")],
            select(PORTS.to_vec()),
        )
            .prop_map(|(verdict, word, target, ports)| (verdict, word, format!("{target}{ports}")))
    }

    fn query() -> impl Strategy<Value = (Use, SocketAddr)> {
        let ip = select(vec![
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "93.184.216.34",
            "2001:db8::1",
        ]);
        let port = select(vec![80u16, 999, 8001, 8002, 5000]);
        (select(vec![Use::TcpConnect, Use::UdpSend]), ip, port)
            .prop_map(|(use_, ip, port)| (use_, SocketAddr::new(ip.parse().unwrap(), port)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A guarded answer from DNS is reached through a name only where the address alone
        /// would be; a deny rule naming the host always refuses.
        #[test]
        fn a_name_never_widens_what_a_guarded_dns_answer_reaches(
            rules in proptest::collection::vec(rule(), 0..12),
            queries in proptest::collection::vec(query(), 1..20),
            inherit in any::<bool>(),
        ) {
            let mut builder = Policy::builder().inherit_network(inherit);
            for (verdict, word, target) in &rules {
                builder = builder.rule(*verdict, word, target).unwrap();
            }
            let policy = builder.build();
            for (use_, addr) in queries {
                let pinned = policy.decide_pinned(use_, addr, FROM_DNS);
                let by_address = policy.decide(use_, addr);
                if capnet_policy::guarded_range(addr.ip()).is_some() && pinned.is_allowed() {
                    prop_assert!(by_address.is_allowed(), "{} {}: {}", use_, addr, pinned);
                }
                let named = policy.decide_host(use_, "some.example.com", addr.port());
                if named.rule.is_some() && !named.is_allowed() {
                    prop_assert!(!pinned.is_allowed(), "{} {}: {}", use_, addr, pinned);
                }
            }
        }
    }
}
