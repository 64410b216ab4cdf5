//! DNS-pinned grants end to end: a test DNS server on loopback (UDP, an ephemeral port) answers
//! A queries with a fixed TTL; `capnet run --dns-server` points the guest's lookups at it.

use capnet_tests::guest;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output};

/// A DNS responder: every A query is answered with `answer` (TTL 300), AAAA with no records.
fn dns_server(answer: Ipv4Addr) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let query = &buf[..n];
            // The question ends after the name's zero byte, then type and class.
            let Some(name_end) = query[12..].iter().position(|&b| b == 0).map(|i| 12 + i + 1)
            else {
                continue;
            };
            let qtype = u16::from_be_bytes([query[name_end], query[name_end + 1]]);
            let mut reply = query[..name_end + 4].to_vec();
            reply[2] = 0x81; // response, recursion desired
            reply[3] = 0x80; // recursion available, no error
            if qtype == 1 {
                reply[7] = 1; // one answer
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
                reply.extend_from_slice(&answer.octets());
            }
            let _ = socket.send_to(&reply, peer);
        }
    });
    addr
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
fn an_allowed_name_connects_to_the_pinned_address_only_on_its_port() {
    let dns = dns_server(Ipv4Addr::LOCALHOST);
    let server = pong_server();
    let port = server.port();
    // The operator lets loopback answers through (a rule allowing a loopback address), and
    // grants the name on one port: the connect is allowed by the name, via the pinned answer.
    let policy = [
        "--allow-connect",
        &format!("good.example.com:{port}"),
        "--allow-connect",
        "127.0.0.1:1",
        "-v",
    ];
    let out = run(dns, &policy, &format!("good.example.com:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(out.stdout, b"pong");
    assert!(
        stderr.contains(&format!(
            "capnet.rule=flag --allow-connect \"good.example.com:{port}\""
        )) && stderr.contains("capnet.use=tcp-connect"),
        "{stderr}"
    );

    // Another port of the same address: neither the name nor the address allows it.
    let out = run(dns, &policy, &format!("good.example.com:{}", port ^ 1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access-denied"), "{stderr}");
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
