//! `capnet compose`, as a user runs it: the nano-process example composed by the command (from
//! flags and from a file), then run by `capnet run` with a policy that gives the weather library
//! its own table. Real servers count what reaches them: the library reaches its own server and
//! nothing arrives from it at the app's, which the app reaches. Also: a library that imports
//! capnet:sockets is refused by name, a library importing instance-network at two versions
//! gets both into its label, and libraries and apps of other languages (Python, JavaScript)
//! compose the same way.

mod support;

use support::{capnet, server};

use capnet_cli::compose::imports;
use capnet_tests::{guest, lang_guest};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;

/// A fresh directory of the test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-compose-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `capnet compose ARGS...`.
fn compose(args: &[&str]) -> Output {
    capnet().arg("compose").args(args).output().unwrap()
}

/// An app composed with its libraries in a directory of the test's own.
struct Composed {
    dir: PathBuf,
    /// The composed component.
    wasm: PathBuf,
    /// What `capnet compose` said.
    stderr: String,
}

/// `capnet compose APP --library NAME=PATH... -o OUT` into a fresh directory for the test
/// `name`, which must succeed.
fn composed(name: &str, app: &Path, libraries: &[(&str, PathBuf)]) -> Composed {
    let dir = scratch(name);
    let wasm = dir.join(format!("{name}.wasm"));
    let mut args = vec![app.to_str().unwrap().to_owned()];
    for (name, path) in libraries {
        args.push("--library".into());
        args.push(format!("{name}={}", path.display()));
    }
    args.extend(["-o".into(), wasm.to_str().unwrap().to_owned()]);
    let output = compose(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "capnet compose failed:\n{stderr}");
    Composed { dir, wasm, stderr }
}

/// The app may reach any loopback server; the weather library only `weather`.
fn policy(dir: &Path, weather: SocketAddr) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "[allow]\nconnect = [\"loopback\"]\n\n[library.weather.allow]\nconnect = [\"{weather}\"]\n"
        ),
    )
    .unwrap();
    path
}

/// `capnet run --policy POLICY COMPONENT STEPS...`, which must exit 0; its stdout.
fn run(policy: &Path, component: &Path, steps: &[String]) -> String {
    let out = capnet()
        .arg("run")
        .arg("--policy")
        .arg(policy)
        .arg(component)
        .args(steps)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The guest's line for `step`, without the step.
fn line<'a>(stdout: &'a str, step: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{step}: ")))
        .unwrap_or_else(|| panic!("no line for {step} in:\n{stdout}"))
}

/// The composition's imports that carry an `implements` annotation, sorted.
fn labels(component: &Path) -> Vec<(String, String)> {
    let mut labels: Vec<_> = imports(&std::fs::read(component).unwrap())
        .unwrap()
        .into_iter()
        .filter_map(|(name, implements)| Some((name, implements?)))
        .collect();
    labels.sort();
    labels
}

/// The weather library's steps at its own server, at the app's, and the app's at its own,
/// run on `component`; asserts the library's line for its own server is `own`, its attempt
/// at the app's server never arrived, and the app's did. Returns the library's line for the
/// app's server.
fn weather_keeps_to_its_grant(dir: &Path, component: &Path, own: &str) -> String {
    let (weather, weather_hits) = server("sunny");
    let (app, app_hits) = server("the app's own");
    let policy = policy(dir, weather);
    let steps = [
        format!("weather={weather}"),
        format!("weather={app}"),
        format!("app={app}"),
    ];
    let stdout = run(&policy, component, &steps);
    assert_eq!(
        app_hits.load(Ordering::SeqCst),
        1,
        "only the app reached its server:\n{stdout}"
    );
    assert!(weather_hits.load(Ordering::SeqCst) >= 1, "{stdout}");
    assert_eq!(line(&stdout, &steps[0]), own);
    assert_eq!(line(&stdout, &steps[2]), "ok the app's own");
    line(&stdout, &steps[1]).to_owned()
}

#[test]
fn a_composed_library_reaches_its_own_server_and_not_the_apps() {
    let nano = composed(
        "nano",
        &guest("nano-app"),
        &[("weather", guest("weather")), ("metrics", guest("metrics"))],
    );
    assert!(
        nano.stderr.contains("capnet compose: library weather: weather-instance-network implements wasi:sockets/instance-network@0.2."),
        "{}",
        nano.stderr
    );
    // The label contract: each library's three authority imports, labelled and annotated.
    let labels = labels(&nano.wasm);
    let names: Vec<_> = labels.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "metrics-instance-network",
            "metrics-tcp-create-socket",
            "metrics-udp-create-socket",
            "weather-instance-network",
            "weather-tcp-create-socket",
            "weather-udp-create-socket",
        ]
    );
    for (name, implements) in &labels {
        let interface = name.split_once('-').unwrap().1;
        assert!(
            implements.starts_with(&format!("wasi:sockets/{interface}@0.2.")),
            "{name} implements {implements}"
        );
    }

    let apps = weather_keeps_to_its_grant(&nano.dir, &nano.wasm, "ok sunny");
    assert!(apps.starts_with("error PermissionDenied"), "{apps}");
}

