//! A library's declared needs through the `capnet` command: `needs set`/`show` write and read
//! them (from arguments, a crate's Cargo.toml, a learning run), `inspect` sets them beside the
//! policy's grant, `policy check --component` says before a run what will fail, `run` refuses
//! a malformed one, and a library granted what it declared reaches that and nothing else, over
//! real sockets, for 0.2 and 0.3 libraries and for libraries written in Python and JavaScript.

mod support;

use capnet_tests::{guest, lang_guest};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use support::{capnet, server};

const P2: &str = "wasi:sockets/instance-network@0.2.6";

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-needs-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A library component importing the 0.2 network, as a Rust library built for wasip2 does.
fn library(dir: &Path) -> PathBuf {
    let path = dir.join("weather.wasm");
    let wasm = wat::parse_str(format!(r#"(component (import "{P2}" (instance)))"#)).unwrap();
    std::fs::write(&path, wasm).unwrap();
    path
}

/// The top-level sections of a binary: `(id, whole section)`.
fn sections(wasm: &[u8]) -> Vec<(u8, &[u8])> {
    let mut at = 8;
    let mut out = Vec::new();
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let byte = wasm[at];
            at += 1;
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        at += size;
        out.push((id, &wasm[start..at]));
    }
    out
}

fn leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            return out.push(byte);
        }
        out.push(byte | 0x80);
    }
}

/// An app composed with `lib` as library "weather": the library gets the labelled import,
/// the composition exports the app's. The library's bytes are embedded whole, as
/// `capnet compose` (wac-graph) embeds them.
fn compose(lib: &[u8], out: &Path) {
    let shell = wat::parse_str(format!(
        r#"(component
            (import "weather-instance-network" (implements "{P2}") (instance $l))
            (import "{P2}" (instance $n))
            (component $lib (import "{P2}" (instance)))
            (instance (instantiate $lib (with "{P2}" (instance $l))))
            (export "x" (instance $n))
        )"#
    ))
    .unwrap();
    let mut wasm = shell[..8].to_vec();
    for (id, section) in sections(&shell) {
        if id == 4 {
            wasm.push(4);
            leb(&mut wasm, lib.len());
            wasm.extend_from_slice(lib);
        } else {
            wasm.extend_from_slice(section);
        }
    }
    std::fs::write(out, wasm).unwrap();
}

/// `capnet needs set WASM`, for the caller's needs and options.
fn needs_set(wasm: &Path) -> std::process::Command {
    let mut command = capnet();
    command.args(["needs", "set"]).arg(wasm);
    command
}

/// `capnet needs show WASM`, which must succeed: its stdout.
fn needs_show(wasm: &Path) -> String {
    ok(capnet().args(["needs", "show"]).arg(wasm))
}

/// Writes a crate's `Cargo.toml` of `text` in `dir` and returns its path.
fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let manifest = dir.join("Cargo.toml");
    std::fs::write(&manifest, text).unwrap();
    manifest
}

/// `capnet needs set` on the test's library, its needs read from `manifest`.
fn set_from_cargo(dir: &Path, manifest: &Path) -> std::process::Command {
    let mut command = needs_set(&library(dir));
    command.arg("--from-cargo").arg(manifest);
    command
}

fn ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The weather library's party in `capnet inspect --json`'s report `json`.
fn weather_party(json: &str) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_str(json).unwrap();
    report["parties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "weather")
        .unwrap()
        .clone()
}

fn refused(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected a refusal");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn needs_set_writes_a_declaration_show_reads_and_set_replaces() {
    let dir = scratch("set");
    let lib = library(&dir);
    let out = dir.join("declared.wasm");
    ok(needs_set(&lib)
        .args([
            "connect 127.0.0.1:8001  # the forecast API",
            "lookup api.weather.example",
            "-o",
        ])
        .arg(&out));
    let shown = needs_show(&out);
    assert_eq!(
        shown,
        "capnet:needs 1\nconnect 127.0.0.1:8001  # the forecast API\nlookup api.weather.example\n"
    );
    // The original is untouched; setting again replaces the declaration in place.
    let bare = refused_or_none(&lib);
    assert!(bare.contains("declares no needs"), "{bare}");
    ok(needs_set(&out).arg("udp 127.0.0.1:53"));
    let shown = needs_show(&out);
    assert_eq!(shown, "capnet:needs 1\nudp 127.0.0.1:53\n");
    // Everything but the declaration is the library's own bytes.
    let (before, after) = (std::fs::read(&lib).unwrap(), std::fs::read(&out).unwrap());
    assert!(after.starts_with(&before));
}

