//! The `wasi:sockets@0.3.0` behaviour table: every call of `tcp-socket` and `udp-socket` in
//! every state, over IPv4 and IPv6 loopback, on capnet's 0.3 front and real sockets.
//!
//! The guests (p3-tcp-states, p3-udp-states) only print what they observe, one
//! `STATE | CALL | RESULT` row per call; the expected results below are the WIT docs' (the
//! standard text of wasi:sockets@0.3.0 as wasmtime-wasi 48 ships it, whose rules our own
//! shorter text in wit/p3 keeps), rule by rule. A wrong, missing or unexpected row fails the
//! test, and every difference is listed at once.
//!
//! The docs' rules the table rests on:
//! - `get-local-address` is `invalid-state` until the socket is bound; `get-remote-address`
//!   until it is connected.
//! - `bind` is `invalid-state` once bound; a failed bind may be retried.
//! - `connect` binds an unbound socket implicitly; it is `invalid-state` when listening,
//!   connected, or after a failed connect (closed).
//! - `listen` binds an unbound socket implicitly (the unspecified address, a free port); it
//!   is `invalid-state` when listening or connected.
//! - `send` and `receive` are `invalid-state` unless connected, and a second one is too; a
//!   write the peer's system refused (`EPIPE`) ends `send` with `connection-broken`, a reset
//!   ends `receive` with `connection-reset`.
//! - Every option setter refuses 0 with `invalid-argument`, in any state; the getters read
//!   back what was set (buffer sizes included: Linux keeps double, the host halves it); an
//!   accepted socket inherits its listener's options. `set-listen-backlog-size` is
//!   `invalid-state` once connected. A closed socket answers `invalid-state` to the rest.
//! - Addresses of the wrong family, multicast or broadcast, IPv4-mapped (IPv6 sockets are
//!   IPv6-only), and for a remote the unspecified address or port 0 are `invalid-argument`.
//! - UDP: `connect` and `send` bind implicitly; `disconnect` is `invalid-state` unless
//!   connected; `send` needs an address unless connected, and a connected socket takes only
//!   its peer's (`invalid-argument`); `receive` is `invalid-state` until bound; a connected
//!   socket hears only its peer, and `connection-refused` when its peer's port is closed. The local address stays the same through connect and
//!   disconnect (the port the system chose included).
//!
//! capnet's own rules beside the docs: a policy denial is `access-denied`, checked before
//! any system call, so a refused call (or one with a bad argument) leaves an unbound socket
//! unbound; the implicit bind of `listen` needs the `tcp-bind` and `tcp-listen` rights on the
//! unspecified address, port 0.

use capnet::policy::Verdict::{self, Allow, Deny};
use capnet_tests::{Running, ctx, policy};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `(state, call) -> result`, in the order the rows were given.
type Table = BTreeMap<(String, String), String>;

/// The families a row applies to.
#[derive(Clone, Copy, PartialEq)]
enum Only {
    Both,
    V4,
    V6,
}

struct Expected {
    v6: bool,
    rows: Table,
}

impl Expected {
    fn new(loopback: &str) -> Self {
        Expected {
            v6: loopback.contains(':'),
            rows: Table::new(),
        }
    }

    fn row(&mut self, state: &str, call: &str, result: &str) {
        self.row_for(Only::Both, state, call, result);
    }

    fn row_for(&mut self, only: Only, state: &str, call: &str, result: &str) {
        if only == Only::Both || (only == Only::V6) == self.v6 {
            let old = self
                .rows
                .insert((state.to_owned(), call.to_owned()), result.to_owned());
            assert!(old.is_none(), "the test expects {state} | {call} twice");
        }
    }

    /// One call in each of `states`, in order.
    fn across(&mut self, states: &[&str], call: &str, results: &[&str]) {
        assert_eq!(states.len(), results.len(), "{call}");
        for (state, result) in states.iter().zip(results) {
            self.row(state, call, result);
        }
    }
}

/// Parses the guest's rows; a line that is not a row, or a row given twice, is an error.
fn observed(stdout: &str) -> Result<Table, String> {
    let mut rows = Table::new();
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split(" | ").collect();
        let [state, call, result] = parts[..] else {
            return Err(format!("not a row: {line}"));
        };
        let key = (state.to_owned(), call.to_owned());
        if rows.insert(key, result.to_owned()).is_some() {
            return Err(format!("row printed twice: {line}"));
        }
    }
    Ok(rows)
}

