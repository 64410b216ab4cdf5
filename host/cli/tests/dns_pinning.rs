//! DNS-pinned grants end to end: a test DNS server on loopback (UDP and TCP, one ephemeral
//! port) answers A queries with a fixed TTL; `capnet run --dns-server` points the guest's
//! lookups at it.

use capnet_tests::guest;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output};

/// What the responder says to an A query.
#[derive(Clone, Copy)]
enum Answer {
    /// The address, TTL 300, over UDP and TCP.
    Address(Ipv4Addr),
    /// The address over TCP only: over UDP a truncated reply with no records, as a server
    /// says an answer is too big for a datagram.
    OverTcpOnly(Ipv4Addr),
    /// SERVFAIL: the server failed.
    ServFail,
    /// NXDOMAIN: no such name.
    NxDomain,
}

/// A DNS responder on loopback: every A query gets `answer`, AAAA no records.
fn dns_server(answer: Ipv4Addr) -> SocketAddr {
    dns_responder(Answer::Address(answer))
}

/// A DNS responder on one loopback port, over UDP and over TCP (two-byte length prefix).
fn dns_responder(answer: Answer) -> SocketAddr {
    // The TCP port is the UDP port, as a resolver retries a truncated answer there.
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            if let Some(reply) = reply(&buf[..n], answer, false) {
                let _ = udp.send_to(&reply, peer);
            }
        }
    });
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            std::thread::spawn(move || serve_tcp(stream, answer));
        }
    });
    addr
}

/// Answers length-prefixed queries on one TCP connection until the client closes it.
fn serve_tcp(mut stream: TcpStream, answer: Answer) {
    let mut len = [0u8; 2];
    while stream.read_exact(&mut len).is_ok() {
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(reply) = reply(&query, answer, true) else {
            return;
        };
        let mut framed = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// The reply to `query`: its header and question, then the answer `answer` calls for.
fn reply(query: &[u8], answer: Answer, over_tcp: bool) -> Option<Vec<u8>> {
    // The question ends after the name's zero byte, then type and class.
    let name_end = query.get(12..)?.iter().position(|&b| b == 0)? + 12 + 1;
    let qtype = u16::from_be_bytes([*query.get(name_end)?, *query.get(name_end + 1)?]);
    let mut reply = query.get(..name_end + 4)?.to_vec();
    reply[2] = 0x81; // response, recursion desired
    reply[3] = 0x80; // recursion available, no error
    reply[6..12].fill(0); // no answer, authority or additional records (yet)
    let address = match answer {
        Answer::Address(ip) => ip,
        Answer::OverTcpOnly(ip) if over_tcp => ip,
        Answer::OverTcpOnly(_) if qtype == 1 => {
            reply[2] |= 0x02; // truncated
            return Some(reply);
        }
        Answer::OverTcpOnly(ip) => ip,
        Answer::ServFail => {
            reply[3] |= 2;
            return Some(reply);
        }
        Answer::NxDomain => {
            reply[3] |= 3;
            return Some(reply);
        }
    };
    if qtype == 1 {
        reply[7] = 1; // one answer
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    Some(reply)
}

/// A TCP server on loopback that answers one connection with `pong`.
fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = Vec::new();
            let _ = stream.read_to_end(&mut request);
            let _ = stream.write_all(b"pong");
        }
    });
    addr
}

fn run(dns: SocketAddr, policy: &[&str], target: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capnet"))
        .env_remove("CAPNET_LOG")
        .arg("run")
        .arg(format!("--dns-server={dns}"))
        .args(policy)
        .arg(guest("tcp-client"))
        .args([target, "ping"])
        .output()
        .unwrap()
}

#[test]
fn a_public_name_resolving_to_loopback_is_dropped_and_logged() {
    let dns = dns_server(Ipv4Addr::LOCALHOST);
    let server = pong_server();
    let port = server.port();
    let out = run(
        dns,
        &["--allow-connect", &format!("rebind.example.com:{port}")],
        &format!("rebind.example.com:{port}"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "dropped answer 127.0.0.1 for rebind.example.com: loopback address from DNS and no rule allows it"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: lookup rebind.example.com: name-unresolvable"),
        "{stderr}"
    );
}

#[test]
fn a_name_resolving_to_the_unspecified_address_is_dropped_and_logged() {
    // 0.0.0.0 reaches the host itself: a name must not point there without a rule of its own.
    let dns = dns_server(Ipv4Addr::UNSPECIFIED);
    let out = run(
        dns,
        &["--allow-connect", "nowhere.example.com:80"],
        "nowhere.example.com:80",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "dropped answer 0.0.0.0 for nowhere.example.com: unspecified address from DNS and no rule allows it"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: lookup nowhere.example.com: name-unresolvable"),
        "{stderr}"
    );
}

#[test]
fn a_names_loopback_answer_is_reached_only_on_a_port_a_rule_naming_the_address_allows() {
    let dns = dns_server(Ipv4Addr::LOCALHOST);
    // One connection is all the server answers: the second run gets its pong only if the
    // first never reached it.
    let server = pong_server();
    let port = server.port();
    let target = format!("good.example.com:{port}");
    // A rule for loopback on another port keeps the answer at lookup, and lets the name's
    // rule reach no other port of it.
    let other_port = [
        "--allow-connect",
        &target,
        "--allow-connect",
        "127.0.0.1:1",
        "-v",
    ];
    let out = run(dns, &other_port, &target);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: connect {server}: access-denied")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("dropped answer"),
        "kept at lookup: {stderr}"
    );

    // A rule naming the address on the name's port reaches it.
    let same_port = [
        "--allow-connect",
        &target,
        "--allow-connect",
        &server.to_string(),
        "-v",
    ];
    let out = run(dns, &same_port, &target);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        out.stdout, b"pong",
        "the first run never reached the server"
    );
    assert!(
        stderr.contains(&format!("capnet.rule=flag --allow-connect \"{server}\""))
            && stderr.contains("capnet.use=tcp-connect"),
        "{stderr}"
    );
}

#[test]
fn without_a_lookup_the_address_is_not_pinned() {
    let dns = dns_server(Ipv4Addr::LOCALHOST);
    let server = pong_server();
    let out = run(
        dns,
        &[
            "--allow-connect",
            &format!("good.example.com:{}", server.port()),
        ],
        &server.to_string(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: connect {server}: access-denied")),
        "{stderr}"
    );
}

#[test]
fn a_name_whose_udp_answer_is_truncated_is_answered_over_tcp() {
    let dns = dns_responder(Answer::OverTcpOnly(Ipv4Addr::LOCALHOST));
    let server = pong_server();
    let port = server.port();
    let policy = [
        "--allow-connect",
        &format!("big.example.com:{port}"),
        "--allow-connect",
        &server.to_string(),
    ];
    let out = run(dns, &policy, &format!("big.example.com:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        out.stdout, b"pong",
        "the address came over TCP: UDP never carried it"
    );
}

#[test]
fn a_server_failure_is_a_temporary_resolver_failure() {
    let dns = dns_responder(Answer::ServFail);
    let out = run(
        dns,
        &["--allow-connect", "failing.example.com:80"],
        "failing.example.com:80",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: lookup failing.example.com: temporary-resolver-failure"),
        "{stderr}"
    );
}

#[test]
fn a_name_that_does_not_exist_is_name_unresolvable() {
    let dns = dns_responder(Answer::NxDomain);
    let out = run(
        dns,
        &["--allow-connect", "missing.example.com:80"],
        "missing.example.com:80",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: lookup missing.example.com: name-unresolvable"),
        "{stderr}"
    );
}
