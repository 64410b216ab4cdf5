//! Library tables: a library's own rules, read from a file, flags and code, with the place of
//! every mistake, and the warning for a library rule the app never grants.

use std::net::SocketAddr;

use capnet_policy::{Policy, Use, Verdict};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const FILE: &str = r#"[allow]
connect = ["127.0.0.1"]

[library.weather.allow]
connect = ["127.0.0.1:9001"]

[library.metrics.allow]
udp-send = ["127.0.0.1:9002"]
[library.metrics.deny]
udp-send = ["127.0.0.1:9002"]

[library.idle]
"#;

#[test]
fn a_file_gives_each_library_its_own_rules_apart_from_the_apps() {
    let policy = Policy::builder().toml("policy.toml", FILE).unwrap().build();
    assert_eq!(policy.rules().len(), 1, "library rules are not the app's");
    let weather = policy.library("weather").expect("weather is named");
    let decision = weather.decide(Use::TcpConnect, addr("127.0.0.1:9001"));
    assert!(decision.is_allowed());
    assert_eq!(
        decision.to_string(),
        r#"rule policy.toml:5:12 "connect 127.0.0.1:9001""#
    );
    assert!(
        !weather
            .decide(Use::TcpConnect, addr("127.0.0.1:9002"))
            .is_allowed()
    );
    let metrics = policy.library("metrics").unwrap();
    assert!(
        !metrics
            .decide(Use::UdpSend, addr("127.0.0.1:9002"))
            .is_allowed(),
        "a deny rule wins inside a library table too"
    );
    let idle = policy
        .library("idle")
        .expect("an empty table names the library");
    assert!(idle.rules().is_empty());
    assert!(policy.library("other").is_none());
    let names: Vec<&str> = policy.libraries().map(|(name, _)| name).collect();
    assert_eq!(names, ["idle", "metrics", "weather"]);
}

#[test]
fn a_library_rule_the_app_never_grants_is_a_warning_naming_its_place() {
    let policy = Policy::builder().toml("policy.toml", FILE).unwrap().build();
    assert_eq!(
        policy.warnings(),
        [
            "policy.toml:8:13: library metrics: rule \"udp-send 127.0.0.1:9002\" is never granted: the app allows no udp-send that overlaps it, and a library gets only what the app has"
        ]
    );
}

#[test]
fn a_library_rule_inside_a_wider_app_rule_is_no_warning() {
    let policy = Policy::builder()
        .rule(Verdict::Allow, "connect", "10.0.0.0/8:443")
        .unwrap()
        .rule(Verdict::Allow, "connect", "*.example.com:443")
        .unwrap()
        .library_rule("a", Verdict::Allow, "connect", "10.1.2.3:443")
        .unwrap()
        .library_rule("a", Verdict::Allow, "connect", "api.example.com:443")
        .unwrap()
        .library_rule("a", Verdict::Allow, "connect", "10.1.2.3:80")
        .unwrap()
        .build();
    assert_eq!(
        policy.warnings(),
        [
            "library a: rule \"connect 10.1.2.3:80\" is never granted: the app allows no tcp-connect that overlaps it, and a library gets only what the app has"
        ]
    );
}

#[test]
fn library_flags_give_rules_and_name_the_flag_in_decisions() {
    let policy = Policy::builder()
        .flag("--allow-connect", Verdict::Allow, "connect", "loopback")
        .unwrap()
        .library_flag(
            "--library-allow",
            Verdict::Allow,
            "weather=connect 127.0.0.1:9001,127.0.0.1:9003",
        )
        .unwrap()
        .build();
    let weather = policy.library("weather").unwrap();
    let decision = weather.decide(Use::TcpConnect, addr("127.0.0.1:9003"));
    assert!(decision.is_allowed());
    assert_eq!(
        decision.to_string(),
        r#"flag --library-allow weather "connect 127.0.0.1:9003""#
    );
    assert!(policy.warnings().is_empty());
}

#[test]
fn a_library_flag_takes_several_uses_each_starting_an_entry_of_its_list() {
    let policy = Policy::builder()
        .library_flag(
            "--library-allow",
            Verdict::Allow,
            "weather=connect 127.0.0.1:9001, 127.0.0.1:9003, udp-send 127.0.0.1:9002",
        )
        .unwrap()
        .build();
    let weather = policy.library("weather").unwrap();
    for (use_, at) in [
        (Use::TcpConnect, "127.0.0.1:9001"),
        (Use::TcpConnect, "127.0.0.1:9003"),
        (Use::UdpSend, "127.0.0.1:9002"),
    ] {
        assert!(weather.decide(use_, addr(at)).is_allowed(), "{use_} {at}");
    }
    assert!(
        !weather
            .decide(Use::TcpConnect, addr("127.0.0.1:9002"))
            .is_allowed()
    );
    assert!(
        !weather
            .decide(Use::UdpSend, addr("127.0.0.1:9001"))
            .is_allowed()
    );
    assert_eq!(
        weather
            .decide(Use::UdpSend, addr("127.0.0.1:9002"))
            .to_string(),
        r#"flag --library-allow weather "udp-send 127.0.0.1:9002""#
    );
}

#[test]
fn rejects_a_library_flag_without_name_or_use() {
    for spec in [
        "connect 127.0.0.1",
        "weather=connect",
        "weather=127.0.0.1, connect 10.0.0.1",
    ] {
        let error = Policy::builder()
            .library_flag("--library-allow", Verdict::Allow, spec)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "--library-allow: \"{spec}\" is not NAME=USE LIST (write weather=connect 127.0.0.1:8080)"
            )
        );
    }
}

#[test]
fn rejects_a_library_name_that_is_not_a_kebab_case_label() {
    let error = Policy::builder()
        .toml(
            "policy.toml",
            "[library.Weather_1.allow]\nconnect = [\"127.0.0.1\"]\n",
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy.toml:1:10: library name \"Weather_1\" is not a kebab-case label (write lowercase words joined by '-', as in weather or metrics-client)"
    );
}

#[test]
fn a_bad_rule_in_a_library_table_names_its_line_and_rule() {
    let error = Policy::builder()
        .toml(
            "policy.toml",
            "[library.weather.allow]\nconnect = [\"127.0.0.1:90-80\"]\n",
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy.toml:2:12: rule \"connect 127.0.0.1:90-80\": port range start is above its end (write 80-90)"
    );
}

#[test]
fn a_rule_written_as_one_string_reads_like_a_file_entry() {
    let policy = Policy::builder()
        .rule_text(Verdict::Allow, "connect 127.0.0.1:8080")
        .unwrap()
        .rule_text(Verdict::Deny, "  lookup   *.evil.example ")
        .unwrap()
        .build();
    assert!(
        policy
            .decide(Use::TcpConnect, addr("127.0.0.1:8080"))
            .is_allowed()
    );
    assert!(
        !policy
            .decide_name(Use::Lookup, "a.evil.example")
            .is_allowed()
    );
    let error = Policy::builder()
        .rule_text(Verdict::Allow, "connect")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "rule \"connect\": empty target (write an address, a CIDR, a host name, *.suffix or any)"
    );
}