/// Every difference between the rows the docs give and the rows the guest printed.
fn differences(expected: &Table, got: &Table) -> Vec<String> {
    let mut wrong = Vec::new();
    for ((state, call), want) in expected {
        match got.get(&(state.clone(), call.clone())) {
            Some(got) if got == want => {}
            Some(got) => wrong.push(format!("{state} | {call}: got {got}, the docs say {want}")),
            None => wrong.push(format!("{state} | {call}: no row (the docs say {want})")),
        }
    }
    for ((state, call), got) in got {
        if !expected.contains_key(&(state.clone(), call.clone())) {
            wrong.push(format!(
                "{state} | {call}: {got}, a row the test does not expect"
            ));
        }
    }
    wrong
}

/// Runs `guest` with `args` under `rules` and compares its table with `expected`.
async fn table_holds(
    guest: &str,
    args: &[&str],
    rules: &[(Verdict, &str, &str)],
    expected: Expected,
) {
    let done = Running::start(guest, args, ctx(policy(rules)))
        .finish()
        .await;
    assert_eq!(
        done.code, 0,
        "{guest} {args:?}:\n{}{}",
        done.stdout, done.stderr
    );
    let got = observed(&done.stdout).unwrap_or_else(|e| panic!("{guest} {args:?}: {e}"));
    let wrong = differences(&expected.rows, &got);
    assert!(
        wrong.is_empty(),
        "{guest} {args:?}: {} of {} rows differ from the docs:\n{}",
        wrong.len(),
        expected.rows.len(),
        wrong.join("\n")
    );
    println!("{guest} {args:?}: {} rows as the docs say", got.len());
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

/// `host:port` as the policy writes it.
fn at(loopback: &str, port: &str) -> String {
    match loopback.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{loopback}:{port}"),
    }
}

fn unspecified(loopback: &str) -> &'static str {
    if loopback.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
}

/// An address no interface has (`address-not-bindable` must come from the system).
fn foreign(loopback: &str) -> &'static str {
    if loopback.contains(':') {
        "2001:db8::1"
    } else {
        "192.0.2.1"
    }
}

const TCP_STATES: [&str; 7] = [
    "unbound",
    "bound",
    "listening",
    "connected",
    "accepted",
    "peer-closed",
    "closed",
];

