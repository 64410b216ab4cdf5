//! `--limit calls-in-flight=N` as a user gives it: a 0.3 guest that keeps more UDP receives
//! in flight than N has the rest refused at once with `out-of-memory`, and each refusal is a
//! decision line naming the call, the limit and the instance.

mod support;

use support::capnet;

use capnet_tests::guest;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;

#[test]
fn receives_past_calls_in_flight_are_refused_with_out_of_memory_and_logged() {
    let mut child = capnet()
        .args([
            "run",
            "--allow-udp",
            "127.0.0.1",
            "--limit",
            "calls-in-flight=8",
        ])
        .arg(guest("p3-in-flight"))
        .args(["udp-receive", "20", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let control: SocketAddr = line
        .strip_prefix("waiting on ")
        .unwrap_or_else(|| panic!("expected a waiting line, got {line:?}"))
        .trim()
        .parse()
        .unwrap();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"go", control)
        .unwrap();
    let in_flight = loop {
        line.clear();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "the guest ended");
        if let Some(rest) = line.strip_prefix("in flight: ") {
            break rest.trim().to_owned();
        }
    };
    // The guest waits for datagrams that never come: its refusals are all logged by now.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(in_flight, "20 started, 12 refused (out-of-memory)");
    let refusals = stderr
        .lines()
        .filter(|l| {
            l.contains("denied udp-socket.receive: out-of-memory (limit calls-in-flight = 8)")
                && l.contains("instance=\"p3-in-flight.wasm\"")
        })
        .count();
    assert_eq!(refusals, 12, "{stderr}");
}
