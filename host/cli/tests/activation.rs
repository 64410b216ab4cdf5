//! Socket activation: `capnet run` started the way systemd starts a service, with listening
//! sockets from fd 3 on and `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` set.
//!
//! The parent is a shell: the test hands it the socket as its stdin, and it moves that to fd 3,
//! sets `LISTEN_PID` to its own pid and execs capnet, which keeps the pid. That is what a
//! service manager does, without needing one on the machine.

mod support;

use capnet_tests::{PATIENCE, guest, p1_guest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Output, Stdio};
use support::{failing, tests_environment};

/// Runs `capnet ARGS` with `socket` as fd 3 and `LISTEN_FDS=1`; `LISTEN_PID` is capnet's own
/// pid unless `pid` says otherwise.
fn activated(socket: impl Into<OwnedFd>, names: Option<&str>, pid: Option<u32>) -> Command {
    let mut cmd = Command::new("sh");
    tests_environment(&mut cmd)
        .arg("-c")
        .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=${OTHER_PID:-$$} exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_capnet"))
        .env("LISTEN_FDS", "1")
        .stdin(Stdio::from(socket.into()));
    if let Some(names) = names {
        cmd.env("LISTEN_FDNAMES", names);
    }
    if let Some(pid) = pid {
        cmd.env("OTHER_PID", pid.to_string());
    }
    cmd
}

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Waits for `listening on ADDR` on the child's stdout.
fn listening(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut stderr = || {
        let mut rest = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        rest
    };
    match line.strip_prefix("listening on ") {
        Some(addr) => addr.trim().to_owned(),
        None => panic!(
            "expected a listening line, got {line:?}; stderr: {}",
            stderr()
        ),
    }
}

fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

fn finished(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn an_activated_listener_serves_the_guest_at_its_own_address_with_no_listen_right() {
    let (socket, addr) = listener();
    let mut child = activated(socket, None, None)
        .arg("run")
        .arg(guest("http-hello"))
        .args([&addr.to_string(), "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(listening(&mut child), addr.to_string());
    let reply = exchange(addr, b"GET / HTTP/1.1\r\nhost: capnet\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("hello from a capnet guest\n"), "{reply}");
    let out = finished(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("denied"), "{stderr}");
}

/// Runs the echo server activated with a listener (named `names`) and `--tcplisten
/// TCPLISTEN` for its address 127.0.0.1:7, which `tcplisten` makes of the listener's address:
/// the guest must say it listens there and echo `message` sent to the listener.
fn echo_server_adopts(
    names: Option<&str>,
    tcplisten: impl Fn(SocketAddr) -> String,
    message: &str,
) {
    let (socket, addr) = listener();
    let mut child = activated(socket, names, None)
        .args(["run", "--tcplisten", &tcplisten(addr)])
        .arg(guest("echo-server"))
        .args(["127.0.0.1:7", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(listening(&mut child), "127.0.0.1:7");
    assert_eq!(exchange(addr, message.as_bytes()), message);
    finished(child);
}

#[test]
fn a_named_socket_reaches_the_guest_at_the_address_tcplisten_gives_its_name() {
    echo_server_adopts(
        Some("web"),
        |_| "web=127.0.0.1:7".to_owned(),
        "named and adopted",
    );
}

#[test]
fn tcplisten_of_the_activated_address_adopts_the_socket_instead_of_binding_again() {
    // A second bind of a port that is listening would fail with address-in-use.
    echo_server_adopts(
        None,
        |addr| format!("{addr}=127.0.0.1:7"),
        "adopted by address",
    );
}

#[test]
fn sockets_passed_to_another_pid_are_not_adopted() {
    let (socket, addr) = listener();
    let stderr = failing(
        activated(socket, None, Some(1))
            .arg("run")
            .arg(guest("http-hello"))
            .args([&addr.to_string(), "1"]),
    );
    assert!(
        stderr.contains("denied create-tcp-socket"),
        "the guest had no listener and no right: {stderr}"
    );
}

#[test]
fn a_name_the_service_manager_did_not_pass_is_refused_naming_the_ones_it_did() {
    let (socket, _) = listener();
    let out = activated(socket, Some("web"), None)
        .args(["run", "--tcplisten", "api=127.0.0.1:7"])
        .arg(guest("echo-server"))
        .args(["127.0.0.1:7", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --tcplisten api=127.0.0.1:7: no socket named \"api\" was passed by the service manager (LISTEN_FDNAMES left: web)\n"
    );
}

#[test]
fn a_passed_socket_that_is_not_listening_is_refused_before_the_guest_runs() {
    let (server, addr) = listener();
    let connected = TcpStream::connect(addr).unwrap();
    let out = activated(connected, None, None)
        .arg("run")
        .arg(guest("http-hello"))
        .args(["127.0.0.1:0", "1"])
        .output()
        .unwrap();
    drop(server);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: socket activation: fd 3 is a TCP socket that is not listening; \
         capnet adopts listening TCP sockets: ListenStream=[ADDR:]PORT with Accept=no\n"
    );
}

#[test]
fn a_passed_udp_socket_is_refused_before_the_guest_runs() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = activated(udp, Some("dns"), None)
        .arg("run")
        .arg(guest("http-hello"))
        .args(["127.0.0.1:0", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: socket activation: fd 3 (\"dns\") is not a TCP socket (fd 3 is not a valid tcp socket); \
         capnet adopts listening TCP sockets: ListenStream=[ADDR:]PORT with Accept=no\n"
    );
}

#[test]
fn a_preview1_module_gets_the_passed_sockets_first_then_the_tcplisten_ones_as_wasmtime_numbers_them()
 {
    let (socket, _passed) = listener();
    // fd 3 is the service manager's socket, fd 4 the one --tcplisten binds: the module serves
    // fd 4, so only a client of the --tcplisten address is answered.
    let mut child = activated(socket, None, None)
        .args(["run", "--tcplisten", "127.0.0.1:0"])
        .arg(p1_guest("p1-echo"))
        .args(["1", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let bound: SocketAddr = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no pre-open line");
        if line.contains("from the service manager") {
            continue;
        }
        if let Some(rest) = line.split("pre-opened listener on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let mut stream = TcpStream::connect(bound).unwrap();
    // Were the order the other way, fd 4 would be the passed socket and this would wait.
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"fd 4").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "fd 4");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "connection 1: echoed 4 bytes\n"
    );
}
