//! The `capnet` command as a user runs it: real guests, real sockets, real curl and nc.
//!
//! Bad policy files live in `tests/policies/` with the exact stderr expected beside them
//! (`NAME.stderr`); `BLESS=1 cargo test` rewrites those files from the current output.

mod support;

use support::{capnet, failing, serving};

use capnet_tests::guest;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => files_under(&e.path()),
            false => 1,
        })
        .sum()
}

#[test]
fn run_keeps_compiled_code_in_the_cache_dir_unless_told_not_to() {
    let scratch = std::env::temp_dir().join(format!("capnet-cache-test-{}", std::process::id()));
    let (cached, uncached) = (scratch.join("cached"), scratch.join("uncached"));
    let run = |extra: &[&std::ffi::OsStr], env_dir: &Path| {
        let out = capnet()
            .env("CAPNET_CACHE_DIR", env_dir)
            .arg("run")
            .args(extra)
            .arg(guest("tcp-client"))
            .output()
            .unwrap();
        // The guest ran (its usage error proves it was compiled and instantiated).
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    run(&["--cache-dir".as_ref(), cached.as_os_str()], &uncached);
    assert!(files_under(&cached) > 0, "compiled code was kept");
    assert_eq!(
        files_under(&uncached),
        0,
        "--cache-dir wins over the environment"
    );

    run(&["--no-cache".as_ref()], &uncached);
    assert_eq!(files_under(&uncached), 0, "--no-cache keeps nothing");

    // A cache that cannot exist costs start-up time, not the run.
    let blocked = scratch.join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let stderr = run(&[], &blocked.join("cache"));
    assert!(
        stderr.contains("warning: no compiled-code cache in")
            && stderr.contains("usage: tcp-client"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
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
    let (child, addr) = serving(
        capnet()
            .args(["run", "--allow-listen", "127.0.0.1:0"])
            .arg(guest("http-hello"))
            .args(["127.0.0.1:0", "1"]),
    );
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
    // A TCP right for something else, so the socket is created and the bind is what is refused.
    let out = capnet()
        .args(["run", "--allow-connect", "127.0.0.1:1"])
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
fn without_any_tcp_right_create_tcp_socket_is_refused_and_the_missing_uses_named() {
    let stderr = failing(
        capnet()
            .args(["run", "--allow-udp", "127.0.0.1"])
            .arg(guest("http-hello"))
            .arg("127.0.0.1:0"),
    );
    assert!(
        stderr.contains(
            "denied create-tcp-socket: access-denied \
             (no rule grants any of tcp-bind+tcp-listen+tcp-accept+tcp-connect)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_refused_lookup_is_a_permanent_resolver_failure_logged_with_its_rule() {
    let stderr = failing(
        capnet()
            .args([
                "run",
                "--deny-lookup",
                "example.com",
                "--allow-connect",
                "any:80",
            ])
            .arg(guest("tcp-client"))
            .args(["example.com:80", "x"]),
    );
    assert!(
        stderr.contains("error: lookup example.com: permanent-resolver-failure"),
        "the guest sees what wasmtime-wasi answers: {stderr}"
    );
    assert!(
        stderr.contains(
            r#"denied lookup example.com: access-denied (flag --deny-lookup "example.com")"#
        ),
        "the log names the rule: {stderr}"
    );
}

#[test]
fn verbose_logs_every_allow_with_the_rule_that_decided() {
    let (child, addr) = serving(
        capnet()
            .args(["run", "-v", "--allow-listen", "127.0.0.1:0"])
            .arg(guest("http-hello"))
            .args(["127.0.0.1:0", "1"]),
    );
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
    let (mut child, bound) = serving(
        capnet()
            .args(["run", "--tcplisten", "127.0.0.1:0=127.0.0.1:7"])
            .arg(guest("echo-server"))
            .args(["127.0.0.1:7", "1"]),
    );
    // The guest knows the socket by the address it bound; capnet says where it really is.
    assert_eq!(bound.to_string(), "127.0.0.1:7");
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
    let stderr = failing(capnet().arg("run").arg(guest("tcp-client")));
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
        // `warn-*` files load with warnings (checked with `policy check`); the rest must fail
        // before the guest runs.
        let warns = name.starts_with("warn-");
        let out = if warns {
            capnet()
                .current_dir(&dir)
                .args(["policy", "check", name])
                .output()
                .unwrap()
        } else {
            capnet()
                .current_dir(&dir)
                .args(["run", "--policy", name])
                .arg(guest("http-hello"))
                .arg("127.0.0.1:0")
                .output()
                .unwrap()
        };
        assert_eq!(
            out.status.code(),
            Some(if warns { 0 } else { 1 }),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        mismatches.extend(support::pinned(
            name,
            &file.with_extension("stderr"),
            &stderr,
            bless,
        ));
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

/// Writes `text` to a fresh policy file and returns its path.
fn policy_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn explain(policy: &Path, use_: &str, address: &str) -> String {
    explain_with(&[], policy, use_, address)
}

/// `capnet policy explain` with `flags` before its arguments.
fn explain_with(flags: &[&str], policy: &Path, use_: &str, address: &str) -> String {
    let out = capnet()
        .args(["policy", "explain"])
        .args(flags)
        .arg(policy)
        .args([use_, address])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(&policy.display().to_string(), "policy.toml")
}

const SETS_POLICY: &str = r#"[allow]
connect = ["loopback:8080", "private:443", "public", "api.example.com:443"]
udp-send = ["link-local:5353"]
udp-receive = ["any:53"]

[deny]
connect = ["metadata"]
"#;

#[test]
fn explain_names_the_rule_for_each_named_set() {
    let policy = policy_file("sets", SETS_POLICY);
    let cases = [
        (
            "tcp-connect",
            "127.0.0.1:8080",
            "allow tcp-connect 127.0.0.1:8080\n  decided by: rule policy.toml:2:12 \"connect loopback:8080\"\n  127.0.0.1 is in: loopback\n",
        ),
        (
            "tcp-connect",
            "[::1]:8081",
            "deny tcp-connect [::1]:8081\n  decided by: no rule: default deny\n  ::1 is in: loopback\n",
        ),
        (
            "tcp-connect",
            "192.168.1.10:443",
            "allow tcp-connect 192.168.1.10:443\n  decided by: rule policy.toml:2:29 \"connect private:443\"\n  192.168.1.10 is in: private\n",
        ),
        (
            "udp-send",
            "[fe80::1]:5353",
            "allow udp-send [fe80::1]:5353\n  decided by: rule policy.toml:3:13 \"udp-send link-local:5353\"\n  fe80::1 is in: link-local\n",
        ),
        (
            "tcp-connect",
            "169.254.169.254:80",
            "deny tcp-connect 169.254.169.254:80\n  decided by: rule policy.toml:7:12 \"connect metadata\"\n  169.254.169.254 is in: link-local, metadata\n",
        ),
        (
            "tcp-connect",
            "8.8.8.8:53",
            "allow tcp-connect 8.8.8.8:53\n  decided by: rule policy.toml:2:44 \"connect public\"\n  8.8.8.8 is in: public\n",
        ),
        (
            "udp-receive",
            "[2001:db8::1]:53",
            "allow udp-receive [2001:db8::1]:53\n  decided by: rule policy.toml:4:16 \"udp-receive any:53\"\n  2001:db8::1 is in: public\n",
        ),
    ];
    for (use_, address, expected) in cases {
        assert_eq!(
            explain(&policy, use_, address),
            expected,
            "{use_} {address}"
        );
    }
}

#[test]
fn explain_answers_a_dns_pinned_name() {
    let policy = policy_file("pinned", SETS_POLICY);
    assert_eq!(
        explain(&policy, "tcp-connect", "api.example.com:443"),
        "allow tcp-connect api.example.com:443\n  decided by: rule policy.toml:2:54 \"connect api.example.com:443\"\n  pinned: tcp-connect goes to the addresses a lookup of api.example.com returns, for the answer's TTL\n  lookup of api.example.com: allow by rule policy.toml:2:54 \"connect api.example.com:443\"\n  answers in loopback, private, link-local or metadata are reached only on a port a rule naming the address allows\n"
    );
    assert_eq!(
        explain(&policy, "tcp-connect", "api.example.com:80"),
        "deny tcp-connect api.example.com:80\n  decided by: no rule: default deny\n"
    );
    assert_eq!(
        explain(&policy, "lookup", "api.example.com"),
        "allow lookup api.example.com\n  decided by: rule policy.toml:2:54 \"connect api.example.com:443\"\n"
    );
}

const LIBRARY_POLICY: &str = r#"[allow]
connect = ["loopback"]

[library.weather.allow]
connect = ["127.0.0.1:9001"]
"#;

#[test]
fn explain_for_a_library_gives_the_apps_verdict_the_librarys_and_the_one_that_holds() {
    let policy = policy_file("library", LIBRARY_POLICY);
    let weather =
        |address| explain_with(&["--library", "weather"], &policy, "tcp-connect", address);
    assert_eq!(
        weather("127.0.0.1:9003"),
        "deny tcp-connect 127.0.0.1:9003 for library weather
  the app: allow by rule policy.toml:2:12 \"connect loopback\"
  library weather: deny by no rule: default deny
  why: the app allows it; library weather's table does not
  127.0.0.1 is in: loopback
"
    );
    assert_eq!(
        weather("127.0.0.1:9001"),
        "allow tcp-connect 127.0.0.1:9001 for library weather
  the app: allow by rule policy.toml:2:12 \"connect loopback\"
  library weather: allow by rule policy.toml:5:12 \"connect 127.0.0.1:9001\"
  127.0.0.1 is in: loopback
"
    );
    assert_eq!(
        explain_with(
            &["--library", "evl"],
            &policy,
            "tcp-connect",
            "127.0.0.1:9001"
        ),
        "deny tcp-connect 127.0.0.1:9001 for library evl
  the app: allow by rule policy.toml:2:12 \"connect loopback\"
  library evl: deny: the policy has no [library.evl] table, so it gets no network
  127.0.0.1 is in: loopback
"
    );
}

#[test]
fn a_library_the_component_does_not_have_is_warned_of_and_a_library_flag_takes_several_uses() {
    let policy = policy_file("unknown-library", LIBRARY_POLICY);
    let out = capnet()
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg("--library-allow=evl=connect 127.0.0.1:9001, 127.0.0.1:9002, udp-send 127.0.0.1:9003")
        .arg(guest("tcp-client"))
        .args(["127.0.0.1:9", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for library in ["evl", "weather"] {
        assert!(
            stderr.contains(&format!(
                "the policy names library {library}, which the component does not have (it has no libraries): its rules decide nothing"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn policy_check_prints_a_summary() {
    let policy = policy_file("check", SETS_POLICY);
    let out = capnet()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&policy.display().to_string(), "policy.toml");
    assert_eq!(
        stdout,
        "policy.toml: ok, 8 rules, 0 warning(s)
use           allow   deny
tcp-bind          0      0
tcp-listen        0      0
tcp-accept        0      0
tcp-connect       4      1
udp-bind          0      0
udp-send          1      0
udp-receive       1      0
lookup            1      0
DNS-pinned grants: 1 (connect to what a lookup returns, for its TTL)
default: deny
limits: sockets 8192, connections 8192, stream-buffer 65536, datagrams 64, lookups 64, calls-in-flight 256, bytes-per-second unset
"
    );
}

#[test]
fn every_use_and_group_word_has_a_flag_pair() {
    let out = capnet().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in capnet::policy::words() {
        for verdict in ["allow", "deny"] {
            assert!(
                help.contains(&format!("--{verdict}-{word} <LIST>")),
                "--{verdict}-{word}"
            );
        }
    }
}

#[test]
fn log_decisions_json_writes_one_line_per_decision() {
    let dir = std::env::temp_dir().join(format!("capnet-cli-{}-json", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("decisions.jsonl");
    let _ = std::fs::remove_file(&log);
    failing(
        capnet()
            .args([
                "run",
                "--allow-connect",
                "127.0.0.1:1",
                "--deny-connect",
                "127.0.0.1:9",
            ])
            .arg(format!("--log-decisions=json:{}", log.display()))
            .arg(guest("tcp-client"))
            .args(["127.0.0.1:9", "hi"]),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("\"use\":\"tcp-connect\""))
        .unwrap_or_else(|| panic!("no tcp-connect decision in {text:?}"));
    assert!(line.starts_with("{\"time\":\"20"), "{line}");
    assert!(
        line.ends_with(
            r#""instance":"tcp-client.wasm","library":null,"use":"tcp-connect","address":"127.0.0.1:9","verdict":"deny","rule":"flag --deny-connect \"127.0.0.1:9\""}"#
        ),
        "{line}"
    );
}

/// Lines from a child's stdout, each awaited with a deadline.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    lines_from(child.stdout.take().expect("piped stdout"))
}

/// Every line `from` yields, as it comes, read on a thread of its own.
fn lines_from(from: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
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

/// Waits for a stderr line that contains `text` and returns it.
fn line_with(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no stderr line with {text:?}"));
        if line.contains(text) {
            return line;
        }
    }
}

/// Sends `message`, closes the sending side and returns what came back (empty when the
/// connection was closed or reset without an answer).
fn echoed(addr: SocketAddr, message: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(message.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut back = String::new();
    let _ = stream.read_to_string(&mut back);
    back
}

/// Sends SIGHUP to `child`: a `capnet run --policy` reloads its file.
fn hangup(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_reloads_the_policy_file_and_a_broken_file_keeps_the_policy_in_force() {
    let policy = policy_file("reload", "[allow]\nlisten = [\"127.0.0.1:0\"]\n");
    let (mut child, addr) = serving(
        capnet()
            .arg("run")
            .arg("--policy")
            .arg(&policy)
            .arg(guest("echo-server"))
            .arg("127.0.0.1:0"),
    );
    let stderr = lines_from(child.stderr.take().expect("piped stderr"));
    assert_eq!(echoed(addr, "before"), "before");

    std::fs::write(
        &policy,
        "[allow]\nlisten = [\"127.0.0.1:0\"]\n[deny]\ntcp-accept = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    hangup(&child);
    line_with(&stderr, "policy replaced");
    assert_eq!(
        echoed(addr, "after"),
        "",
        "the reloaded deny rule refuses the peer"
    );

    std::fs::write(&policy, "[allow]\nlisten = [\"127.0.0.1/33\"]\n").unwrap();
    hangup(&child);
    let error = line_with(&stderr, "error: policy not reloaded");
    assert!(error.contains("policy.toml:2"), "{error}");
    assert_eq!(echoed(addr, "still"), "", "the policy in force stays");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigusr1_prints_the_guests_linear_memory_apart_and_the_guest_keeps_serving() {
    let (mut child, addr) = serving(
        capnet()
            .args(["run", "--allow-listen", "127.0.0.1:0"])
            .arg(guest("echo-server"))
            .arg("127.0.0.1:0"),
    );
    let stderr = lines_from(child.stderr.take().expect("piped stderr"));
    let status = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let line = line_with(&stderr, "capnet: guest memory ");
    let kib = |label: &str| -> u64 {
        let rest = &line[line.find(label).unwrap_or_else(|| panic!("{line}")) + label.len()..];
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let (guest_kib, resident_kib) = (kib("guest memory "), kib("process resident "));
    // Whole 64 KiB wasm pages, and within what the process holds.
    assert!(guest_kib >= 64 && guest_kib % 64 == 0, "{line}");
    assert!(resident_kib > guest_kib, "{line}");
    // The signal's default action would have ended the process.
    assert_eq!(echoed(addr, "after"), "after");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn revoke_on_reload_closes_the_connections_the_reloaded_policy_refuses() {
    use std::io::{Read as _, Write as _};
    let policy = policy_file("revoke-reload", "[allow]\nlisten = [\"127.0.0.1:0\"]\n");
    let (mut child, addr) = serving(
        capnet()
            .args(["run", "--revoke-on-reload", "--policy"])
            .arg(&policy)
            .arg(guest("echo-server"))
            .arg("127.0.0.1:0"),
    );
    let stderr = lines_from(child.stderr.take().expect("piped stderr"));
    let mut held = std::net::TcpStream::connect(addr).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    held.write_all(b"open").unwrap();
    let mut echo = [0u8; 4];
    held.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"open");

    std::fs::write(
        &policy,
        "[allow]\nlisten = [\"127.0.0.1:0\"]\n[deny]\ntcp-accept = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    hangup(&child);
    let closed = line_with(&stderr, "policy reloaded; closed");
    assert!(closed.contains("closed 1 "), "{closed}");
    let mut rest = Vec::new();
    let end = held.read_to_end(&mut rest);
    assert!(
        matches!(&end, Ok(0)) || end.is_err(),
        "the held connection ends: {end:?} {rest:?}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_wasi_0_3_command_runs_through_its_own_run_export() {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).unwrap();
        stream.write_all(b"pong:").unwrap();
        stream.write_all(&request).unwrap();
    });
    let out = capnet()
        .args(["run", "--allow-connect", &addr.to_string()])
        .arg(guest("p3-tcp-client"))
        .args([&addr.to_string(), "p3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pong:p3");
    assert!(
        !stderr.contains("0.2 entry point"),
        "std's run@0.2.0 must not be what runs: {stderr}"
    );
    server.join().unwrap();
}

#[test]
fn every_decision_line_is_valid_json_whatever_the_names_hold() {
    // The instance is named after the component's file: quotes, a backslash, a control
    // character and non-ASCII letters must all come out as valid JSON.
    let dir = std::env::temp_dir().join(format!("capnet-cli-{}-json-names", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "we\"ird\\ \u{1}ñame.wasm";
    let component = dir.join(name);
    std::fs::copy(guest("tcp-client"), &component).unwrap();
    let log = dir.join("decisions.jsonl");
    let _ = std::fs::remove_file(&log);
    let out = capnet()
        .args([
            "run",
            "--allow-connect",
            "127.0.0.1:1",
            "--deny-connect",
            "127.0.0.9",
        ])
        .arg(format!("--log-decisions=json:{}", log.display()))
        .arg(&component)
        .args(["127.0.0.9:9", "hi"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty(), "decisions were logged");
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(value["instance"], name, "{line}");
    }
}

#[test]
fn no_deny_flag_says_it_allows_anything() {
    let out = capnet().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let denies: Vec<&str> = help
        .split("\n      --")
        .filter(|entry| entry.starts_with("deny-") || entry.starts_with("library-deny"))
        // The last flag's entry ends where the text after the options begins.
        .map(|entry| entry.split("\n\n").next().unwrap_or(entry))
        .collect();
    assert!(
        denies.len() >= 14,
        "every use and group word has a deny flag:\n{help}"
    );
    for entry in denies {
        let entry = entry.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            !entry.contains("allow") && !entry.contains("pins"),
            "a deny flag's help speaks of allowing: {entry}"
        );
        assert!(entry.contains("Deny "), "{entry}");
    }
}

#[test]
fn a_limit_flag_stops_the_guest_with_new_socket_limit_and_logs_the_limit() {
    // The kernel completes connections into the listen queue; nothing needs to accept them.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let out = capnet()
        .args([
            "run",
            "--allow-connect",
            &addr,
            "--allow-udp-bind",
            "127.0.0.1",
        ])
        .args([
            "--limit",
            "sockets=4",
            "--library-limit",
            "weather.sockets=1",
        ])
        .arg(guest("flood"))
        .args([addr.as_str(), "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "tcp: 4 connected, then create-tcp-socket: new-socket-limit\n\
         udp: 0 bound, then create-udp-socket: new-socket-limit\nreleased\n"
    );
    assert!(
        stderr.contains("denied create-tcp-socket: new-socket-limit (limit sockets = 4)"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused_saying_what_it_is() {
    let dir = std::env::temp_dir().join(format!("capnet-not-components-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "notes.txt",
            b"hello\n",
            "is text, not a WebAssembly component",
        ),
        ("server.wat", b"(component)\n", "is WebAssembly text"),
        (
            "server.wasm",
            b"\0asm\x01\0\0\0",
            "is a core WebAssembly module that is not WASI preview 1",
        ),
        ("empty.wasm", b"", "is empty"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = capnet().arg("run").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{} {expected}", path.display())),
            "{name}: {stderr}"
        );
    }
    let missing = dir.join("missing.wasm");
    let out = capnet().arg("run").arg(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}: No such file", missing.display())),
        "{stderr}"
    );
}

#[test]
fn a_component_that_is_not_a_command_is_refused_naming_what_it_exports() {
    // The nano example's weather library: a component, but it exports an interface, no `run`.
    let out = capnet().arg("run").arg(guest("weather")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exports capnet:example/weather@0.1.0, not wasi:cli/run (0.2 or 0.3)"),
        "{stderr}"
    );
}
