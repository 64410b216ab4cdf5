//! Decisions: what a built policy allows and denies, and which rule it names.

use std::net::SocketAddr;

use capnet_policy::{Origin, Policy, PolicyBuilder, Reason, Target, Use, UseSet, Verdict};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn allow(rules: &[(&str, &str)]) -> Policy {
    let mut b = Policy::builder();
    for (word, target) in rules {
        b = b.rule(Verdict::Allow, word, target).unwrap();
    }
    b.build()
}

fn allowed(policy: &Policy, use_: Use, a: &str) -> bool {
    policy.decide(use_, addr(a)).is_allowed()
}

#[test]
fn default_policy_denies_everything() {
    let policy = Policy::default();
    for use_ in Use::ALL {
        let d = policy.decide(use_, addr("127.0.0.1:8080"));
        assert_eq!(d.verdict, Verdict::Deny, "{use_}");
        assert_eq!(d.reason, Reason::DefaultDeny);
        assert!(d.rule.is_none());
        assert!(!policy.decide_name(use_, "localhost").is_allowed());
    }
    assert!(!policy.is_inherit_network());
    assert!(policy.rules().is_empty());
}

#[test]
fn inherit_network_allows_uses_no_rule_mentions() {
    let policy = Policy::inherit_network();
    assert!(policy.is_inherit_network());
    let d = policy.decide(Use::TcpConnect, addr("203.0.113.9:443"));
    assert!(d.is_allowed());
    assert_eq!(d.reason, Reason::InheritNetwork);
    assert_eq!(d.to_string(), "no rule: inherit-network");
    assert!(policy.decide_name(Use::Lookup, "example.com").is_allowed());
}

#[test]
fn deny_rule_still_wins_under_inherit_network() {
    let policy = Policy::builder()
        .inherit_network(true)
        .rule(Verdict::Deny, "connect", "10.0.0.0/8")
        .unwrap()
        .build();
    assert!(!allowed(&policy, Use::TcpConnect, "10.9.9.9:80"));
    assert!(allowed(&policy, Use::TcpConnect, "11.0.0.1:80"));
}

#[test]
fn deny_rule_wins_over_allow() {
    // The allow rule is more specific, yet the deny rule decides.
    let policy = Policy::builder()
        .rule(Verdict::Allow, "connect", "10.0.0.5:443")
        .unwrap()
        .rule(Verdict::Deny, "connect", "10.0.0.0/8")
        .unwrap()
        .build();
    let d = policy.decide(Use::TcpConnect, addr("10.0.0.5:443"));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.rule.unwrap().target.to_string(), "10.0.0.0/8");
    assert_eq!(d.to_string(), r#"rule "connect 10.0.0.0/8""#);
}

#[test]
fn allow_rule_grants_only_its_ports() {
    let policy = allow(&[("connect", "10.0.0.0/8:8000-8100")]);
    assert!(allowed(&policy, Use::TcpConnect, "10.1.2.3:8000"));
    assert!(allowed(&policy, Use::TcpConnect, "10.1.2.3:8100"));
    assert!(!allowed(&policy, Use::TcpConnect, "10.1.2.3:7999"));
    assert!(!allowed(&policy, Use::TcpConnect, "10.1.2.3:8101"));
    assert!(!allowed(&policy, Use::TcpConnect, "11.1.2.3:8050"));
}

#[test]
fn rule_grants_only_its_use() {
    let policy = allow(&[("connect", "127.0.0.1")]);
    assert!(allowed(&policy, Use::TcpConnect, "127.0.0.1:1"));
    for use_ in Use::ALL.into_iter().filter(|u| *u != Use::TcpConnect) {
        assert!(!allowed(&policy, use_, "127.0.0.1:1"), "{use_}");
    }
}

#[test]
fn every_use_word_names_its_use() {
    for use_ in Use::ALL {
        let target = if use_ == Use::Lookup {
            "10.0.0.1"
        } else {
            "10.0.0.1:1"
        };
        let policy = allow(&[(use_.as_str(), target)]);
        assert_eq!(policy.rules()[0].uses, UseSet::of(&[use_]));
        assert!(allowed(&policy, use_, "10.0.0.1:1"), "{use_}");
    }
    for (word, use_) in [
        ("connect", Use::TcpConnect),
        ("bind", Use::TcpBind),
        ("accept", Use::TcpAccept),
    ] {
        let policy = allow(&[(word, "10.0.0.1")]);
        assert_eq!(policy.rules()[0].uses, UseSet::of(&[use_]), "{word}");
    }
}

