//! The `capnet` command as a user runs it: real guests, real sockets, real curl and nc.
//!
//! Bad policy files live in `tests/policies/` with the exact stderr expected beside them
//! (`NAME.stderr`); `BLESS=1 cargo test` rewrites those files from the current output.

use capnet_tests::guest;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn capnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capnet"));
    cmd.env_remove("CAPNET_LOG");
    cmd
}

/// Waits for `listening on ADDR` on the child's stdout.
fn listening(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected a listening line, got {line:?}"))
        .trim()
        .parse()
        .expect("an address")
}

fn wait(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("capnet did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", url])
        .output()
        .expect("curl is installed (scripts/setup)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn allow_listen_serves_curl() {
    let mut child = capnet()
        .args(["run", "--allow-listen", "127.0.0.1:0"])
        .arg(guest("http-hello"))
        .args(["127.0.0.1:0", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening(&mut child);
    assert_eq!(
        curl(&format!("http://{addr}/")),
        "hello from a capnet guest\n"
    );
    let out = wait(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_the_allow_the_bind_is_access_denied_and_named() {
    let out = capnet()
        .arg("run")
        .arg(guest("http-hello"))
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the guest's own exit code: {stderr}"
    );
    assert!(
        stderr.contains("denied tcp-bind 127.0.0.1:0: access-denied (no rule: default deny)"),
        "{stderr}"
    );
}

#[test]
fn verbose_logs_every_allow_with_the_rule_that_decided() {
    let mut child = capnet()
        .args(["run", "-v", "--allow-listen", "127.0.0.1:0"])
        .arg(guest("http-hello"))
        .args(["127.0.0.1:0", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening(&mut child);
    curl(&format!("http://{addr}/"));
    let out = wait(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for use_ in ["tcp-bind", "tcp-listen", "tcp-accept"] {
        assert!(
            stderr.contains(&format!("capnet.use={use_}"))
                && stderr.contains(r#"capnet.rule=flag --allow-listen "127.0.0.1:0""#),
            "{use_} decision missing:\n{stderr}"
        );
    }
}

#[test]
fn tcplisten_hands_an_unmodified_guest_its_listener_and_nc_is_echoed() {
    let mut child = capnet()
        .args(["run", "--tcplisten", "127.0.0.1:0=127.0.0.1:7"])
        .arg(guest("echo-server"))
        .args(["127.0.0.1:7", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The guest knows the socket by the address it bound; capnet says where it really is.
    assert_eq!(listening(&mut child).to_string(), "127.0.0.1:7");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let real = line
        .split("pre-opened listener on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no pre-open line: {line:?}"));
    let (host, port) = real.rsplit_once(':').unwrap();

    let nc = Command::new("nc")
        .args(["-N", host, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nc is installed (scripts/setup)");
    use std::io::Write;
    nc.stdin
        .as_ref()
        .unwrap()
        .write_all(b"hello through a pre-open\n")
        .unwrap();
    let echoed = nc.wait_with_output().unwrap();
    assert_eq!(echoed.stdout, b"hello through a pre-open\n");

    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = wait(child);
    assert!(out.status.success(), "{rest}");
}

#[test]
fn guest_exit_code_is_capnets_exit_code() {
    // wasi:cli/exit@0.2 carries success or failure: a guest's usage error arrives as 1.
    let out = capnet()
        .arg("run")
        .arg(guest("tcp-client"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("usage: tcp-client ADDR MESSAGE"),
        "{stderr}"
    );
}

#[test]
fn bad_policy_files_fail_at_load_with_their_pinned_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies");
    let bless = std::env::var_os("BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the snapshot files are there");
    let mut mismatches = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let out = capnet()
            .current_dir(&dir)
            .args(["run", "--policy", name])
            .arg(guest("http-hello"))
            .arg("127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name} must fail before the guest runs"
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = file.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}; run with BLESS=1", expected_path.display()));
        if stderr != expected {
            mismatches.push(format!(
                "{name}:\n  expected: {expected:?}\n  actual:   {stderr:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn bad_flags_fail_at_load_naming_the_flag_and_the_rule() {
    let out = capnet()
        .args(["run", "--allow-connect", "127.0.0.1:80,10.0.0.0/8:9000-80"])
        .arg(guest("tcp-client"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --allow-connect: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end (write 80-9000)\n"
    );
}

/// Lines from a child's stdout, each awaited with a deadline.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(lines: &std::sync::mpsc::Receiver<String>, waiting_for: &str) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no line from the guest while waiting for {waiting_for}"))
}

#[test]
fn one_poll_wakes_for_whichever_of_tcp_udp_timer_and_stdin_is_ready() {
    let policy = std::env::temp_dir().join(format!("capnet-poll-mix-{}.toml", std::process::id()));
    std::fs::write(
        &policy,
        "[allow]\nlisten = [\"127.0.0.1:0\"]\nudp-bind = [\"127.0.0.1:0\"]\nudp-receive = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let mut child = capnet()
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg(guest("poll-mix"))
        .args(["127.0.0.1:0", "127.0.0.1:0", "300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let tcp: SocketAddr = next_line(&lines, "the tcp address")
        .strip_prefix("listening on ")
        .expect("tcp line")
        .parse()
        .unwrap();
    let udp: SocketAddr = next_line(&lines, "the udp address")
        .strip_prefix("udp on ")
        .expect("udp line")
        .parse()
        .unwrap();

    // Nothing but time passes: the timer wakes the poll.
    assert_eq!(next_line(&lines, "the timer"), "ready: timer");

    let client = std::net::TcpStream::connect(tcp).unwrap();
    let peer = client.local_addr().unwrap();
    assert_eq!(next_line(&lines, "tcp"), format!("ready: tcp {peer}"));

    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"ping", udp).unwrap();
    assert_eq!(next_line(&lines, "udp"), "ready: udp ping");

    use std::io::Write;
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    assert_eq!(next_line(&lines, "stdin"), "ready: stdin hello");

    let out = wait(child);
    std::fs::remove_file(&policy).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
