//! Every load error, pinned word for word: place, rule, what is wrong and
//! what to write instead.

use capnet_policy::{ErrorKind, Policy, Verdict};

const VALID: &str = "tcp-bind, tcp-listen, tcp-accept, tcp-connect, udp-bind, udp-send, udp-receive, lookup, connect, bind, listen, accept, udp, all";

fn file_error(text: &str) -> String {
    Policy::builder()
        .toml("policy.toml", text)
        .unwrap_err()
        .to_string()
}

/// The error for one target under `[allow]`, `word = ["target"]` on line 2,
/// so the string starts at column `word.len() + 5`.
fn target_error(word: &str, target: &str) -> String {
    file_error(&format!("[allow]\n{word} = [{target:?}]\n"))
}

fn flag_error(flag: &str, verdict: Verdict, word: &str, list: &str) -> String {
    Policy::builder()
        .flag(flag, verdict, word, list)
        .unwrap_err()
        .to_string()
}

#[test]
fn rejects_reversed_port_range() {
    let text = "# capnet policy\ninherit-network = false\n\n[allow]\nlisten = [\"127.0.0.1:8080\"]\n\nconnect = [\"10.0.0.0/8:9000-80\"]\n";
    assert_eq!(
        file_error(text),
        r#"policy.toml:7:12: rule "connect 10.0.0.0/8:9000-80": port range start is above its end (write 80-9000)"#
    );
}

#[test]
fn rejects_reversed_port_range_in_a_flag() {
    assert_eq!(
        flag_error(
            "--allow-connect",
            Verdict::Allow,
            "connect",
            "127.0.0.1,10.0.0.0/8:9000-80"
        ),
        r#"--allow-connect: rule "connect 10.0.0.0/8:9000-80": port range start is above its end (write 80-9000)"#
    );
}

#[test]
fn rejects_reversed_port_range_in_a_builder_rule() {
    let err = Policy::builder()
        .rule(Verdict::Deny, "connect", "10.0.0.0/8:9000-80")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"rule "connect 10.0.0.0/8:9000-80": port range start is above its end (write 80-9000)"#
    );
    assert!(matches!(
        err.kind(),
        ErrorKind::ReversedPorts { lo: 80, hi: 9000 }
    ));
    assert_eq!(err.rule(), Some("connect 10.0.0.0/8:9000-80"));
    assert_eq!(err.origin(), None);
}

#[test]
fn error_exposes_place_and_rule() {
    let err = Policy::builder()
        .toml("p.toml", "[deny]\nconnect = [\"10.0.0.1:x\"]")
        .unwrap_err();
    assert_eq!(err.origin(), Some("p.toml"));
    assert_eq!(err.line_column(), Some((2, 12)));
    assert_eq!(err.rule(), Some("connect 10.0.0.1:x"));
    assert!(matches!(err.kind(), ErrorKind::BadPort(p) if p == "x"));
}