#[test]
fn ipv4_mapped_ipv6_folds_to_ipv4() {
    let policy = allow(&[("connect", "10.0.0.0/8:443")]);
    assert!(allowed(&policy, Use::TcpConnect, "[::ffff:10.1.2.3]:443"));
    let deny = Policy::builder()
        .inherit_network(true)
        .rule(Verdict::Deny, "connect", "10.0.0.5")
        .unwrap()
        .build();
    // The mapped spelling cannot slip past a deny rule.
    assert!(!allowed(&deny, Use::TcpConnect, "[::ffff:10.0.0.5]:443"));
}

#[test]
fn ipv4_compatible_ipv6_folds_to_ipv4() {
    let policy = allow(&[("connect", "127.0.0.1")]);
    assert!(allowed(&policy, Use::TcpConnect, "[::127.0.0.1]:80"));
}

#[test]
fn mapped_rule_governs_plain_ipv4() {
    let policy = allow(&[("connect", "[::ffff:10.0.0.0/104]:80")]);
    assert_eq!(policy.rules()[0].target.to_string(), "10.0.0.0/8");
    assert!(allowed(&policy, Use::TcpConnect, "10.2.3.4:80"));
}

#[test]
fn ipv6_loopback_is_not_ipv4() {
    let policy = allow(&[("connect", "0.0.0.1"), ("connect", "127.0.0.1")]);
    assert!(!allowed(&policy, Use::TcpConnect, "[::1]:80"));
    let v6 = allow(&[("connect", "::1")]);
    assert!(allowed(&v6, Use::TcpConnect, "[::1]:80"));
    assert!(!allowed(&v6, Use::TcpConnect, "127.0.0.1:80"));
}

#[test]
fn unspecified_address_is_not_matched_by_a_loopback_rule() {
    let policy = allow(&[("bind", "127.0.0.1:8080"), ("bind", "::1")]);
    assert!(allowed(&policy, Use::TcpBind, "127.0.0.1:8080"));
    assert!(!allowed(&policy, Use::TcpBind, "0.0.0.0:8080"));
    assert!(!allowed(&policy, Use::TcpBind, "[::]:8080"));
}

#[test]
fn unspecified_address_is_not_matched_by_any_or_a_broad_network() {
    let policy = allow(&[("bind", "any"), ("bind", "0.0.0.0/0"), ("bind", "[::/0]")]);
    assert!(allowed(&policy, Use::TcpBind, "10.0.0.1:80"));
    assert!(!allowed(&policy, Use::TcpBind, "0.0.0.0:80"));
    assert!(!allowed(&policy, Use::TcpBind, "[::]:80"));
    assert!(!allowed(&policy, Use::TcpBind, "[::ffff:0.0.0.0]:80"));
}

#[test]
fn unspecified_address_is_matched_by_a_rule_naming_it() {
    let policy = allow(&[("bind", "0.0.0.0:8080"), ("bind", "[::]:8080")]);
    assert!(allowed(&policy, Use::TcpBind, "0.0.0.0:8080"));
    assert!(allowed(&policy, Use::TcpBind, "[::]:8080"));
    assert!(!allowed(&policy, Use::TcpBind, "0.0.0.0:8081"));
}

#[test]
fn multicast_is_matched_only_by_a_multicast_rule() {
    let broad = allow(&[("udp-send", "any"), ("udp-send", "224.0.0.0/3")]);
    assert!(!allowed(&broad, Use::UdpSend, "239.1.2.3:5353"));
    assert!(!allowed(&broad, Use::UdpSend, "[ff02::fb]:5353"));
    let named = allow(&[("udp-send", "224.0.0.0/4"), ("udp-send", "ff02::/16")]);
    assert!(allowed(&named, Use::UdpSend, "239.1.2.3:5353"));
    assert!(allowed(&named, Use::UdpSend, "[ff02::fb]:5353"));
}

#[test]
fn any_with_a_port_matches_both_families_on_that_port() {
    let policy = allow(&[("connect", "any:443")]);
    assert!(allowed(&policy, Use::TcpConnect, "198.51.100.1:443"));
    assert!(allowed(&policy, Use::TcpConnect, "[2001:db8::1]:443"));
    assert!(!allowed(&policy, Use::TcpConnect, "198.51.100.1:80"));
}