fn refused_or_none(lib: &Path) -> String {
    let out = capnet().args(["needs", "show"]).arg(lib).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_malformed_need_is_refused_at_write_naming_the_rule() {
    let dir = scratch("malformed");
    let lib = library(&dir);
    let out = dir.join("never.wasm");
    let stderr = refused(
        needs_set(&lib)
            .args([
                "connect 127.0.0.1:8001",
                "connect 10.0.0.0/8:9000-80  # the API",
                "-o",
            ])
            .arg(&out),
    );
    assert!(
        stderr.contains(
            ":3:1: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end"
        ),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// A declaration written by hand with a bad rule, as a tampered or foreign tool would.
fn with_raw_declaration(lib: &Path, text: &str) -> Vec<u8> {
    let mut wasm = std::fs::read(lib).unwrap();
    let mut body = Vec::new();
    leb(&mut body, "capnet:needs".len());
    body.extend_from_slice(b"capnet:needs");
    body.extend_from_slice(text.as_bytes());
    wasm.push(0);
    leb(&mut wasm, body.len());
    wasm.extend_from_slice(&body);
    wasm
}

#[test]
fn a_malformed_declaration_in_a_composed_library_is_refused_at_load() {
    let dir = scratch("load");
    let lib = with_raw_declaration(&library(&dir), "capnet:needs 1\nconnect 127.0.0.1:99999\n");
    let app = dir.join("app.wasm");
    compose(&lib, &app);
    let stderr = refused(capnet().arg("run").arg(&app));
    assert!(
        stderr.contains("weather#capnet:needs:2:1: rule \"connect 127.0.0.1:99999\""),
        "{stderr}"
    );
    let stderr = refused(capnet().arg("inspect").arg(&app));
    assert!(
        stderr.contains("rule \"connect 127.0.0.1:99999\""),
        "{stderr}"
    );
}

#[test]
fn inspect_shows_each_librarys_needs_beside_its_grant_and_where_they_disagree() {
    let dir = scratch("inspect");
    let lib = dir.join("declared.wasm");
    ok(needs_set(&library(&dir))
        .args([
            "connect 127.0.0.1:8001  # the forecast API",
            "connect 127.0.0.1:8002  # the radar",
            "-o",
        ])
        .arg(&lib));
    let app = dir.join("app.wasm");
    compose(&std::fs::read(&lib).unwrap(), &app);
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[allow]\nconnect = [\"127.0.0.1:8000-8005\"]\n\n[library.weather.allow]\nconnect = [\"127.0.0.1:8001\", \"127.0.0.1:8003\"]\n",
    )
    .unwrap();

    let json = ok(capnet()
        .arg("inspect")
        .arg(&app)
        .arg("--policy")
        .arg(&policy)
        .arg("--json"));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let parties = report["parties"].as_array().unwrap();
    assert_eq!(parties.len(), 2);
    assert_eq!(parties[0]["kind"], "app");
    assert_eq!(parties[0]["imports"][0]["interface"], P2);
    let weather = &parties[1];
    assert_eq!(weather["name"], "weather");
    assert_eq!(weather["found_by"], "label");
    assert_eq!(weather["imports"][0]["name"], "weather-instance-network");
    assert_eq!(weather["imports"][0]["interface"], P2);
    assert_eq!(weather["declared"][1]["reason"], "the radar");
    assert_eq!(
        weather["granted"],
        serde_json::json!([
            {"rule": "connect 127.0.0.1:8001", "at": format!("{}:5:12", policy.display())},
            {"rule": "connect 127.0.0.1:8003", "at": format!("{}:5:30", policy.display())},
        ])
    );
    assert_eq!(
        weather["wider_than_declared"][0]["rule"],
        "connect 127.0.0.1:8003"
    );
    assert_eq!(weather["wider_than_declared"].as_array().unwrap().len(), 1);
    assert_eq!(weather["will_fail"][0]["rule"], "connect 127.0.0.1:8002");
    assert_eq!(
        weather["will_fail"][0]["why"],
        "[library.weather] does not allow it"
    );
    assert_eq!(weather["will_fail"].as_array().unwrap().len(), 1);

    let text = ok(capnet()
        .arg("inspect")
        .arg(&app)
        .arg("--policy")
        .arg(&policy));
    assert!(
        text.contains("└─ library weather (found by label)"),
        "{text}"
    );
    assert!(
        text.contains("declares  connect 127.0.0.1:8002  # the radar"),
        "{text}"
    );
    assert!(
        text.contains("! wider than declared: connect 127.0.0.1:8003"),
        "{text}"
    );
    assert!(
        text.contains("! will fail: connect 127.0.0.1:8002: [library.weather] does not allow it"),
        "{text}"
    );
}

/// The example nano app (scripts/compose-nano) with `rules` declared by its weather library:
/// the declaration written into the library's nested component, the rest byte for byte.
fn nano_app_declaring(dir: &Path, rules: &[String]) -> PathBuf {
    nano_app_with(dir, Some(rules))
}

/// The example nano app whose weather library declares, besides 127.0.0.1:8001, the mirror
/// 10.9.9.9:443, which [`GRANT_DECLARED`]'s app rules do not allow.
fn nano_app_declaring_the_mirror(dir: &Path) -> PathBuf {
    nano_app_declaring(
        dir,
        &[
            "connect 127.0.0.1:8001".to_owned(),
            "connect 10.9.9.9:443  # the mirror".to_owned(),
        ],
    )
}

/// The example nano app with its weather library declaring `rules`, or, for `None`, declaring
/// nothing (the declaration scripts/compose-nano writes from its Cargo.toml taken out).
fn nano_app_with(dir: &Path, rules: Option<&[String]>) -> PathBuf {
    let composed = std::fs::read(capnet_tests::lang_guest("rust", "nano-app"))
        .expect("build/guests/rust-nano-app.wasm, from scripts/compose-nano");
    let composition = capnet::Composition::read(&composed).unwrap();
    let (_, range) = composition
        .components()
        .iter()
        .find(|(owner, _)| *owner == capnet::Owner::Library("weather".to_owned()))
        .unwrap()
        .clone();
    let library = match rules {
        Some(rules) => {
            let declared = capnet::needs::Needs::from_rules("weather", rules).unwrap();
            capnet::needs::write(&composed[range.clone()], &declared).unwrap()
        }
        None => without_declaration(&composed[range.clone()]),
    };
    // The top-level component section whose body is the library's bytes, rewritten.
    let mut wasm = composed[..8].to_vec();
    for (id, section) in sections(&composed) {
        let start = section.as_ptr() as usize - composed.as_ptr() as usize;
        if id == 4 && start < range.start && range.end == start + section.len() {
            wasm.push(4);
            leb(&mut wasm, library.len());
            wasm.extend_from_slice(&library);
        } else {
            wasm.extend_from_slice(section);
        }
    }
    let path = dir.join("nano-app.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

/// `wasm` without its top-level `capnet:needs` section.
fn without_declaration(wasm: &[u8]) -> Vec<u8> {
    let mut out = wasm[..8].to_vec();
    for (id, section) in sections(wasm) {
        let mut name_at = 1;
        while section[name_at] & 0x80 != 0 {
            name_at += 1;
        }
        let named = &section[name_at + 2..];
        if id == 0 && section[name_at + 1] == 12 && named.starts_with(b"capnet:needs") {
            continue;
        }
        out.extend_from_slice(section);
    }
    out
}

fn run_nano(app: &Path, policy: &str, steps: &[String]) -> (Output, String) {
    let dir = app.parent().unwrap();
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    let log = dir.join("decisions.jsonl");
    let _ = std::fs::remove_file(&log);
    let out = capnet()
        .arg("run")
        .arg("--policy")
        .arg(&policy_file)
        .arg(format!("--log-decisions=json:{}", log.display()))
        .arg(app)
        .args(steps)
        .output()
        .unwrap();
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

/// [`run_nano`], which must exit 0: its stdout and the decisions it logged.
fn run_nano_ok(app: &Path, policy: &str, steps: &[String]) -> (String, String) {
    let (out, decisions) = run_nano(app, policy, steps);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, decisions)
}

fn step_line<'a>(stdout: &'a str, step: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{step}: ")))
        .unwrap_or_else(|| panic!("no line for {step} in:\n{stdout}"))
}

/// Asserts the weather library's first step reached its server ("ok sunny") and its second
/// was refused, its line saying `refusal`.
fn assert_sunny_then_refused(stdout: &str, steps: &[String; 2], refusal: &str) {
    assert_eq!(
        step_line(stdout, &steps[0]),
        format!("{}: ok sunny", steps[0])
    );
    assert!(step_line(stdout, &steps[1]).contains(refusal), "{stdout}");
}

const GRANT_DECLARED: &str =
    "[allow]\nconnect = [\"loopback\"]\n\n[library.weather]\ngrant = \"declared\"\n";

#[test]
fn a_library_granted_what_it_declared_reaches_only_that() {
    let dir = scratch("declared");
    let (declared, declared_hits) = server("sunny");
    let (other, other_hits) = server("other");
    let app = nano_app_declaring(&dir, &[format!("connect {declared}  # the forecast")]);
    let steps = [
        format!("weather={declared}"),
        format!("weather={other}"),
        format!("app={other}"),
    ];
    let (stdout, decisions) = run_nano_ok(&app, GRANT_DECLARED, &steps);
    assert_eq!(
        step_line(&stdout, &steps[0]),
        format!("{}: ok sunny", steps[0])
    );
    assert!(
        step_line(&stdout, &steps[1]).starts_with(&format!("{}: error PermissionDenied", steps[1])),
        "{stdout}"
    );
    assert_eq!(
        step_line(&stdout, &steps[2]),
        format!("{}: ok other", steps[2])
    );
    assert_eq!(declared_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        1,
        "only the app reached it"
    );
    let refused = decisions
        .lines()
        .find(|l| l.contains(&format!("\"address\":\"{other}\"")) && l.contains("\"deny\""))
        .unwrap_or_else(|| panic!("no denial in:\n{decisions}"));
    assert!(refused.contains("not declared by weather"), "{refused}");
    assert!(refused.contains(r#""library":"weather""#), "{refused}");
    let allowed = decisions
        .lines()
        .find(|l| l.contains(&format!("\"address\":\"{declared}\"")))
        .unwrap();
    assert!(allowed.contains("weather#capnet:needs:2:1"), "{allowed}");
}

#[test]
fn a_library_table_and_its_declaration_intersect() {
    let dir = scratch("intersect");
    let (both, both_hits) = server("both");
    let (table_only, table_hits) = server("table");
    let (declared_only, declared_hits) = server("declared");
    let app = nano_app_declaring(
        &dir,
        &[
            format!("connect {both}"),
            format!("connect {declared_only}"),
        ],
    );
    let policy = format!(
        "[allow]\nconnect = [\"loopback\"]\n\n[library.weather]\ngrant = \"declared\"\n\n\
         [library.weather.allow]\nconnect = [\"{both}\", \"{table_only}\"]\n"
    );
    let steps = [
        format!("weather={both}"),
        format!("weather={table_only}"),
        format!("weather={declared_only}"),
    ];
    let (out, decisions) = run_nano(&app, &policy, &steps);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        step_line(&stdout, &steps[0]),
        format!("{}: ok both", steps[0])
    );
    for step in &steps[1..] {
        assert!(
            step_line(&stdout, step).contains("error PermissionDenied"),
            "{stdout}"
        );
    }
    assert_eq!(both_hits.load(Ordering::SeqCst), 1);
    assert_eq!(table_hits.load(Ordering::SeqCst), 0);
    assert_eq!(declared_hits.load(Ordering::SeqCst), 0);
    assert!(decisions.contains("not declared by weather"), "{decisions}");
}

#[test]
fn a_library_that_declares_nothing_gets_nothing_under_grant_declared() {
    let dir = scratch("undeclared");
    let (weather, hits) = server("sunny");
    let app = nano_app_with(&dir, None);
    let step = format!("weather={weather}");
    let (out, decisions) = run_nano(&app, GRANT_DECLARED, std::slice::from_ref(&step));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        step_line(&stdout, &step).contains("error PermissionDenied"),
        "{stdout}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(decisions.contains("not declared by weather"), "{decisions}");
}

#[test]
fn a_need_the_apps_rules_do_not_cover_is_refused_at_start() {
    let dir = scratch("uncovered");
    let app = nano_app_declaring_the_mirror(&dir);
    let (out, _) = run_nano(&app, GRANT_DECLARED, &["weather=127.0.0.1:8001".to_owned()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing ran");
    assert!(
        stderr.contains("library weather declares \"connect 10.9.9.9:443\" (weather#capnet:needs:3), which the app's rules do not allow"),
        "{stderr}"
    );
}

#[test]
fn grant_declared_gives_every_library_its_declaration_and_inspect_shows_it() {
    let dir = scratch("flag");
    let (declared, declared_hits) = server("sunny");
    let (other, other_hits) = server("other");
    let app = nano_app_declaring(&dir, &[format!("connect {declared}  # the forecast")]);
    let policy = dir.join("app-only.toml");
    std::fs::write(&policy, "[allow]\nconnect = [\"loopback\"]\n").unwrap();
    let steps = [format!("weather={declared}"), format!("weather={other}")];
    let out = capnet()
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg("--grant-declared")
        .arg(&app)
        .args(&steps)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_sunny_then_refused(&stdout, &steps, "error PermissionDenied");
    assert_eq!(declared_hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);

    // A table granting what was declared: inspect shows the declaration as the grant.
    let table = dir.join("declared.toml");
    std::fs::write(&table, GRANT_DECLARED).unwrap();
    let json = ok(capnet()
        .arg("inspect")
        .arg(&app)
        .arg("--policy")
        .arg(&table)
        .arg("--json"));
    let weather = weather_party(&json);
    assert_eq!(weather["granted"][0]["rule"], format!("connect {declared}"));
    assert_eq!(weather["granted"][0]["at"], "weather#capnet:needs:2:1");
    assert_eq!(weather["wider_than_declared"], serde_json::json!([]));
    assert_eq!(weather["will_fail"], serde_json::json!([]));
}

#[test]
fn a_grant_other_than_declared_is_refused_at_its_place() {
    let dir = scratch("grant-value");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[library.weather]\ngrant = \"everything\"\n").unwrap();
    let stderr = refused(capnet().args(["policy", "check"]).arg(&policy));
    assert!(
        stderr.contains(&format!(
            "{}:2:9: grant = \"everything\": the one grant a library table takes is \"declared\"",
            policy.display()
        )),
        "{stderr}"
    );
}

/// `capnet policy check --component APP POLICY`: its exit code, stdout and stderr.
fn policy_check(app: &Path, policy: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let file = app.with_file_name("check.toml");
    std::fs::write(&file, policy).unwrap();
    let out = capnet()
        .args(["policy", "check", "--component"])
        .arg(app)
        .args(extra)
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn policy_check_passes_an_app_whose_declared_needs_are_granted_and_the_run_reaches_them() {
    let dir = scratch("check-ok");
    let (declared, hits) = server("sunny");
    let app = nano_app_declaring(&dir, &[format!("connect {declared}  # the forecast")]);
    let (code, stdout, stderr) = policy_check(&app, GRANT_DECLARED, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with(&format!(
            "{}: every declared need is granted\n",
            app.display()
        )),
        "{stdout}"
    );
    // The library metrics declares nothing, under no grant by declaration: nothing to say.
    assert!(!stderr.contains("error"), "{stderr}");

    let step = format!("weather={declared}");
    let (out, _) = run_nano(&app, GRANT_DECLARED, std::slice::from_ref(&step));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(step_line(&stdout, &step), format!("{step}: ok sunny"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_declaration_grown_beyond_the_librarys_table_fails_policy_check_and_its_use_is_denied() {
    let dir = scratch("check-grown");
    let (forecast, forecast_hits) = server("sunny");
    let (tracker, tracker_hits) = server("tracked");
    // The table pins what version 1 declared; version 2 declares more.
    let policy = format!(
        "[allow]\nconnect = [\"loopback\"]\n\n[library.weather]\ngrant = \"declared\"\n\n\
         [library.weather.allow]\nconnect = [\"{forecast}\"]\n"
    );
    let app = nano_app_declaring(
        &dir,
        &[
            format!("connect {forecast}  # the forecast"),
            format!("connect {tracker}  # usage statistics"),
        ],
    );
    let (code, stdout, stderr) = policy_check(&app, &policy, &[]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: library weather declares \"connect {tracker}\" (usage statistics) at weather#capnet:needs:3: [library.weather] does not allow it; the use will be denied\n"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("\"connect {forecast}\"")),
        "{stderr}"
    );
    assert!(
        stdout.ends_with(&format!(
            "{}: 1 declared need(s) will fail\n",
            app.display()
        )),
        "{stdout}"
    );

    // What the check foretold is what the run does.
    let steps = [format!("weather={forecast}"), format!("weather={tracker}")];
    let (out, decisions) = run_nano(&app, &policy, &steps);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_sunny_then_refused(&stdout, &steps, "error PermissionDenied");
    assert_eq!(forecast_hits.load(Ordering::SeqCst), 1);
    assert_eq!(tracker_hits.load(Ordering::SeqCst), 0);
    assert!(decisions.contains(r#""library":"weather""#), "{decisions}");
}

#[test]
fn a_need_outside_the_apps_rules_fails_policy_check_as_the_refusal_of_the_start() {
    let dir = scratch("check-start");
    let app = nano_app_declaring_the_mirror(&dir);
    let (code, _, stderr) = policy_check(&app, GRANT_DECLARED, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: library weather declares \"connect 10.9.9.9:443\" (the mirror) at weather#capnet:needs:3: the app's rules do not allow it; capnet run refuses to start\n"
        ),
        "{stderr}"
    );
    let (out, _) = run_nano(&app, GRANT_DECLARED, &["weather=127.0.0.1:8001".to_owned()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn policy_check_warns_of_a_grant_wider_than_declared_and_of_a_library_declaring_nothing() {
    let dir = scratch("check-warn");
    let app = nano_app_declaring(&dir, &["connect 127.0.0.1:8001".to_owned()]);
    let policy = "[allow]\nconnect = [\"loopback\"]\nudp-send = [\"loopback\"]\n\n\
                  [library.weather.allow]\nconnect = [\"127.0.0.1:8001\", \"127.0.0.1:8003\"]\n";
    let (code, _, stderr) = policy_check(&app, policy, &["--grant-declared"]);
    assert_eq!(code, Some(0), "warnings only: {stderr}");
    assert!(
        stderr.contains("warning: library weather is granted \"connect 127.0.0.1:8003\" ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: library metrics is granted what it declares and declares nothing: it gets no network"),
        "{stderr}"
    );
}

#[test]
fn needs_set_from_cargo_writes_the_needs_a_crates_manifest_lists() {
    let dir = scratch("cargo");
    let manifest = write_manifest(
        &dir,
        "[package]\nname = \"weather\"\nversion = \"0.1.0\"\n\n[package.metadata.capnet]\nneeds = [\n    \"connect api.weather.example:443  # the forecast API\",\n    \"lookup api.weather.example\",\n]\n",
    );
    let out = dir.join("declared.wasm");
    ok(set_from_cargo(&dir, &manifest).arg("-o").arg(&out));
    assert_eq!(
        needs_show(&out),
        "capnet:needs 1\nconnect api.weather.example:443  # the forecast API\nlookup api.weather.example\n"
    );
}

#[test]
fn a_malformed_need_in_cargo_toml_is_refused_at_its_line_and_nothing_is_written() {
    let dir = scratch("cargo-bad");
    let manifest = write_manifest(
        &dir,
        "[package]\nname = \"weather\"\n\n[package.metadata.capnet]\nneeds = [\n    \"connect 127.0.0.1:8001\",\n    \"connect 10.0.0.0/8:9000-80  # the API\",\n]\n",
    );
    let out = dir.join("never.wasm");
    let stderr = refused(set_from_cargo(&dir, &manifest).arg("-o").arg(&out));
    assert!(
        stderr.contains(&format!(
            "{}:7:6: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end (write 80-9000)",
            manifest.display()
        )),
        "{stderr}"
    );
    assert!(!out.exists());

    write_manifest(&dir, "[package]\nname = \"weather\"\n");
    let stderr = refused(&mut set_from_cargo(&dir, &manifest));
    assert!(
        stderr.contains("no [package.metadata.capnet] table"),
        "{stderr}"
    );
}

#[test]
fn the_composed_example_carries_the_weather_librarys_cargo_declaration() {
    // scripts/compose-nano writes guest/rust/nano/weather/Cargo.toml's needs into the library.
    for app in ["nano-app", "p3-nano-app"] {
        let json = ok(capnet()
            .args(["inspect", "--json"])
            .arg(lang_guest("rust", app)));
        let weather = weather_party(&json);
        assert_eq!(
            weather["declared"],
            serde_json::json!([{
                "rule": "connect 127.0.0.1:8081",
                "reason": "the forecast server (scripts/demo's)"
            }]),
            "{app}"
        );
    }
}

/// `capnet compose` of the Rust example app with `weather` as its weather library and the
/// Rust metrics library.
fn compose_with_weather(weather: &Path, out: &Path) {
    ok(capnet()
        .arg("compose")
        .arg(guest("nano-app"))
        .arg("--library")
        .arg(format!("weather={}", weather.display()))
        .arg("--library")
        .arg(format!("metrics={}", guest("metrics").display()))
        .arg("-o")
        .arg(out));
}

#[test]
fn a_librarys_learned_uses_become_its_declaration_and_grant_it_exactly_that() {
    let dir = scratch("learn");
    let (forecast, forecast_hits) = server("sunny");
    let (other, other_hits) = server("other");
    let plain = dir.join("plain.wasm");
    compose_with_weather(&guest("weather"), &plain);
    // A learning run: the weather library fetches the forecast, the app the other server.
    let learned = dir.join("learned.toml");
    ok(capnet()
        .arg("run")
        .arg("--learn")
        .arg(&learned)
        .arg(&plain)
        .arg(format!("weather={forecast}"))
        .arg(format!("app={other}")));

    let weather = dir.join("weather.wasm");
    ok(needs_set(&guest("weather"))
        .arg("--from-learn")
        .arg(&learned)
        .args(["--library", "weather", "-o"])
        .arg(&weather));
    assert_eq!(
        needs_show(&weather),
        format!("capnet:needs 1\nconnect {forecast}  # learned: used once: tcp-connect\n")
    );
    let stderr = refused(
        needs_set(&guest("weather"))
            .arg("--from-learn")
            .arg(&learned)
            .args(["--library", "radar"]),
    );
    assert!(
        stderr.contains("no [library.radar.allow] table"),
        "{stderr}"
    );

    // Granted what it declared, the library reaches what it used and nothing else.
    let app = dir.join("declared.wasm");
    compose_with_weather(&weather, &app);
    let steps = [format!("weather={forecast}"), format!("weather={other}")];
    let (out, decisions) = run_nano(&app, GRANT_DECLARED, &steps);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_sunny_then_refused(&stdout, &steps, "error PermissionDenied");
    assert_eq!(
        forecast_hits.load(Ordering::SeqCst),
        2,
        "the learning run and this one"
    );
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        1,
        "the app's, while learning"
    );
    assert!(decisions.contains("not declared by weather"), "{decisions}");
}

/// Runs the Rust example app composed with `weather` (a library of another language, or the
/// 0.3 example when `p3`) declaring a port-0 server, under `grant = "declared"`: the declared
/// server is reached, the other is refused `access-denied` and sees nothing from the library.
fn declared_library_keeps_to_its_declaration(test: &str, weather: &Path, p3: bool) {
    let dir = scratch(test);
    let (declared, declared_hits) = server("sunny");
    let (other, other_hits) = server("other");
    let library = dir.join("weather.wasm");
    ok(needs_set(weather)
        .arg(format!("connect {declared}  # the forecast"))
        .arg("-o")
        .arg(&library));
    let app = dir.join("app.wasm");
    if p3 {
        ok(capnet()
            .arg("compose")
            .arg(guest("p3-nano-app"))
            .arg("--library")
            .arg(format!("weather={}", library.display()))
            .arg("-o")
            .arg(&app));
    } else {
        compose_with_weather(&library, &app);
    }
    let steps = [format!("weather={declared}"), format!("weather={other}")];
    let (stdout, decisions) = run_nano_ok(&app, GRANT_DECLARED, &steps);
    assert_sunny_then_refused(&stdout, &steps, "access-denied");
    assert_eq!(declared_hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "nothing arrived");
    assert!(decisions.contains("not declared by weather"), "{decisions}");
}

#[test]
fn a_python_library_granted_its_declaration_reaches_only_that() {
    declared_library_keeps_to_its_declaration(
        "python",
        &lang_guest("python", "nano-weather"),
        false,
    );
}

#[test]
fn a_javascript_library_granted_its_declaration_reaches_only_that() {
    declared_library_keeps_to_its_declaration("js", &lang_guest("js", "nano-weather"), false);
}

#[test]
fn a_0_3_library_granted_its_declaration_reaches_only_that() {
    declared_library_keeps_to_its_declaration("p3", &guest("p3_weather"), true);
}