/// The TCP table the docs give, on `loopback`.
fn tcp_expected(loopback: &str) -> Expected {
    let mut e = Expected::new(loopback);
    let s = &TCP_STATES;
    let is = "invalid-state";
    e.across(
        s,
        "get-local-address",
        &[
            is,
            "ok as bound",
            "ok as bound",
            "ok loopback:ephemeral",
            "ok as bound",
            "ok loopback:ephemeral",
            is,
        ],
    );
    e.across(
        s,
        "get-remote-address",
        &[
            is,
            is,
            is,
            "ok the listener",
            "ok the client",
            "ok the listener",
            is,
        ],
    );
    e.across(
        s,
        "get-is-listening",
        &["false", "false", "true", "false", "false", "false", "false"],
    );
    e.across(s, "get-address-family", &["as created"; 7]);
    e.across(s, "bind", &["ok", is, is, is, is, is, is]);
    e.row(
        "unbound",
        "bind, then get-local-address",
        "ok loopback:ephemeral",
    );
    // listen binds an unbound socket to the unspecified address.
    e.across(s, "listen", &["ok", "ok", is, is, is, is, is]);
    e.row(
        "unbound",
        "listen, then get-local-address",
        "ok unspecified:ephemeral",
    );
    e.row("bound", "listen, then get-local-address", "ok as bound");
    e.row("unbound", "listen, then get-is-listening", "true");
    e.row("bound", "listen, then get-is-listening", "true");
    e.across(s, "connect", &["ok", "ok", is, is, is, is, is]);
    e.row(
        "unbound",
        "connect, then get-local-address",
        "ok loopback:ephemeral",
    );
    e.row("bound", "connect, then get-local-address", "ok as bound");
    // A peer that closed has ended only its own side: sending still works.
    e.across(s, "send", &[is, is, is, "ok", "ok", "ok", is]);
    e.across(s, "send twice", &[is; 7]);
    let ended = "ends invalid-state";
    e.across(
        s,
        "receive",
        &[ended, ended, ended, "open", "open", "ends ok", ended],
    );
    e.across(s, "receive twice", &[ended; 7]);

    e.across(
        s,
        "set-listen-backlog-size 16",
        &["ok", "ok", "ok", is, is, is, is],
    );
    e.across(s, "set-listen-backlog-size 0", &["invalid-argument"; 7]);
    let options: [(&str, &str, &str); 7] = [
        ("keep-alive-idle-time", "42s", "ok 42s"),
        ("keep-alive-interval", "7s", "ok 7s"),
        ("keep-alive-count", "5", "ok 5"),
        ("hop-limit", "42", "ok 42"),
        ("receive-buffer-size", "65536", "ok 65536"),
        ("send-buffer-size", "65536", "ok 65536"),
        ("keep-alive-enabled", "true", "ok true"),
    ];
    for state in s {
        let open = *state != "closed";
        let or_closed = |result: &'static str| if open { result } else { is };
        for (option, set, read) in options {
            e.row(state, &format!("get-{option}"), or_closed("ok"));
            e.row(state, &format!("set-{option} {set}"), or_closed("ok"));
            e.row(state, &format!("get-{option} after set"), or_closed(read));
            if option == "keep-alive-enabled" {
                e.row(state, "set-keep-alive-enabled false", or_closed("ok"));
                e.row(
                    state,
                    "get-keep-alive-enabled after unset",
                    or_closed("ok false"),
                );
            } else {
                e.row(state, &format!("set-{option} 0"), "invalid-argument");
            }
        }
    }
    for (option, _, read) in options {
        e.row("accepted", &format!("inherits {option}"), read);
    }

    // A write after the peer's system reset the connection (EPIPE).
    e.row(
        "peer-closed",
        "send, a write, then another after the peer's reset",
        "taken, refused, connection-broken",
    );

    // A peer that closed with bytes unread reset the connection.
    e.row(
        "connected",
        "receive after the peer's reset",
        "ends connection-reset",
    );

    // A connect in flight: the docs name `connecting` for connect and the backlog size.
    let c = "connecting";
    e.row(c, "get-local-address", "ok loopback:ephemeral");
    for call in ["get-remote-address", "bind", "connect", "listen", "send"] {
        e.row(c, call, is);
    }
    e.row(c, "get-is-listening", "false");
    e.row(c, "receive", ended);
    e.row(c, "set-listen-backlog-size 16", is);
    e.row(c, "set-hop-limit 42", "ok");
    e.row(c, "get-hop-limit after set", "ok 42");
    e.row(c, "set-keep-alive-enabled true", "ok");
    e.row(c, "get-keep-alive-enabled after set", "ok true");

    let a = "arguments";
    let invalid = "invalid-argument";
    for (only, call, result) in [
        (Only::Both, "bind the other family", invalid),
        (Only::Both, "bind multicast", invalid),
        (Only::V4, "bind broadcast", invalid),
        (Only::V6, "bind ipv4-mapped", invalid),
        (Only::Both, "bind a foreign address", "address-not-bindable"),
        (Only::Both, "bind an address in use", "address-in-use"),
    ] {
        e.row_for(only, a, call, result);
        // Bind may be tried again after a failure.
        e.row_for(only, a, &format!("{call}, then bind"), "ok");
    }
    for (only, call) in [
        (Only::Both, "connect the other family"),
        (Only::Both, "connect multicast"),
        (Only::V4, "connect broadcast"),
        (Only::V6, "connect ipv4-mapped"),
        (Only::Both, "connect unspecified"),
        (Only::Both, "connect port 0"),
    ] {
        e.row_for(only, a, call, invalid);
    }
    e.row(a, "connect a port nobody listens on", "connection-refused");
    e.row(a, "connect an implicit listener's port", "ok");
    e.row(a, "the implicit listener accepts it", "ok");

    let p = "policy";
    e.row(p, "bind a denied address", "access-denied");
    e.row(p, "bind a denied address, then get-local-address", is);
    e.row(p, "connect a denied address", "access-denied");
    e.row(p, "connect a denied address, then get-local-address", is);
    e
}

