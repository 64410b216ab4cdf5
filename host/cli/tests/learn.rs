//! Learn mode as a user runs it: `capnet run --learn FILE` with real guests and real sockets,
//! then the same workload under `--policy FILE` with no denial, and a use the learning run
//! never made denied.

mod support;

use support::{capnet, failing, serving};

use capnet_tests::{guest, lang_guest};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-learn-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A TCP echo server on `[::]` (so `localhost` reaches it over IPv4 and IPv6 alike): every
/// connection gets back what it sent.
fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            let _ = stream.write_all(&got);
        }
    });
    port
}

/// A UDP echo server on 127.0.0.1.
fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// `capnet run ARGS`.
fn run_command(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = capnet();
    cmd.arg("run");
    for arg in args {
        cmd.arg(arg);
    }
    cmd
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run_command(args).output().unwrap()
}

/// Asserts `capnet run ARGS` fails (exit code 1) saying `message` on stderr.
fn assert_refused(args: &[&dyn AsRef<std::ffi::OsStr>], message: &str) {
    let stderr = failing(&mut run_command(args));
    assert!(stderr.contains(message), "{stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the run succeeded with no denial logged.
fn clean(out: &Output) {
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(!stderr.contains("denied"), "{stderr}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

const HEADER: &str = "# Learned by `capnet run --learn` from a run of";

#[test]
fn a_learned_client_policy_names_the_host_it_looked_up_and_allows_nothing_else() {
    let dir = scratch("client");
    let file = dir.join("client.toml");
    let port = tcp_echo();
    let target = format!("localhost:{port}");

    let out = run(&[&"--learn", &file, &guest("tcp-client"), &target, &"hello"]);
    clean(&out);
    assert_eq!(text(&out.stdout), "hello");
    assert!(
        text(&out.stderr).contains("capnet: learned 1 new rule(s) into"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        read(&file),
        format!(
            "{HEADER} tcp-client.wasm: what it used, and\n\
             # nothing more. Each rule says how often it was used. Run with --policy.\n\n\
             [allow]\n\
             connect = [\n    \"{target}\", # used 2 times: 1 tcp-connect, 1 lookup\n]\n"
        )
    );

    let out = run(&[&"--policy", &file, &guest("tcp-client"), &target, &"again"]);
    clean(&out);
    assert_eq!(text(&out.stdout), "again");

    // Another port of the same host, and the address itself without the lookup.
    let other = tcp_echo();
    for denied in [format!("localhost:{other}"), format!("127.0.0.1:{port}")] {
        assert_refused(
            &[&"--policy", &file, &guest("tcp-client"), &denied, &"x"],
            "access-denied",
        );
    }
}

#[test]
fn a_learned_server_policy_is_one_listen_rule_whatever_the_clients() {
    let (file, child, addr) = learning_hello_server("server", &["3"]);
    for _ in 0..3 {
        assert!(get(addr).ends_with("hello from a capnet guest\n"));
    }
    clean(&child.wait_with_output().unwrap());
    let learned = read(&file);
    assert!(
        learned.ends_with(
            "[allow]\nlisten = [\n    \"127.0.0.1:0\", # used 5 times: 1 tcp-listen, 1 tcp-bind, 3 tcp-accept\n]\n"
        ),
        "{learned}"
    );

    let (child, addr) = serving(&mut run_command(&[
        &"--policy",
        &file,
        &guest("http-hello"),
        &"127.0.0.1:0",
        &"1",
    ]));
    assert!(get(addr).ends_with("hello from a capnet guest\n"));
    clean(&child.wait_with_output().unwrap());

    assert_refused(
        &[&"--policy", &file, &guest("http-hello"), &"[::1]:0", &"1"],
        "denied tcp-bind [::1]:0",
    );
}

/// `capnet run --learn` of the http-hello guest on 127.0.0.1:0, then `args`, into
/// `server.toml` in a fresh directory for the test `test`: the file, the run, and the
/// address it serves on.
fn learning_hello_server(test: &str, args: &[&str]) -> (PathBuf, Child, SocketAddr) {
    let file = scratch(test).join("server.toml");
    let mut cmd = run_command(&[&"--learn", &file, &guest("http-hello"), &"127.0.0.1:0"]);
    let (child, addr) = serving(cmd.args(args));
    (file, child, addr)
}

fn get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn learned_udp_rules_keep_a_services_port_and_not_a_clients_ephemeral_one() {
    let dir = scratch("udp");
    let (client_file, server_file) = (dir.join("client.toml"), dir.join("server.toml"));
    let service = udp_echo();
    let peer = service.to_string();

    let out = run(&[
        &"--learn",
        &client_file,
        &guest("udp-client"),
        &peer,
        &"ping",
    ]);
    clean(&out);
    assert_eq!(text(&out.stdout), "ping");
    assert!(
        read(&client_file).ends_with(&format!(
            "[allow]\nudp-send = [\n    \"{peer}\", # used once: udp-send\n]\n\
             udp-receive = [\n    \"{peer}\", # used once: udp-receive\n]\n"
        )),
        "{}",
        read(&client_file)
    );

    // The server: whoever sends to it is answered, from whatever port.
    let (child, server) = serving(&mut run_command(&[
        &"--learn",
        &server_file,
        &guest("udp-echo"),
        &"127.0.0.1:0",
        &"2",
    ]));
    for message in ["one", "two"] {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(message.as_bytes(), server).unwrap();
        let mut buf = [0u8; 16];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], message.as_bytes());
    }
    clean(&child.wait_with_output().unwrap());
    assert!(
        read(&server_file).ends_with(
            "[allow]\nudp-bind = [\n    \"127.0.0.1:0\", # used once: udp-bind\n]\n\
             udp-receive = [\n    \"127.0.0.1\", # used 2 times: 2 udp-receive\n]\n\
             udp-send = [\n    \"127.0.0.1\", # used 2 times: 2 udp-send\n]\n"
        ),
        "{}",
        read(&server_file)
    );

    let out = run(&[
        &"--policy",
        &client_file,
        &guest("udp-client"),
        &peer,
        &"pong",
    ]);
    clean(&out);
    assert_eq!(text(&out.stdout), "pong");
    let elsewhere = udp_echo().to_string();
    assert_refused(
        &[
            &"--policy",
            &client_file,
            &guest("udp-client"),
            &elsewhere,
            &"x",
        ],
        &format!("denied udp-send {elsewhere}"),
    );
}

#[test]
fn a_learned_lookup_allows_that_name_and_no_other() {
    let dir = scratch("lookup");
    let file = dir.join("lookup.toml");
    let out = run(&[&"--learn", &file, &guest("p3-lookup"), &"localhost"]);
    clean(&out);
    assert!(
        read(&file).ends_with("[allow]\nlookup = [\n    \"localhost\", # used once: lookup\n]\n"),
        "{}",
        read(&file)
    );
    clean(&run(&[
        &"--policy",
        &file,
        &guest("p3-lookup"),
        &"localhost",
    ]));
    assert_refused(
        &[&"--policy", &file, &guest("p3-lookup"), &"ip6-localhost"],
        "denied lookup ip6-localhost",
    );
}

#[test]
fn learning_into_an_existing_file_adds_to_it_and_keeps_what_a_person_wrote() {
    let dir = scratch("existing");
    let file = dir.join("policy.toml");
    let port = tcp_echo();
    let written = "# The client's policy, by hand.\n\
                   [allow]\n\
                   # the discard service\n\
                   connect = [\n    \"127.0.0.1:9\", # kept for later\n]\n\n\
                   [deny]\n\
                   connect = [\"metadata\"] # never\n";
    std::fs::write(&file, written).unwrap();

    let target = format!("localhost:{port}");
    clean(&run(&[
        &"--learn",
        &file,
        &guest("tcp-client"),
        &target,
        &"hi",
    ]));
    let learned = read(&file);
    assert_eq!(
        learned,
        written.replace(
            "# kept for later\n]",
            &format!(
                "# kept for later\n    \"{target}\", # used 2 times: 1 tcp-connect, 1 lookup\n]"
            )
        )
    );

    // What the file allows is not learned again.
    let out = run(&[&"--learn", &file, &guest("tcp-client"), &target, &"hi"]);
    clean(&out);
    assert!(
        text(&out.stderr).contains("capnet: learned 0 new rule(s)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(&file), learned);
}

#[test]
fn a_deny_rule_still_wins_while_learning() {
    let dir = scratch("deny");
    let file = dir.join("deny.toml");
    let port = tcp_echo();
    assert_refused(
        &[
            &"--learn",
            &file,
            &"--deny-connect",
            &"loopback",
            &guest("tcp-client"),
            &format!("127.0.0.1:{port}"),
            &"x",
        ],
        &format!("error: connect 127.0.0.1:{port}: access-denied"),
    );
    assert!(!read(&file).contains("connect"), "{}", read(&file));
}

#[test]
fn sigterm_writes_what_was_learned_so_far() {
    let (file, child, addr) = learning_hello_server("sigterm", &[]);
    assert!(get(addr).ends_with("hello from a capnet guest\n"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert!(
        read(&file).contains(
            "listen = [\n    \"127.0.0.1:0\", # used 3 times: 1 tcp-listen, 1 tcp-bind, 1 tcp-accept\n]"
        ),
        "{}",
        read(&file)
    );
}

#[test]
fn a_library_s_uses_are_learned_into_its_own_table_and_the_app_s() {
    let app_component = lang_guest("rust", "nano-app");
    let dir = scratch("libraries");
    let file = dir.join("nano.toml");
    let weather = tcp_echo();
    let other = tcp_echo();
    let metrics = udp_echo();
    let steps = [
        format!("weather=127.0.0.1:{weather}"),
        format!("metrics={metrics}"),
        format!("app=127.0.0.1:{other}"),
    ];
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--learn", &file, &app_component];
    args.extend(steps.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
    let out = run(&args);
    clean(&out);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("error"), "{stdout}");
    let learned = read(&file);
    for part in [
        format!(
            "[allow]\nconnect = [\n    \"127.0.0.1:{weather}\", # used once: tcp-connect\n    \
             \"127.0.0.1:{other}\", # used once: tcp-connect\n]\n\
             udp-send = [\n    \"{metrics}\", # used once: udp-send\n]\n"
        ),
        format!(
            "[library.weather.allow]\nconnect = [\n    \"127.0.0.1:{weather}\", # used once: tcp-connect\n]\n"
        ),
        format!(
            "[library.metrics.allow]\nudp-send = [\n    \"{metrics}\", # used once: udp-send\n]\n"
        ),
    ] {
        assert!(learned.contains(&part), "{part}\nnot in:\n{learned}");
    }

    let out = run(&{
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--policy", &file, &app_component];
        args.extend(steps.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
        args
    });
    clean(&out);
    // The weather library at the app's server: the app may, the library was never seen to.
    let stray = format!("weather=127.0.0.1:{other}");
    let out = run(&[&"--policy", &file, &app_component, &stray]);
    assert!(
        text(&out.stdout).contains(&format!("{stray}: error PermissionDenied")),
        "{}",
        text(&out.stdout)
    );
}