#[test]
fn a_compose_file_names_its_components_relative_to_itself() {
    let dir = scratch("file");
    std::fs::create_dir_all(dir.join("parts")).unwrap();
    std::fs::copy(guest("p3-nano-app"), dir.join("parts/app.wasm")).unwrap();
    std::fs::copy(guest("p3_weather"), dir.join("parts/weather.wasm")).unwrap();
    let file = dir.join("compose.toml");
    std::fs::write(
        &file,
        "app = \"parts/app.wasm\"\noutput = \"out/app.wasm\"\n\n[library]\nweather = \"parts/weather.wasm\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let output = compose(&["--config", file.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = dir.join("out/app.wasm");
    assert_eq!(
        labels(&out),
        [
            (
                "weather-ip-name-lookup".to_owned(),
                "wasi:sockets/ip-name-lookup@0.3.0".to_owned()
            ),
            (
                "weather-types".to_owned(),
                "wasi:sockets/types@0.3.0".to_owned()
            ),
        ]
    );

    let apps = weather_keeps_to_its_grant(&dir, &out, "ok sunny");
    assert!(apps.ends_with("access-denied"), "{apps}");
}

#[test]
fn a_library_importing_capnet_sockets_is_refused_by_name() {
    let dir = scratch("capnet-sockets");
    let out = dir.join("never.wasm");
    // The attenuate guest imports capnet:sockets/attenuate.
    let output = compose(&[
        guest("nano-app").to_str().unwrap(),
        "--library",
        &format!("sneaky={}", guest("attenuate").display()),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: library sneaky imports capnet:sockets/attenuate@")
            && first.ends_with(
                ": capnet:sockets (pre-opened listeners, attenuation) is the app's; a library reaches the network only through its own wasi:sockets imports"
            ),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_library_importing_instance_network_at_two_versions_gets_both_in_its_label() {
    let two = composed(
        "two-networks",
        &guest("nano-app"),
        &[
            ("weather", guest("two_networks")),
            ("metrics", guest("metrics")),
        ],
    );
    let stderr = &two.stderr;
    assert!(
        stderr.contains(
            "(its imports wasi:sockets/instance-network@0.2.0, wasi:sockets/instance-network@0.2.12)"
        ) && stderr.contains(
            "(its imports wasi:sockets/tcp-create-socket@0.2.0, wasi:sockets/tcp-create-socket@0.2.12)"
        ),
        "{stderr}"
    );
    // Through std's 0.2.0 imports and the wasip2 crate's 0.2.12 ones alike, the library holds
    // its own grant: its own server, never the app's.
    let apps =
        weather_keeps_to_its_grant(&two.dir, &two.wasm, "ok std: ok sunny; wasip2: ok sunny");
    assert_eq!(
        apps,
        "ok std: error PermissionDenied; wasip2: error access-denied"
    );
}

#[test]
fn a_python_library_composed_into_the_rust_app_keeps_to_its_grant() {
    let mixed = composed(
        "python-library",
        &guest("nano-app"),
        &[
            ("weather", lang_guest("python", "nano-weather")),
            ("metrics", guest("metrics")),
        ],
    );
    let apps = weather_keeps_to_its_grant(&mixed.dir, &mixed.wasm, "ok sunny");
    assert_eq!(apps, "error access-denied");
}

#[test]
fn the_rust_library_composed_into_a_python_app_keeps_to_its_grant() {
    let mixed = composed(
        "python-app",
        &lang_guest("python", "nano-app"),
        &[("weather", guest("weather"))],
    );
    let apps = weather_keeps_to_its_grant(&mixed.dir, &mixed.wasm, "ok sunny");
    assert!(apps.starts_with("error PermissionDenied"), "{apps}");
}

#[test]
fn a_javascript_library_composed_into_the_rust_app_keeps_to_its_grant() {
    let mixed = composed(
        "js-library",
        &guest("nano-app"),
        &[
            ("weather", lang_guest("js", "nano-weather")),
            ("metrics", guest("metrics")),
        ],
    );
    let apps = weather_keeps_to_its_grant(&mixed.dir, &mixed.wasm, "ok sunny");
    assert_eq!(apps, "error access-denied");
}

#[test]
fn the_rust_library_composed_into_a_javascript_app_keeps_to_its_grant() {
    let mixed = composed(
        "js-app",
        &lang_guest("js", "nano-app"),
        &[("weather", guest("weather"))],
    );
    let apps = weather_keeps_to_its_grant(&mixed.dir, &mixed.wasm, "ok sunny");
    assert!(apps.starts_with("error PermissionDenied"), "{apps}");
}

#[test]
fn a_0_2_library_that_also_imports_0_3_sockets_holds_its_own_grant_through_both() {
    // The attack: a library of a 0.2 app imports wasi:sockets/types@0.3.0 besides std's 0.2
    // sockets, hoping its 0.3 import passes through to the app's grant. Composed, it is the
    // library's (weather-types); loaded, capnet finds it reaches the library alone.
    let Composed { dir, wasm, stderr } = composed(
        "p3-in-p2",
        &guest("nano-app"),
        &[
            ("weather", guest("hostile_p3_in_p2")),
            ("metrics", guest("metrics")),
        ],
    );
    assert!(
        stderr.contains("library weather: weather-types implements wasi:sockets/types@0.3.0"),
        "{stderr}"
    );
    // The app may listen on loopback, so a bind decided by its grant would reach the kernel
    // (and find the app's server's port taken); the library's grant refuses it first.
    let (weather, weather_hits) = server("sunny");
    let (app, app_hits) = server("the app's own");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[allow]\nconnect = [\"loopback\"]\nlisten = [\"loopback\"]\n\n\
             [library.weather.allow]\nconnect = [\"{weather}\"]\n"
        ),
    )
    .unwrap();
    let steps = [
        format!("weather={app}"),
        format!("app={app}"),
        format!("weather={weather}"),
    ];
    let stdout = run(&policy, &wasm, &steps);
    assert_eq!(
        line(&stdout, &steps[0]),
        "ok std: error PermissionDenied: Permission denied (os error 2); p3: error bind: access-denied"
    );
    assert_eq!(line(&stdout, &steps[1]), "ok the app's own");
    assert_eq!(
        line(&stdout, &steps[2]),
        "ok std: ok sunny; p3: error bind: access-denied"
    );
    assert_eq!(app_hits.load(Ordering::SeqCst), 1, "only the app: {stdout}");
    assert_eq!(weather_hits.load(Ordering::SeqCst), 1, "{stdout}");
}

#[test]
fn a_library_that_hoards_sockets_stops_at_its_own_limit_and_the_app_keeps_its_rights() {
    // The attack: a library binds UDP sockets until refused, to leave its app none. Its
    // std sockets come through its own weather-udp-create-socket, so they count against
    // [library.weather.limits] (and the app's), and the app still opens what it needs.
    let Composed { dir, wasm, .. } = composed(
        "hoarder",
        &guest("nano-app"),
        &[
            ("weather", guest("hostile_hoarder")),
            ("metrics", guest("metrics")),
        ],
    );
    let (app, app_hits) = server("the app's own");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[allow]\nconnect = [\"loopback\"]\nudp-send = [\"loopback\"]\n\n\
         [limits]\nsockets = 64\n\n\
         [library.weather.allow]\nudp-send = [\"127.0.0.1:9\"]\n\n\
         [library.weather.limits]\nsockets = 16\n",
    )
    .unwrap();
    let steps = [format!("weather={app}"), format!("app={app}")];
    let log = dir.join("decisions.jsonl");
    let output = capnet()
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg(format!("--log-decisions=json:{}", log.display()))
        .arg(&wasm)
        .args(&steps)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        line(&stdout, &steps[0]).starts_with("ok held 16: "),
        "{stdout}"
    );
    assert_eq!(line(&stdout, &steps[1]), "ok the app's own");
    assert_eq!(app_hits.load(Ordering::SeqCst), 1, "{stdout}");
    // The refusal is the library's, naming its limit.
    let decisions = std::fs::read_to_string(&log).unwrap();
    let refusal = decisions
        .lines()
        .find(|l| l.contains("\"verdict\":\"deny\""))
        .unwrap_or_else(|| panic!("no refusal in:\n{decisions}"));
    assert!(
        refusal.contains("\"library\":\"weather\",\"use\":\"create-udp-socket\"")
            && refusal.contains("\"rule\":\"limit of library weather sockets = 16\""),
        "{refusal}"
    );
}