/// Runs p3-tcp-states on `loopback` under a policy of loopback TCP, listening on the
/// unspecified address allowed, and bind and connect on `LOOPBACK:1` denied.
async fn tcp_table_holds(loopback: &str) {
    let (listen_any, deny) = (unspecified(loopback), at(loopback, "1"));
    let rules = [
        (Allow, "listen", loopback),
        (Allow, "listen", listen_any),
        (Allow, "connect", loopback),
        (Allow, "bind", foreign(loopback)),
        (Deny, "bind", &deny),
        (Deny, "connect", &deny),
    ];
    table_holds("p3-tcp-states", &[loopback], &rules, tcp_expected(loopback)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_tcp_table_matches_the_wit_docs_over_ipv4() {
    tcp_table_holds("127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_tcp_table_matches_the_wit_docs_over_ipv6() {
    if has_ipv6_loopback() {
        tcp_table_holds("::1").await;
    }
}

/// p3-tcp-states' `restricted` rows under `rules` (which allow connecting to loopback):
/// `listen` on an unbound socket is refused and leaves the socket unbound.
async fn implicit_listen_is_refused(loopback: &str, rules: &[(Verdict, &str, &str)], bind: &str) {
    let target = tokio::net::TcpListener::bind(SocketAddr::new(loopback.parse().unwrap(), 0))
        .await
        .unwrap();
    let target = target.local_addr().unwrap().to_string();
    let mut e = Expected::new(loopback);
    let r = "restricted";
    e.row(r, "listen", "access-denied");
    e.row(r, "listen, then get-local-address", "invalid-state");
    e.row(r, "listen, then get-is-listening", "false");
    e.row(r, "bind loopback", bind);
    e.row(r, "bind unspecified", bind);
    e.row(r, "bind unspecified, then listen", "access-denied");
    e.row(r, "connect", "ok");
    table_holds(
        "p3-tcp-states",
        &[loopback, "restricted", &target],
        rules,
        e,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_listen_with_only_a_connect_right_is_access_denied_not_a_listener() {
    for loopback in ["127.0.0.1", "::1"] {
        if loopback == "::1" && !has_ipv6_loopback() {
            continue;
        }
        let rules = [(Allow, "connect", loopback)];
        implicit_listen_is_refused(loopback, &rules, "access-denied").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_implicit_listen_needs_the_listen_right_on_the_unspecified_address() {
    for loopback in ["127.0.0.1", "::1"] {
        if loopback == "::1" && !has_ipv6_loopback() {
            continue;
        }
        // Binding the unspecified address is allowed, listening there is not; a listen right
        // for loopback does not cover it.
        let rules = [
            (Allow, "connect", loopback),
            (Allow, "listen", loopback),
            (Allow, "tcp-bind", unspecified(loopback)),
        ];
        implicit_listen_is_refused(loopback, &rules, "ok").await;
    }
}

const UDP_STATES: [&str; 5] = ["unbound", "bound", "sent", "connected", "disconnected"];

/// The UDP table the docs give, on `loopback`.
fn udp_expected(loopback: &str) -> Expected {
    let mut e = Expected::new(loopback);
    let s = &UDP_STATES;
    let is = "invalid-state";
    let invalid = "invalid-argument";
    let bound = "ok as bound";
    e.across(s, "get-local-address", &[is, bound, bound, bound, bound]);
    e.across(s, "get-remote-address", &[is, is, is, "ok the peer", is]);
    e.across(s, "get-address-family", &["as created"; 5]);
    e.across(s, "bind", &["ok", is, is, is, is]);
    e.across(
        s,
        "bind, then get-local-address",
        &["ok loopback:ephemeral", bound, bound, bound, bound],
    );
    // Connecting binds an unbound socket; connecting again changes the peer, not the port.
    e.across(s, "connect another peer", &["ok"; 5]);
    e.across(
        s,
        "connect, then get-local-address",
        &[
            "ok loopback:ephemeral",
            bound,
            "ok loopback:same port",
            bound,
            bound,
        ],
    );
    e.across(
        s,
        "connect, then get-remote-address",
        &["ok another peer"; 5],
    );
    e.across(s, "disconnect", &[is, is, is, "ok", is]);
    e.across(s, "disconnect, then get-remote-address", &[is; 5]);
    e.across(s, "disconnect, then get-local-address", &["as before"; 5]);
    // Sending binds an unbound socket.
    e.across(s, "send to the peer", &["ok"; 5]);
    e.across(s, "send to the peer, the datagram", &["arrives"; 5]);
    e.across(
        s,
        "send, then get-local-address",
        &["ok unspecified:ephemeral", bound, bound, bound, bound],
    );
    e.across(
        s,
        "send without an address",
        &[invalid, invalid, invalid, "ok", invalid],
    );
    e.row(
        "connected",
        "send without an address, the datagram",
        "arrives",
    );
    e.across(
        s,
        "send to another peer",
        &["ok", "ok", "ok", invalid, "ok"],
    );
    for state in ["unbound", "bound", "sent", "disconnected"] {
        e.row(state, "send to another peer, the datagram", "arrives");
    }
    e.row("connected", "send to the peer named", "ok");
    // The peer's system answers with a port-unreachable error, which receive reports.
    e.row("connected", "send to a closed port", "ok");
    e.row(
        "connected",
        "send to a closed port, then receive",
        "connection-refused",
    );
    e.row(
        "connected",
        "send to the peer named, the datagram",
        "arrives",
    );
    // Another peer sends first, then the peer: a connected socket hears only its peer.
    let first = "ok other from another peer";
    e.across(
        s,
        "receive",
        &[is, first, first, "ok peer from the peer", first],
    );
    for state in s {
        for (option, set, read) in [
            ("unicast-hop-limit", "42", "ok 42"),
            ("receive-buffer-size", "65536", "ok 65536"),
            ("send-buffer-size", "65536", "ok 65536"),
        ] {
            e.row(state, &format!("get-{option}"), "ok");
            e.row(state, &format!("set-{option} {set}"), "ok");
            e.row(state, &format!("get-{option} after set"), read);
            e.row(state, &format!("set-{option} 0"), invalid);
        }
    }

    let a = "arguments";
    for (only, call, result) in [
        (Only::Both, "bind the other family", invalid),
        (Only::V6, "bind ipv4-mapped", invalid),
        (Only::Both, "bind a foreign address", "address-not-bindable"),
        (Only::Both, "bind an address in use", "address-in-use"),
    ] {
        e.row_for(only, a, call, result);
        e.row_for(only, a, &format!("{call}, then bind"), "ok");
    }
    for (only, what) in [
        (Only::Both, "the other family"),
        (Only::Both, "unspecified"),
        (Only::Both, "port 0"),
        (Only::V6, "ipv4-mapped"),
    ] {
        for call in [format!("connect {what}"), format!("send to {what}")] {
            e.row_for(only, a, &call, invalid);
            e.row_for(only, a, &format!("{call}, then get-local-address"), is);
        }
    }
    e.row(a, "send without an address", invalid);
    e.row(a, "send without an address, then get-local-address", is);
    e.row(a, "send 65535 bytes", "datagram-too-large");

    let p = "policy";
    e.row(p, "bind a denied address", "access-denied");
    e.row(p, "connect a denied address", "access-denied");
    e.row(p, "connect a denied address, then get-local-address", is);
    e.row(p, "send to a denied address", "access-denied");
    e.row(p, "send to a denied address, then get-local-address", is);
    e.row(
        p,
        "send from a bound socket to a denied address",
        "access-denied",
    );
    // A refused connect leaves the peer the socket had.
    e.row(
        p,
        "connect a connected socket to a denied address",
        "access-denied",
    );
    e.row(
        p,
        "connect a connected socket to a denied address, then get-remote-address",
        "ok the peer",
    );
    e
}

/// Runs p3-udp-states on `loopback` under a policy of loopback UDP, with `udp-bind` and
/// `udp-send` on `LOOPBACK:1` denied.
async fn udp_table_holds(loopback: &str) {
    let deny = at(loopback, "1");
    let rules = [
        (Allow, "udp", loopback),
        (Allow, "udp-bind", foreign(loopback)),
        (Deny, "udp-bind", &deny),
        (Deny, "udp-send", &deny),
    ];
    table_holds("p3-udp-states", &[loopback], &rules, udp_expected(loopback)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_udp_table_matches_the_wit_docs_over_ipv4() {
    udp_table_holds("127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_udp_table_matches_the_wit_docs_over_ipv6() {
    if has_ipv6_loopback() {
        udp_table_holds("::1").await;
    }
}

/// A datagram from a source `udp-receive` refuses never reaches a 0.3 guest; one from an
/// allowed source sent after it does (p3-udp-echo returns it).
async fn refused_source_is_never_heard(loopback: &str) {
    let ip: IpAddr = loopback.parse().unwrap();
    let refused = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let allowed = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let refused_at = refused.local_addr().unwrap().to_string();
    let rules = [
        (Allow, "udp", loopback),
        (Deny, "udp-receive", refused_at.as_str()),
    ];
    let server = Running::start(
        "p3-udp-echo",
        &[&at(loopback, "0"), "1"],
        ctx(policy(&rules)),
    );
    let addr = server.listening().await;
    refused.send_to(b"refused", addr).await.unwrap();
    allowed.send_to(b"allowed", addr).await.unwrap();
    let mut buf = [0u8; 100];
    let (n, _) = tokio::time::timeout(Duration::from_secs(30), allowed.recv_from(&mut buf))
        .await
        .expect("the allowed peer's echo")
        .unwrap();
    assert_eq!(
        &buf[..n],
        b"allowed",
        "the guest echoed only the allowed datagram"
    );
    assert_eq!(server.finish().await.code, 0);
    let nothing = tokio::time::timeout(Duration::from_millis(300), refused.recv_from(&mut buf));
    assert!(nothing.await.is_err(), "the refused peer hears nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_datagrams_from_a_refused_source_never_reach_the_guest() {
    refused_source_is_never_heard("127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_datagrams_from_a_refused_source_never_reach_the_guest_over_ipv6() {
    if has_ipv6_loopback() {
        refused_source_is_never_heard("::1").await;
    }
}
