//! The behaviour guests of `guest/rust` (one program per area of `wasi:sockets`, a doc comment
//! per rule, built on `wasi_net::behaviour`), each run on the capnet host over IPv4 loopback
//! and over IPv6 loopback, under a policy that allows what the rules need.
//!
//! A guest prints `ok: RULE` for each rule that holds and stops at the first broken one with
//! `broken rule: RULE: WHAT HAPPENED`. `every_behaviour_guest_has_a_host_test` keeps the list
//! below and the guests in `guest/rust` the same.

use capnet::policy::Verdict::Allow;
use capnet_tests::{Running, ctx, policy, rust_guest_dir};

/// What the rules need: TCP and UDP on loopback; binds to a documentation address, which no
/// interface has (`address-not-bindable` must come from the system, not from the policy);
/// lookups of `localhost` only.
fn rules_policy() -> capnet::policy::Policy {
    policy(&[
        (Allow, "listen", "127.0.0.1"),
        (Allow, "listen", "::1"),
        (Allow, "connect", "127.0.0.1"),
        (Allow, "connect", "::1"),
        (Allow, "udp", "127.0.0.1"),
        (Allow, "udp", "::1"),
        (Allow, "bind", "192.0.2.1"),
        (Allow, "bind", "2001:db8::1"),
        (Allow, "udp-bind", "192.0.2.1"),
        (Allow, "udp-bind", "2001:db8::1"),
        (Allow, "lookup", "localhost"),
    ])
}

/// Runs `guest` on `loopback` and fails with its report if a rule is broken.
async fn rules_hold(guest: &str, loopback: &str) {
    let done = Running::start(guest, &[loopback], ctx(rules_policy()))
        .finish()
        .await;
    assert_eq!(
        done.code, 0,
        "{guest} {loopback}:\n{}{}",
        done.stdout, done.stderr
    );
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.starts_with("ok: ")),
        "{guest} {loopback} checked no rule or printed something else:\n{}",
        done.stdout
    );
}

/// Whether this machine has IPv6 loopback; says why not when it has not.
fn has_ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            println!("skipped: this machine has no ::1 ({e})");
            false
        }
    }
}

macro_rules! behaviour {
    ($($module:ident => $guest:literal,)*) => {
        /// Every behaviour guest with a test below.
        const TESTED: &[&str] = &[$($guest),*];
        $(
            mod $module {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rules_hold_over_ipv4_loopback() {
                    super::rules_hold($guest, "127.0.0.1").await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rules_hold_over_ipv6_loopback() {
                    if super::has_ipv6_loopback() {
                        super::rules_hold($guest, "::1").await;
                    }
                }
            }
        )*
    };
}

behaviour! {
    ip_name_lookup => "ip-name-lookup",
    network => "network",
    tcp_bind => "tcp-bind",
    tcp_connect => "tcp-connect",
    tcp_listen_accept => "tcp-listen-accept",
    tcp_sockopts => "tcp-sockopts",
    tcp_states => "tcp-states",
    tcp_streams => "tcp-streams",
    udp_bind => "udp-bind",
    udp_connect => "udp-connect",
    udp_sample_application => "udp-sample-application",
    udp_sockopts => "udp-sockopts",
    udp_states => "udp-states",
}

/// A guest of `guest/rust` is a behaviour guest when its `src/main.rs` runs
/// `wasi_net::behaviour`; each must be in `TESTED`, and each name there must be one.
#[test]
fn every_behaviour_guest_has_a_host_test() {
    let mut found: Vec<String> = std::fs::read_dir(rust_guest_dir())
        .unwrap()
        .filter_map(|entry| {
            let dir = entry.unwrap().path();
            let main = std::fs::read_to_string(dir.join("src/main.rs")).ok()?;
            main.contains("wasi_net::behaviour::")
                .then(|| dir.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    let mut tested: Vec<String> = TESTED.iter().map(|g| g.to_string()).collect();
    tested.sort();
    assert_eq!(
        found, tested,
        "behaviour guests in guest/rust vs. tests here"
    );
}
