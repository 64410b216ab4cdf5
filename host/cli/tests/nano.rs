//! Nano-processes, as a user runs them: the example app composed with two libraries (built by
//! scripts/build-guests from guest/rust/nano), under `capnet run` with a policy file that gives
//! each library its own table. Real servers, real sockets, the decision log read back.

mod support;

use support::{capnet, server};

use capnet_tests::lang_guest;
use std::net::{SocketAddr, UdpSocket};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A UDP socket on a port of its own, and what arrives at it within a short wait.
fn collector() -> (SocketAddr, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    (socket.local_addr().unwrap(), socket)
}

fn received(socket: &UdpSocket) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn policy_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-nano-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(policy: &std::path::Path, steps: &[String]) -> (Output, String) {
    run_guest("nano-app", policy, steps)
}

/// Runs the composed example `guest` (`nano-app`, or `p3-nano-app` on wasi:sockets 0.3) under
/// `policy`; its output and the decision log.
fn run_guest(guest: &str, policy: &std::path::Path, steps: &[String]) -> (Output, String) {
    let log = policy.with_file_name("decisions.jsonl");
    let _ = std::fs::remove_file(&log);
    let out = capnet()
        .arg("run")
        .arg("--policy")
        .arg(policy)
        .arg(format!("--log-decisions=json:{}", log.display()))
        .arg(lang_guest("rust", guest))
        .args(steps)
        .output()
        .unwrap();
    let decisions = std::fs::read_to_string(&log).unwrap_or_default();
    (out, decisions)
}

/// [`run_guest`], which must exit 0: its stdout and the decision log.
fn run_guest_ok(guest: &str, policy: &std::path::Path, steps: &[String]) -> (String, String) {
    let (out, decisions) = run_guest(guest, policy, steps);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, decisions)
}

/// The guest's line for `step`.
fn line<'a>(stdout: &'a str, step: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{step}: ")))
        .unwrap_or_else(|| panic!("no line for {step} in:\n{stdout}"))
}

/// The decision log's line that contains `needle`.
fn decision(decisions: &str, needle: &str) -> String {
    decisions
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no decision with {needle} in:\n{decisions}"))
        .to_owned()
}

