//! WASI preview 1 modules under `capnet run`, as `wasmtime run --tcplisten` runs them: the
//! pre-opened listener is descriptor 3, every peer is checked against `tcp-accept` the way a
//! component's is, and a module capnet cannot serve is refused at load saying why.
//!
//! Modules that must be refused live in `tests/modules/` as text (`NAME.wat`) with the exact
//! stderr expected beside them (`NAME.stderr`); `BLESS=1 cargo test` rewrites those files.

mod support;

use support::capnet;

use capnet_tests::p1_guest;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};

/// Starts `capnet run --tcplisten 127.0.0.1:0 ARGS` and returns it with the address capnet
/// bound, read from its `pre-opened listener on ADDR` line, and its stderr's later lines.
fn serving(args: &[&str]) -> (Child, SocketAddr, std::sync::mpsc::Receiver<String>) {
    let mut child = capnet()
        .args(["run", "--tcplisten", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let addr = lines
        .iter()
        .find_map(|line| {
            let rest = line.split("pre-opened listener on ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .expect("capnet's pre-opened listener line");
    (child, addr, lines)
}

/// Sends `message` from a client bound to `from`, closes its write side and returns what came
/// back before the end of the stream (or the reset of a refused peer).
fn exchange_from(from: &str, addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{from}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream = TcpStream::from(socket);
    // A refused peer may be closed before these bytes arrive: a reset, not a test failure.
    let _ = stream.write_all(message);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// The whole of the module's stdout and capnet's stderr once it has exited 0.
fn finished(mut child: Child, lines: std::sync::mpsc::Receiver<String>) -> (String, String) {
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr: Vec<String> = lines.iter().collect();
    let stderr = stderr.join("\n");
    assert!(status.success(), "{status}: {stderr}");
    (stdout, stderr)
}

#[test]
fn a_std_preview1_server_serves_fd_3_and_a_peer_denied_by_tcp_accept_never_reaches_it() {
    let module = p1_guest("p1-echo");
    let (child, addr, lines) = serving(&[
        "-v",
        "--deny-accept",
        "127.0.0.2",
        module.to_str().unwrap(),
        "1",
    ]);
    // The module blocks in accept; capnet takes the refused peer, closes it and waits on.
    assert_eq!(exchange_from("127.0.0.2", addr, b"refused"), b"");
    assert_eq!(exchange_from("127.0.0.1", addr, b"hello"), b"hello");
    let (stdout, stderr) = finished(child, lines);
    // It served one connection, the allowed one: it never saw the refused peer.
    assert_eq!(stdout, "connection 1: echoed 5 bytes\n");
    let denied = stderr
        .lines()
        .find(|l| l.contains("denied tcp-accept 127.0.0.2:"))
        .unwrap_or_else(|| panic!("no denial logged: {stderr}"));
    assert!(
        denied.contains(r#"(flag --deny-accept "127.0.0.2")"#)
            && denied.contains(r#"instance="p1-echo.wasm""#),
        "{denied}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("allowed")
            && l.contains("capnet.addr=127.0.0.1:")
            && l.contains("pre-opened listener")),
        "no allow logged: {stderr}"
    );
}

#[test]
fn a_tokio_preview1_server_serves_connections_at_once_and_never_sees_a_denied_peer() {
    let module = p1_guest("p1-tokio-echo");
    let (child, addr, lines) =
        serving(&["--deny-accept", "127.0.0.2", module.to_str().unwrap(), "2"]);
    assert_eq!(exchange_from("127.0.0.2", addr, b"refused"), b"");
    // The first stays open while the second is served: tokio's reactor waits on both.
    let mut first = TcpStream::connect(addr).unwrap();
    first.write_all(b"first").unwrap();
    assert_eq!(exchange_from("127.0.0.1", addr, b"second"), b"second");
    first.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    first.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"first");
    let (stdout, stderr) = finished(child, lines);
    let mut served: Vec<&str> = stdout.lines().collect();
    served.sort();
    assert_eq!(
        served,
        [
            "connection 1: echoed 5 bytes",
            "connection 2: echoed 6 bytes"
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("denied tcp-accept 127.0.0.2:")
            && stderr.contains(r#"instance="p1-tokio-echo.wasm""#),
        "{stderr}"
    );
}

#[test]
fn modules_capnet_cannot_serve_are_refused_at_load_with_their_pinned_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/modules");
    let work = std::env::temp_dir().join(format!("capnet-p1-modules-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let bless = std::env::var_os("BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wat"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the module files are there");
    let mut mismatches = Vec::new();
    for file in files {
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let wasm = format!("{name}.wasm");
        std::fs::write(work.join(&wasm), wat::parse_file(&file).unwrap()).unwrap();
        let out = capnet()
            .current_dir(&work)
            .args(["run", &wasm])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        mismatches.extend(support::pinned(
            &name,
            &file.with_extension("stderr"),
            &stderr,
            bless,
        ));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