#[test]
fn rejects_unknown_use_word_in_a_file() {
    assert_eq!(
        file_error("[allow]\nconnect = []\n\n[deny]\n  conect = [\"127.0.0.1\"]\n"),
        format!(r#"policy.toml:5:3: unknown use "conect" (valid: {VALID})"#)
    );
}

#[test]
fn rejects_unknown_use_word_even_with_no_targets() {
    assert_eq!(
        file_error("[allow]\nudpp = []\n"),
        format!(r#"policy.toml:2:1: unknown use "udpp" (valid: {VALID})"#)
    );
}

#[test]
fn rejects_unknown_use_word_in_a_flag() {
    assert_eq!(
        flag_error("--allow-conect", Verdict::Allow, "conect", "127.0.0.1"),
        format!(r#"--allow-conect: unknown use "conect" (valid: {VALID})"#)
    );
}

#[test]
fn rejects_unknown_top_level_key() {
    assert_eq!(
        file_error("inherit-network = true\n[alow]\nconnect = [\"127.0.0.1\"]\n"),
        "policy.toml:2:2: unknown field `alow`, expected one of `inherit-network`, `allow`, `deny`, `library`, `limits`"
    );
}

#[test]
fn rejects_toml_syntax_error() {
    assert_eq!(
        file_error("[allow]\nconnect = [\"127.0.0.1\"\n"),
        "policy.toml:2:23: unclosed array, expected `]`"
    );
}

#[test]
fn rejects_a_string_where_a_list_belongs() {
    assert_eq!(
        file_error("[allow]\nconnect = \"127.0.0.1\"\n"),
        "policy.toml:2:11: invalid type: string \"127.0.0.1\", expected a sequence"
    );
}

#[test]
fn rejects_a_non_boolean_inherit_network() {
    assert_eq!(
        file_error("inherit-network = \"yes\"\n"),
        "policy.toml:1:19: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn rejects_unreadable_file() {
    let err = Policy::builder()
        .file(std::path::Path::new("/nonexistent/capnet/policy.toml"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/capnet/policy.toml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn rejects_cidr_with_host_bits_set() {
    assert_eq!(
        target_error("connect", "10.1.0.0/8"),
        r#"policy.toml:2:12: rule "connect 10.1.0.0/8": 10.1.0.0/8 has host bits set (write 10.0.0.0/8)"#
    );
    assert_eq!(
        target_error("connect", "[fd00::1/8]:443"),
        r#"policy.toml:2:12: rule "connect [fd00::1/8]:443": fd00::1/8 has host bits set (write fd00::/8)"#
    );
}

#[test]
fn rejects_prefix_too_long() {
    assert_eq!(
        target_error("connect", "10.0.0.0/33"),
        r#"policy.toml:2:12: rule "connect 10.0.0.0/33": prefix /33 is too long for an IPv4 network (at most /32)"#
    );
    assert_eq!(
        target_error("connect", "[::/129]"),
        r#"policy.toml:2:12: rule "connect [::/129]": prefix /129 is too long for an IPv6 network (at most /128)"#
    );
    assert_eq!(
        target_error("connect", "10.0.0.0/4294967296"),
        r#"policy.toml:2:12: rule "connect 10.0.0.0/4294967296": prefix /4294967296 is too long for an IPv4 network (at most /32)"#
    );
}

#[test]
fn rejects_prefix_that_is_not_a_number() {
    assert_eq!(
        target_error("connect", "10.0.0.0/x"),
        r#"policy.toml:2:12: rule "connect 10.0.0.0/x": prefix "x" is not a number"#
    );
}

#[test]
fn rejects_cidr_that_is_not_an_address() {
    assert_eq!(
        target_error("connect", "example.com/8"),
        r#"policy.toml:2:12: rule "connect example.com/8": "example.com/8" is not a valid CIDR (write ADDRESS/PREFIX, as in 10.0.0.0/8)"#
    );
}

#[test]
fn rejects_port_over_65535() {
    assert_eq!(
        target_error("connect", "127.0.0.1:70000"),
        r#"policy.toml:2:12: rule "connect 127.0.0.1:70000": port 70000 is above 65535"#
    );
}

#[test]
fn rejects_port_that_is_not_a_number() {
    assert_eq!(
        target_error("connect", "127.0.0.1:http"),
        r#"policy.toml:2:12: rule "connect 127.0.0.1:http": port "http" is not a number (write a port, a range a-b or *)"#
    );
}

#[test]
fn rejects_colon_without_ports() {
    assert_eq!(
        target_error("connect", "127.0.0.1:"),
        r#"policy.toml:2:12: rule "connect 127.0.0.1:": missing port after ':' (write a port, a range a-b or *, or leave out the ':')"#
    );
}

#[test]
fn rejects_empty_target() {
    assert_eq!(
        target_error("connect", ""),
        r#"policy.toml:2:12: rule "connect": empty target (write an address, a CIDR, a host name, *.suffix or any)"#
    );
    assert_eq!(
        target_error("connect", ":80"),
        r#"policy.toml:2:12: rule "connect :80": empty target (write an address, a CIDR, a host name, *.suffix or any)"#
    );
    assert_eq!(
        flag_error(
            "--allow-connect",
            Verdict::Allow,
            "connect",
            "127.0.0.1,,10.0.0.1"
        ),
        r#"--allow-connect: rule "connect": empty target (write an address, a CIDR, a host name, *.suffix or any)"#
    );
}

#[test]
fn rejects_host_name_for_a_use_that_is_not_connect_send_or_lookup() {
    let message = "a host name is only a target for connect, tcp-connect, udp-send and lookup (write an IP, a CIDR or a named set such as loopback)";
    assert_eq!(
        target_error("listen", "localhost:8080"),
        format!(r#"policy.toml:2:11: rule "listen localhost:8080": {message}"#)
    );
    assert_eq!(
        target_error("udp-receive", "*.example.com"),
        format!(r#"policy.toml:2:16: rule "udp-receive *.example.com": {message}"#)
    );
    assert_eq!(
        target_error("all", "example.com"),
        format!(r#"policy.toml:2:8: rule "all example.com": {message}"#)
    );
}

#[test]
fn rejects_ports_on_a_lookup_rule() {
    assert_eq!(
        target_error("lookup", "example.com:53"),
        r#"policy.toml:2:11: rule "lookup example.com:53": lookup rules take no ports (write example.com)"#
    );
    assert_eq!(
        target_error("lookup", "[::1]:53"),
        r#"policy.toml:2:11: rule "lookup [::1]:53": lookup rules take no ports (write [::1])"#
    );
    assert_eq!(
        target_error("lookup", "any:*"),
        r#"policy.toml:2:11: rule "lookup any:*": lookup rules take no ports (write any)"#
    );
}

#[test]
fn rejects_wildcard_anywhere_but_a_leading_label() {
    for target in ["foo.*.com", "*foo.com", "ex*ample.com", "*.*.com"] {
        assert_eq!(
            target_error("lookup", target),
            format!(
                r#"policy.toml:2:11: rule "lookup {target}": a wildcard is only allowed as a leading "*." label, as in *.example.com"#
            )
        );
    }
    assert_eq!(
        target_error("lookup", "*"),
        r#"policy.toml:2:11: rule "lookup *": a bare "*" is not a target (write any)"#
    );
}

#[test]
fn rejects_invalid_host_name_characters() {
    assert_eq!(
        target_error("lookup", "exa mple.com"),
        r#"policy.toml:2:11: rule "lookup exa mple.com": host name "exa mple.com" has an invalid character ' ' (use letters, digits, '-' and '.')"#
    );
    assert_eq!(
        target_error("lookup", "bücher.de"),
        r#"policy.toml:2:11: rule "lookup bücher.de": host name "bücher.de" has an invalid character 'ü' (use letters, digits, '-' and '.')"#
    );
}

#[test]
fn rejects_malformed_host_names() {
    assert_eq!(
        target_error("lookup", "a..example.com"),
        r#"policy.toml:2:11: rule "lookup a..example.com": host name "a..example.com" has an empty label"#
    );
    assert_eq!(
        target_error("lookup", "-a.example.com"),
        r#"policy.toml:2:11: rule "lookup -a.example.com": host name label "-a" starts or ends with '-'"#
    );
    let label = "a".repeat(64);
    assert_eq!(
        target_error("lookup", &format!("{label}.com")),
        format!(
            r#"policy.toml:2:11: rule "lookup {label}.com": host name label "{label}" is longer than 63 characters"#
        )
    );
    let long = ["abcdefghij"; 25].join(".");
    assert_eq!(
        target_error("lookup", &long),
        format!(
            r#"policy.toml:2:11: rule "lookup {long}": host name "{long}" is longer than 253 characters"#
        )
    );
    assert_eq!(
        target_error("lookup", "10.0.0.300"),
        r#"policy.toml:2:11: rule "lookup 10.0.0.300": "10.0.0.300" is not a valid IP address or host name"#
    );
}

#[test]
fn rejects_malformed_brackets() {
    assert_eq!(
        target_error("connect", "[::1:80"),
        r#"policy.toml:2:12: rule "connect [::1:80": missing ']' after "[::1:80""#
    );
    assert_eq!(
        target_error("connect", "[::1]80"),
        r#"policy.toml:2:12: rule "connect [::1]80": unexpected "80" after ']' (write [::1]:PORTS)"#
    );
    assert_eq!(
        target_error("connect", "[127.0.0.1]:80"),
        r#"policy.toml:2:12: rule "connect [127.0.0.1]:80": brackets are only for IPv6 addresses (write 127.0.0.1:80)"#
    );
    assert_eq!(
        target_error("connect", "[example.com]"),
        r#"policy.toml:2:12: rule "connect [example.com]": "example.com" is not a valid IP address"#
    );
}

#[test]
fn rejects_bare_ipv6_with_ports() {
    assert_eq!(
        target_error("connect", "fd00::/8:443"),
        r#"policy.toml:2:12: rule "connect fd00::/8:443": "fd00::/8:443" is not a valid IPv6 address or CIDR (to give ports, write [ADDRESS]:PORTS, as in [::1]:8080)"#
    );
}

#[test]
fn target_error_is_reported_before_port_error() {
    assert_eq!(
        target_error("connect", "10.1.0.0/8:9000-80"),
        r#"policy.toml:2:12: rule "connect 10.1.0.0/8:9000-80": 10.1.0.0/8 has host bits set (write 10.0.0.0/8)"#
    );
}

#[test]
fn first_error_in_file_order_is_reported() {
    let text = "[deny]\nconnect = [\"10.0.0.0/33\"]\n[allow]\nbind = [\"x..y\"]\n";
    assert_eq!(
        file_error(text),
        r#"policy.toml:2:12: rule "connect 10.0.0.0/33": prefix /33 is too long for an IPv4 network (at most /32)"#
    );
}

/// Found by fuzzing: a target string holding a newline or a terminal escape printed them raw,
/// so one error could pass for several lines of output or drive the terminal.
#[test]
fn control_characters_of_a_rule_are_escaped_in_the_error() {
    let text = "[allow]\nconnect = [\"a\\nerror: b\\u001b[2J\"]\n";
    assert_eq!(
        file_error(text),
        r#"policy.toml:2:12: rule "connect a\nerror: b\u{1b}[2J": host name "a\nerror" has an invalid character '\n' (use letters, digits, '-' and '.')"#
    );
    assert_eq!(
        flag_error("--allow-connect", Verdict::Allow, "connect", "x\0y"),
        r#"--allow-connect: rule "connect x\u{0}y": host name "x\u{0}y" has an invalid character '\0' (use letters, digits, '-' and '.')"#
    );
}

/// A port list may hold a newline between its ports; the rule it loads to names itself on
/// one line.
#[test]
fn control_characters_of_a_loaded_rule_are_escaped_in_its_source() {
    let policy = Policy::builder()
        .toml(
            "policy.toml",
            "[allow]\nconnect = [\"10.0.0.1:80;\\n443\"]\n",
        )
        .unwrap()
        .build();
    let decision = policy.decide(
        capnet_policy::Use::TcpConnect,
        "10.0.0.1:443".parse().unwrap(),
    );
    assert_eq!(
        decision.to_string(),
        r#"rule policy.toml:2:12 "connect 10.0.0.1:80;\n443""#
    );
}