/// Asserts the decision log refused the weather library's connect to `addr`, naming it.
fn assert_weather_refused_connect(decisions: &str, addr: SocketAddr) {
    let refused = decision(
        decisions,
        &format!("\"address\":\"{addr}\",\"verdict\":\"deny\""),
    );
    assert!(
        refused.contains(r#""library":"weather","use":"tcp-connect""#),
        "{refused}"
    );
}

const DENIED: &str = "error PermissionDenied";

#[test]
fn each_library_reaches_only_its_own_server_and_the_app_keeps_its_rights() {
    let (weather, weather_hits) = server("sunny");
    let (app, app_hits) = server("app");
    let (metrics, metrics_socket) = collector();
    let (app_udp, app_udp_socket) = collector();
    let policy = policy_file(
        "libraries",
        &format!(
            "[allow]\nconnect = [\"loopback\"]\nudp-send = [\"loopback\"]\n\n\
             [library.weather.allow]\nconnect = [\"{weather}\"]\n\n\
             [library.metrics.allow]\nudp-send = [\"{metrics}\"]\n"
        ),
    );
    let steps = [
        format!("weather={weather}"),
        format!("metrics={metrics}"),
        format!("app={app}"),
        format!("app={weather}"),
        // Each library at the app's server, at the other library's address, and at an
        // address only the app may use.
        format!("weather={app}"),
        format!("weather={metrics}"),
        format!("metrics={weather}"),
        format!("metrics={app_udp}"),
    ];
    let (stdout, decisions) = run_guest_ok("nano-app", &policy, &steps);

    assert_eq!(line(&stdout, &steps[0]), format!("{}: ok sunny", steps[0]));
    assert_eq!(line(&stdout, &steps[1]), format!("{}: ok sent", steps[1]));
    assert_eq!(line(&stdout, &steps[2]), format!("{}: ok app", steps[2]));
    assert_eq!(line(&stdout, &steps[3]), format!("{}: ok sunny", steps[3]));
    for step in &steps[4..] {
        assert!(
            line(&stdout, step).starts_with(&format!("{step}: {DENIED}")),
            "{step} is refused:\n{stdout}"
        );
    }
    assert_eq!(
        received(&metrics_socket),
        ["requests 1"],
        "one datagram, the allowed one"
    );
    assert!(
        received(&app_udp_socket).is_empty(),
        "nothing reaches the app's address"
    );
    assert_eq!(
        app_hits.load(Ordering::SeqCst),
        1,
        "only the app reached its server"
    );
    assert_eq!(
        weather_hits.load(Ordering::SeqCst),
        2,
        "the weather library and the app"
    );

    // Every decision names the library it was made for; the app's name none.
    assert_weather_refused_connect(&decisions, app);
    let refused = decision(&decisions, &format!("\"address\":\"{app_udp}\""));
    assert!(
        refused.contains(r#""library":"metrics","use":"udp-send""#)
            && refused.contains(r#""verdict":"deny""#),
        "{refused}"
    );
    let allowed = decision(
        &decisions,
        &format!("\"address\":\"{app}\",\"verdict\":\"allow\""),
    );
    assert!(allowed.contains(r#""library":null"#), "{allowed}");
}

#[test]
fn a_library_the_policy_does_not_name_gets_no_network_and_a_warning_says_so() {
    let (metrics, metrics_socket) = collector();
    let policy = policy_file("unnamed", "[allow]\nudp-send = [\"loopback\"]\n");
    let step = format!("metrics={metrics}");
    let (out, decisions) = run(&policy, std::slice::from_ref(&step));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(
        line(&stdout, &step).starts_with(&format!("{step}: {DENIED}")),
        "{stdout}"
    );
    assert!(received(&metrics_socket).is_empty());
    assert!(
        stderr.contains(
            "library metrics has no [library.metrics] table nor --library-allow metrics=...: it gets no network"
        ),
        "{stderr}"
    );
    assert!(
        decisions.contains(r#""rule":"no rule: the policy has no [library.metrics] table""#),
        "{decisions}"
    );
}

#[test]
fn a_policy_naming_a_library_the_app_does_not_have_is_warned_of_with_the_names_it_has() {
    let policy = policy_file(
        "misspelt",
        "[allow]\nconnect = [\"loopback\"]\n\n\
         [library.weather.allow]\nconnect = [\"127.0.0.1:1\"]\n\n\
         [library.metrics.allow]\nudp-send = [\"127.0.0.1:1\"]\n\n\
         [library.evl.allow]\nconnect = [\"127.0.0.1:1\"]\n",
    );
    let (out, _) = run(&policy, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "the policy names library evl, which the component does not have (its libraries: metrics, weather): its rules decide nothing"
        ),
        "{stderr}"
    );
}

#[test]
fn policy_check_lists_the_libraries_and_warns_of_rules_the_app_never_grants() {
    let policy = policy_file(
        "check",
        "[allow]\nconnect = [\"127.0.0.1\"]\n\n[library.weather.allow]\nconnect = [\"127.0.0.1:9001\"]\nudp-send = [\"127.0.0.1:9002\"]\n",
    );
    let out = capnet()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("library weather: 2 allow, 0 deny rules, within the app's"),
        "{stdout}"
    );
    assert_eq!(
        stderr.trim(),
        format!(
            "warning: {}:6:13: library weather: rule \"udp-send 127.0.0.1:9002\" is never granted: the app allows no udp-send that overlaps it, and a library gets only what the app has",
            policy.display()
        )
    );
}

/// wasi:sockets 0.3 has no `network` handle: the library's `types` and `ip-name-lookup` imports,
/// kept apart by the composition, are its capability. Every socket it creates and every name it
/// looks up is decided by its own grant, while the app, running the same code through its own
/// imports, keeps the app's rights.
#[test]
fn a_0_3_library_creates_sockets_and_looks_up_names_only_under_its_own_grant() {
    let (weather, weather_hits) = server("sunny");
    let (app, app_hits) = server("app");
    let policy = policy_file(
        "p3-libraries",
        &format!(
            "[allow]\nconnect = [\"loopback\"]\nlookup = [\"localhost\"]\n\n\
             [library.weather.allow]\nconnect = [\"{weather}\"]\n"
        ),
    );
    let by_name = format!("localhost:{}", weather.port());
    let steps = [
        format!("weather={weather}"),
        format!("app={app}"),
        format!("app={by_name}"),
        // The library at the app's server, and looking up a name only the app may.
        format!("weather={app}"),
        format!("weather={by_name}"),
    ];
    let (stdout, decisions) = run_guest_ok("p3-nano-app", &policy, &steps);

    assert_eq!(line(&stdout, &steps[0]), format!("{}: ok sunny", steps[0]));
    assert_eq!(line(&stdout, &steps[1]), format!("{}: ok app", steps[1]));
    assert_eq!(line(&stdout, &steps[2]), format!("{}: ok sunny", steps[2]));
    assert_eq!(
        line(&stdout, &steps[3]),
        format!("{}: error connect: access-denied", steps[3])
    );
    assert_eq!(
        line(&stdout, &steps[4]),
        format!("{}: error lookup: access-denied", steps[4])
    );
    assert_eq!(
        app_hits.load(Ordering::SeqCst),
        1,
        "only the app reached its server"
    );
    assert_eq!(
        weather_hits.load(Ordering::SeqCst),
        2,
        "the weather library, and the app by name"
    );

    assert_weather_refused_connect(&decisions, app);
    let refused = decision(
        &decisions,
        r#""use":"lookup","address":"localhost","verdict":"deny""#,
    );
    assert!(refused.contains(r#""library":"weather""#), "{refused}");
    let allowed = decision(
        &decisions,
        r#""use":"lookup","address":"localhost","verdict":"allow""#,
    );
    assert!(allowed.contains(r#""library":null"#), "{allowed}");
}

/// A library's limits reach its 0.3 sockets: under the library's own `bytes-per-second`, its
/// fetch of a large reply waits off everything past the first second's burst, while the app's
/// fetch of the same reply, through the app's imports, is not held back.
#[test]
fn a_0_3_librarys_bytes_per_second_slows_its_own_sockets_and_not_the_apps() {
    const REPLY: usize = 300_000;
    const RATE: usize = 100_000;
    let reply: &'static str = Box::leak("w".repeat(REPLY).into_boxed_str());
    let (addr, hits) = server(reply);
    let policy = policy_file(
        "p3-library-rate",
        &format!(
            "[allow]\nconnect = [\"loopback\"]\n\n\
             [library.weather.allow]\nconnect = [\"{addr}\"]\n\n\
             [library.weather.limits]\nbytes-per-second = {RATE}\n"
        ),
    );
    let fetch = |step: String| {
        let started = Instant::now();
        let (out, _) = run_guest("p3-nano-app", &policy, std::slice::from_ref(&step));
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            line(&stdout, &step).len(),
            format!("{step}: ok ").len() + REPLY,
            "{step} gets the whole reply"
        );
        took
    };
    let library = fetch(format!("weather={addr}"));
    let app = fetch(format!("app={addr}"));
    println!(
        "{REPLY} bytes at {RATE} B/s: the library's fetch took {library:?}, the app's {app:?}"
    );
    // Past the one-second burst, the rest of the reply moves at no more than the rate.
    let bound = Duration::from_secs_f64((REPLY - RATE) as f64 / RATE as f64);
    assert!(
        library >= bound,
        "the library took {library:?}, under {bound:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// A composition in which the app exports its `instance-network` import again and the composer
/// plugs it into library "weather" (`host/capnet/tests/compositions/`): `capnet run` refuses to
/// load it, with the pinned message naming the import and both parties, and the library's code
/// never runs.
#[test]
fn an_app_handing_its_instance_network_to_a_library_is_refused_by_capnet_run() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../capnet/tests/compositions");
    let source = dir.join("app-reexports-its-network.wat");
    let work = std::env::temp_dir().join(format!("capnet-compositions-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let wasm = "app-reexports-its-network.wasm";
    std::fs::write(work.join(wasm), wat::parse_file(&source).unwrap()).unwrap();
    let stderr = support::failing(capnet().current_dir(&work).args([
        "run",
        "--allow-connect",
        "loopback",
        wasm,
    ]));
    let mismatch = support::pinned(
        "app-reexports-its-network",
        &source.with_extension("stderr"),
        &stderr,
        std::env::var_os("BLESS").is_some(),
    );
    assert!(mismatch.is_none(), "{}", mismatch.unwrap_or_default());
}
