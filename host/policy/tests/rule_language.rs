//! The rule language added for issue 4: named sets, port lists, the `udp`
//! and `all` groups, host names on connect rules, and load warnings.

use std::net::SocketAddr;

use capnet_policy::{Policy, Use, Verdict};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn policy(rules: &[(Verdict, &str, &str)]) -> Policy {
    rules
        .iter()
        .fold(Policy::builder(), |b, (v, w, t)| b.rule(*v, w, t).unwrap())
        .build()
}

fn allowed(policy: &Policy, use_: Use, a: &str) -> bool {
    policy.decide(use_, addr(a)).is_allowed()
}

#[test]
fn loopback_set_covers_both_families_and_nothing_else() {
    let p = policy(&[(Verdict::Allow, "connect", "loopback")]);
    assert!(allowed(&p, Use::TcpConnect, "127.0.0.1:80"));
    assert!(allowed(&p, Use::TcpConnect, "127.9.9.9:80"));
    assert!(allowed(&p, Use::TcpConnect, "[::1]:80"));
    assert!(allowed(&p, Use::TcpConnect, "[::ffff:127.0.0.1]:80"));
    assert!(!allowed(&p, Use::TcpConnect, "10.0.0.1:80"));
    let d = p.decide(Use::TcpConnect, addr("127.0.0.1:80"));
    assert_eq!(d.to_string(), r#"rule "connect loopback""#);
}

#[test]
fn private_set_is_rfc1918_rfc4193_and_cgnat() {
    let p = policy(&[(Verdict::Allow, "connect", "private:443")]);
    for a in [
        "10.1.2.3:443",
        "172.31.255.255:443",
        "192.168.0.1:443",
        "100.64.0.1:443",
        "[fd12::1]:443",
    ] {
        assert!(allowed(&p, Use::TcpConnect, a), "{a}");
    }
    for a in [
        "172.32.0.1:443",
        "8.8.8.8:443",
        "10.1.2.3:80",
        "[fe80::1]:443",
    ] {
        assert!(!allowed(&p, Use::TcpConnect, a), "{a}");
    }
}

#[test]
fn metadata_deny_wins_over_allow_any() {
    let p = policy(&[
        (Verdict::Allow, "connect", "any"),
        (Verdict::Deny, "connect", "metadata"),
    ]);
    assert!(allowed(&p, Use::TcpConnect, "8.8.8.8:80"));
    for a in [
        "169.254.169.254:80",
        "[fd00:ec2::254]:80",
        "100.100.100.200:80",
    ] {
        let d = p.decide(Use::TcpConnect, addr(a));
        assert!(!d.is_allowed(), "{a}");
        assert_eq!(d.to_string(), r#"rule "connect metadata""#);
    }
}

#[test]
fn public_set_excludes_the_other_sets() {
    let p = policy(&[(Verdict::Allow, "connect", "public")]);
    assert!(allowed(&p, Use::TcpConnect, "8.8.8.8:443"));
    assert!(allowed(&p, Use::TcpConnect, "[2606:4700::1111]:443"));
    for a in [
        "127.0.0.1:1",
        "10.0.0.1:1",
        "169.254.1.1:1",
        "169.254.169.254:1",
        "224.0.0.1:1",
        "0.0.0.0:1",
        "[::1]:1",
        "[fe80::1]:1",
    ] {
        assert!(!allowed(&p, Use::TcpConnect, a), "{a}");
    }
}

#[test]
fn link_local_set_covers_both_families() {
    let p = policy(&[(Verdict::Allow, "udp-send", "link-local")]);
    assert!(allowed(&p, Use::UdpSend, "169.254.3.4:5353"));
    assert!(allowed(&p, Use::UdpSend, "[fe80::1]:5353"));
    assert!(!allowed(&p, Use::UdpSend, "10.0.0.1:5353"));
}

#[test]
fn port_list_joined_by_semicolons_grants_each_port() {
    let p = Policy::builder()
        .flag(
            "--allow-connect",
            Verdict::Allow,
            "connect",
            "10.0.0.1:80;443;8000-8100,[::1]:22;23",
        )
        .unwrap()
        .build();
    for a in [
        "10.0.0.1:80",
        "10.0.0.1:443",
        "10.0.0.1:8050",
        "[::1]:22",
        "[::1]:23",
    ] {
        assert!(allowed(&p, Use::TcpConnect, a), "{a}");
    }
    for a in ["10.0.0.1:81", "10.0.0.1:8101", "[::1]:24"] {
        assert!(!allowed(&p, Use::TcpConnect, a), "{a}");
    }
    let d = p.decide(Use::TcpConnect, addr("10.0.0.1:443"));
    assert_eq!(
        d.to_string(),
        r#"flag --allow-connect "10.0.0.1:80;443;8000-8100""#
    );
}

#[test]
fn port_list_in_a_file() {
    let p = Policy::builder()
        .toml("policy.toml", "[allow]\ntcp-connect = [\"any:80;443\"]\n")
        .unwrap()
        .build();
    assert!(allowed(&p, Use::TcpConnect, "1.2.3.4:443"));
    assert!(!allowed(&p, Use::TcpConnect, "1.2.3.4:444"));
}

#[test]
fn udp_group_grants_bind_send_and_receive() {
    let p = policy(&[(Verdict::Allow, "udp", "127.0.0.1:53")]);
    for u in [Use::UdpBind, Use::UdpSend, Use::UdpReceive] {
        assert!(allowed(&p, u, "127.0.0.1:53"), "{u}");
    }
    assert!(!allowed(&p, Use::TcpConnect, "127.0.0.1:53"));
}

#[test]
fn all_group_grants_every_use() {
    let p = policy(&[(Verdict::Allow, "all", "loopback")]);
    for u in Use::ALL {
        assert!(allowed(&p, u, "127.0.0.1:1"), "{u}");
    }
    assert!(p.decide_name(Use::Lookup, "127.0.0.1").is_allowed());
}

#[test]
fn connect_rule_naming_a_host_allows_its_lookup() {
    let p = policy(&[(Verdict::Allow, "connect", "api.example.com:443")]);
    assert!(p.decide_name(Use::Lookup, "api.example.com").is_allowed());
    assert!(!p.decide_name(Use::Lookup, "example.com").is_allowed());
    // The connect itself is decided on the name once a lookup pinned it.
    assert!(
        p.decide_host(Use::TcpConnect, "API.example.com.", 443)
            .is_allowed()
    );
    assert!(
        !p.decide_host(Use::TcpConnect, "api.example.com", 80)
            .is_allowed()
    );
    // No address is allowed by the name alone.
    assert!(!allowed(&p, Use::TcpConnect, "93.184.216.34:443"));
}

#[test]
fn connect_rule_naming_a_suffix_allows_names_below_it() {
    let p = policy(&[(Verdict::Allow, "connect", "*.example.com")]);
    assert!(p.decide_name(Use::Lookup, "a.example.com").is_allowed());
    assert!(
        p.decide_host(Use::TcpConnect, "a.b.example.com", 1)
            .is_allowed()
    );
    assert!(
        !p.decide_host(Use::TcpConnect, "example.com", 1)
            .is_allowed()
    );
}

#[test]
fn deny_connect_to_a_name_denies_its_lookup() {
    let p = policy(&[
        (Verdict::Allow, "lookup", "*.example.com"),
        (Verdict::Deny, "connect", "evil.example.com"),
    ]);
    assert!(p.decide_name(Use::Lookup, "good.example.com").is_allowed());
    assert!(!p.decide_name(Use::Lookup, "evil.example.com").is_allowed());
}

#[test]
fn empty_allow_list_is_a_warning_not_an_error() {
    let p = Policy::builder()
        .toml(
            "policy.toml",
            "[allow]\nconnect = []\n\n[deny]\n  udp = []\n",
        )
        .unwrap()
        .build();
    assert_eq!(
        p.warnings(),
        [
            r#"policy.toml:2:1: allow list "connect" is empty and allows nothing (add targets, or remove the key)"#,
            r#"policy.toml:5:3: deny list "udp" is empty and denies nothing (add targets, or remove the key)"#,
        ]
    );
}

#[test]
fn summary_counts_rules_per_use() {
    let p = policy(&[
        (Verdict::Allow, "listen", "127.0.0.1:8080"),
        (Verdict::Deny, "accept", "10.0.0.0/8"),
    ]);
    let s = p.summary();
    assert_eq!(s[0], (Use::TcpBind, 1, 0));
    assert_eq!(s[2], (Use::TcpAccept, 1, 1));
}

mod parser_never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Fragments of the rule language, so random input often gets deep
    /// into the parser rather than failing on the first byte.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[allow]\n".to_owned()),
            Just("[deny]\n".to_owned()),
            Just("connect = [".to_owned()),
            Just("\"".to_owned()),
            Just("]\n".to_owned()),
            Just(":".to_owned()),
            Just("/".to_owned()),
            Just("*.".to_owned()),
            Just("[::1]".to_owned()),
            Just(";".to_owned()),
            Just("-".to_owned()),
            Just(",".to_owned()),
            Just("10.0.0.0".to_owned()),
            Just("65536".to_owned()),
            Just("private".to_owned()),
            "[a-z0-9.:*/\\[\\];,-]{0,8}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]

        #[test]
        fn parser_never_panics_on_arbitrary_input(
            parts in proptest::collection::vec(fragment(), 0..12),
            word in select(vec!["connect", "listen", "lookup", "udp", "all", "x"]),
        ) {
            let text = parts.concat();
            let _ = Policy::builder().toml("fuzz.toml", &text).map(|b| b.build());
            let _ = Policy::builder()
                .flag("--allow-x", Verdict::Allow, word, &text)
                .map(|b| b.build());
            let _ = Policy::builder().rule(Verdict::Deny, word, &text).map(|b| b.build());
        }
    }

    use proptest::sample::select;
}