#[test]
fn ipv6_network_rule_matches_inside_only() {
    let policy = allow(&[("connect", "[fd00::/8]:443")]);
    assert!(allowed(&policy, Use::TcpConnect, "[fd12::1]:443"));
    assert!(!allowed(&policy, Use::TcpConnect, "[fe80::1]:443"));
    assert!(!allowed(&policy, Use::TcpConnect, "[fd12::1]:80"));
}

#[test]
fn listen_group_grants_accept_from_any_peer() {
    let policy = allow(&[("listen", "127.0.0.1:8080")]);
    assert!(allowed(&policy, Use::TcpBind, "127.0.0.1:8080"));
    assert!(allowed(&policy, Use::TcpListen, "127.0.0.1:8080"));
    assert!(allowed(&policy, Use::TcpAccept, "203.0.113.7:51234"));
    assert!(allowed(&policy, Use::TcpAccept, "[2001:db8::7]:51234"));
    // Only on the target: not another address or port.
    assert!(!allowed(&policy, Use::TcpBind, "127.0.0.1:8081"));
    assert!(!allowed(&policy, Use::TcpListen, "127.0.0.2:8080"));
    assert!(!allowed(&policy, Use::TcpConnect, "127.0.0.1:8080"));
    let accept = policy.decide(Use::TcpAccept, addr("203.0.113.7:1"));
    assert_eq!(accept.rule.unwrap().target, Target::Any);
    assert_eq!(accept.to_string(), r#"rule "listen 127.0.0.1:8080""#);
}

#[test]
fn listen_deny_covers_bind_and_listen_but_not_accept() {
    let policy = Policy::builder()
        .inherit_network(true)
        .rule(Verdict::Deny, "listen", "127.0.0.1:8080")
        .unwrap()
        .build();
    assert_eq!(policy.rules().len(), 1);
    assert!(!allowed(&policy, Use::TcpBind, "127.0.0.1:8080"));
    assert!(!allowed(&policy, Use::TcpListen, "127.0.0.1:8080"));
    assert!(allowed(&policy, Use::TcpAccept, "127.0.0.1:8080"));
    assert!(allowed(&policy, Use::TcpAccept, "10.0.0.1:5000"));
}

#[test]
fn longest_prefix_rule_is_reported() {
    let policy = allow(&[
        ("connect", "any"),
        ("connect", "10.0.0.0/8"),
        ("connect", "10.1.0.0/16"),
        ("connect", "10.1.2.0/24"),
    ]);
    let target = |a: &str| {
        let d = policy.decide(Use::TcpConnect, addr(a));
        d.rule.unwrap().target.to_string()
    };
    assert_eq!(target("10.1.2.3:1"), "10.1.2.0/24");
    assert_eq!(target("10.1.3.3:1"), "10.1.0.0/16");
    assert_eq!(target("10.2.3.3:1"), "10.0.0.0/8");
    assert_eq!(target("11.2.3.3:1"), "any");
}

#[test]
fn longer_prefix_on_another_port_falls_back_to_a_shorter_prefix() {
    let policy = allow(&[("connect", "10.1.2.3:22"), ("connect", "10.0.0.0/8:443")]);
    let d = policy.decide(Use::TcpConnect, addr("10.1.2.3:443"));
    assert_eq!(d.rule.unwrap().target.to_string(), "10.0.0.0/8");
}

#[test]
fn narrower_port_range_is_reported_on_the_same_network() {
    let policy = allow(&[
        ("connect", "10.0.0.1:*"),
        ("connect", "10.0.0.1:8000-9000"),
        ("connect", "10.0.0.1:8080"),
    ]);
    let ports = |a: &str| {
        let d = policy.decide(Use::TcpConnect, addr(a));
        d.rule.unwrap().ports.to_string()
    };
    assert_eq!(ports("10.0.0.1:8080"), "8080");
    assert_eq!(ports("10.0.0.1:8081"), "8000-9000");
    assert_eq!(ports("10.0.0.1:22"), "*");
}

#[test]
fn decision_names_the_file_rule_by_position() {
    let text =
        "[allow]\nconnect = [\"127.0.0.1:8080\"]\n\n[deny]\n  tcp-connect = [\"10.0.0.5\"]\n";
    let policy = Policy::builder().toml("policy.toml", text).unwrap().build();
    let d = policy.decide(Use::TcpConnect, addr("127.0.0.1:8080"));
    assert_eq!(
        d.to_string(),
        r#"rule policy.toml:2:12 "connect 127.0.0.1:8080""#
    );
    let d = policy.decide(Use::TcpConnect, addr("10.0.0.5:1"));
    assert_eq!(
        d.to_string(),
        r#"rule policy.toml:5:18 "tcp-connect 10.0.0.5""#
    );
    assert_eq!(
        d.rule.unwrap().source.origin,
        Origin::File {
            path: "policy.toml".into(),
            line: 5,
            column: 18
        }
    );
    let d = policy.decide(Use::TcpConnect, addr("127.0.0.1:8081"));
    assert_eq!(d.to_string(), "no rule: default deny");
}

#[test]
fn decision_names_the_flag() {
    let policy = Policy::builder()
        .flag(
            "--allow-listen",
            Verdict::Allow,
            "listen",
            "127.0.0.1:8080, [::1]:8080",
        )
        .unwrap()
        .build();
    let d = policy.decide(Use::TcpListen, addr("127.0.0.1:8080"));
    assert_eq!(d.to_string(), r#"flag --allow-listen "127.0.0.1:8080""#);
    let d = policy.decide(Use::TcpListen, addr("[::1]:8080"));
    assert_eq!(d.to_string(), r#"flag --allow-listen "[::1]:8080""#);
    assert_eq!(policy.rules().len(), 4);
}

#[test]
fn file_and_flags_combine() {
    let policy = Policy::builder()
        .toml("policy.toml", "[allow]\nconnect = [\"10.0.0.0/8\"]\n")
        .unwrap()
        .flag("--deny-connect", Verdict::Deny, "connect", "10.0.0.5")
        .unwrap()
        .build();
    assert!(allowed(&policy, Use::TcpConnect, "10.0.0.4:1"));
    assert!(!allowed(&policy, Use::TcpConnect, "10.0.0.5:1"));
}

#[test]
fn file_inherit_network_key_sets_the_default() {
    let on = Policy::builder()
        .toml(
            "p.toml",
            "inherit-network = true\n[deny]\nconnect = [\"10.0.0.5\"]\n",
        )
        .unwrap()
        .build();
    assert!(on.is_inherit_network());
    assert!(allowed(&on, Use::UdpSend, "10.0.0.5:53"));
    assert!(!allowed(&on, Use::TcpConnect, "10.0.0.5:53"));
    let off = Policy::builder()
        .inherit_network(true)
        .toml("p.toml", "inherit-network = false\n")
        .unwrap()
        .build();
    assert!(!off.is_inherit_network());
    let unset = Policy::builder()
        .inherit_network(true)
        .toml("p.toml", "")
        .unwrap()
        .build();
    assert!(unset.is_inherit_network());
}

#[test]
fn file_example_from_the_docs_loads() {
    let text = r#"# capnet policy
inherit-network = false          # optional; true = allow by default (deny rules still win)

[allow]
connect = ["127.0.0.1:8080", "10.0.0.0/8:8000-8100"]
listen  = ["127.0.0.1:8080"]
lookup  = ["*.example.com", "localhost"]

[deny]
tcp-connect = ["10.0.0.5"]
tcp-accept  = ["192.168.0.0/16"]
"#;
    let policy = Policy::builder().toml("policy.toml", text).unwrap().build();
    let texts: Vec<String> = policy.rules().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        texts,
        [
            r#"rule policy.toml:5:12 "connect 127.0.0.1:8080""#,
            r#"rule policy.toml:5:30 "connect 10.0.0.0/8:8000-8100""#,
            r#"rule policy.toml:6:12 "listen 127.0.0.1:8080""#,
            r#"rule policy.toml:6:12 "listen 127.0.0.1:8080""#,
            r#"rule policy.toml:7:12 "lookup *.example.com""#,
            r#"rule policy.toml:7:29 "lookup localhost""#,
            r#"rule policy.toml:10:16 "tcp-connect 10.0.0.5""#,
            r#"rule policy.toml:11:16 "tcp-accept 192.168.0.0/16""#,
        ]
    );
    assert!(allowed(&policy, Use::TcpAccept, "10.0.0.1:4000"));
    assert!(!allowed(&policy, Use::TcpAccept, "192.168.1.1:4000"));
    assert!(
        policy
            .decide_name(Use::Lookup, "api.example.com")
            .is_allowed()
    );
    assert!(policy.decide_name(Use::Lookup, "localhost").is_allowed());
    assert!(!policy.decide_name(Use::Lookup, "example.org").is_allowed());
}

#[test]
fn policy_file_is_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("capnet-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[allow]\nconnect = [\"127.0.0.1:8080\"]\n").unwrap();
    let policy = PolicyBuilder::default().file(&path).unwrap().build();
    std::fs::remove_dir_all(&dir).unwrap();
    let d = policy.decide(Use::TcpConnect, addr("127.0.0.1:8080"));
    assert_eq!(
        d.to_string(),
        format!(r#"rule {}:2:12 "connect 127.0.0.1:8080""#, path.display())
    );
}

#[test]
fn lookup_exact_name_matches_case_insensitively_with_trailing_dot() {
    let policy = allow(&[("lookup", "Example.COM")]);
    assert!(policy.decide_name(Use::Lookup, "example.com").is_allowed());
    assert!(policy.decide_name(Use::Lookup, "EXAMPLE.com.").is_allowed());
    assert!(
        !policy
            .decide_name(Use::Lookup, "www.example.com")
            .is_allowed()
    );
    assert!(
        !policy
            .decide_name(Use::TcpConnect, "example.com")
            .is_allowed()
    );
}

#[test]
fn lookup_suffix_matches_names_below_but_not_the_domain_itself() {
    let policy = allow(&[("lookup", "*.example.com")]);
    assert!(
        policy
            .decide_name(Use::Lookup, "a.example.com")
            .is_allowed()
    );
    assert!(
        policy
            .decide_name(Use::Lookup, "a.b.example.com")
            .is_allowed()
    );
    assert!(!policy.decide_name(Use::Lookup, "example.com").is_allowed());
    assert!(
        !policy
            .decide_name(Use::Lookup, "notexample.com")
            .is_allowed()
    );
}

#[test]
fn lookup_reports_exact_then_longest_suffix_then_any() {
    let policy = allow(&[
        ("lookup", "any"),
        ("lookup", "*.com"),
        ("lookup", "*.example.com"),
        ("lookup", "www.example.com"),
    ]);
    let rule = |name: &str| {
        let d = policy.decide_name(Use::Lookup, name);
        d.rule.unwrap().target.to_string()
    };
    assert_eq!(rule("www.example.com"), "www.example.com");
    assert_eq!(rule("api.example.com"), "*.example.com");
    assert_eq!(rule("example.com"), "*.com");
    assert_eq!(rule("example.org"), "any");
}

#[test]
fn lookup_deny_suffix_wins_over_allow_any() {
    let policy = Policy::builder()
        .rule(Verdict::Allow, "lookup", "any")
        .unwrap()
        .rule(Verdict::Deny, "lookup", "*.internal")
        .unwrap()
        .build();
    assert!(!policy.decide_name(Use::Lookup, "db.internal").is_allowed());
    assert!(policy.decide_name(Use::Lookup, "example.com").is_allowed());
}

#[test]
fn lookup_of_an_ip_literal_is_decided_as_the_address() {
    let policy = allow(&[("lookup", "10.0.0.0/8"), ("lookup", "::1")]);
    assert!(policy.decide_name(Use::Lookup, "10.1.2.3").is_allowed());
    assert!(policy.decide_name(Use::Lookup, "::1").is_allowed());
    assert!(policy.decide_name(Use::Lookup, "[::1]").is_allowed());
    assert!(
        policy
            .decide_name(Use::Lookup, "::ffff:10.0.0.1")
            .is_allowed()
    );
    assert!(!policy.decide_name(Use::Lookup, "11.0.0.1").is_allowed());
    assert!(!policy.decide_name(Use::Lookup, "localhost").is_allowed());
}

#[test]
fn use_words_round_trip() {
    for use_ in Use::ALL {
        assert_eq!(use_.to_string().parse::<Use>().unwrap(), use_);
    }
    assert_eq!(Use::TcpConnect.to_string(), "tcp-connect");
    assert_eq!(
        "connect".parse::<Use>().unwrap_err().to_string(),
        "unknown use \"connect\" (valid: tcp-bind, tcp-listen, tcp-accept, tcp-connect, udp-bind, udp-send, udp-receive, lookup)"
    );
    assert_eq!(Verdict::Allow.to_string(), "allow");
    assert_eq!(Verdict::Deny.to_string(), "deny");
    assert_eq!(
        UseSet::of(&[Use::TcpListen, Use::TcpBind]).to_string(),
        "tcp-bind+tcp-listen"
    );
}

#[test]
fn policy_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Policy>();
    check::<capnet_policy::PolicyError>();
}

#[test]
fn policy_debug_lists_rules() {
    let policy = allow(&[("connect", "127.0.0.1")]);
    let debug = format!("{policy:?}");
    assert!(
        debug.starts_with("Policy { inherit_network: false, rules: [Rule {"),
        "{debug}"
    );
}
