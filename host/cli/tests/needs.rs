//! A library's declared needs through the `capnet` command: `needs set`/`show` write and read
//! them, `inspect` sets them beside the policy's grant, and `run` refuses a malformed one.

mod support;

use std::path::{Path, PathBuf};
use support::capnet;

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

fn ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
    ok(capnet()
        .args(["needs", "set"])
        .arg(&lib)
        .args([
            "connect 127.0.0.1:8001  # the forecast API",
            "lookup api.weather.example",
            "-o",
        ])
        .arg(&out));
    let shown = ok(capnet().args(["needs", "show"]).arg(&out));
    assert_eq!(
        shown,
        "capnet:needs 1\nconnect 127.0.0.1:8001  # the forecast API\nlookup api.weather.example\n"
    );
    // The original is untouched; setting again replaces the declaration in place.
    let bare = refused_or_none(&lib);
    assert!(bare.contains("declares no needs"), "{bare}");
    ok(capnet()
        .args(["needs", "set"])
        .arg(&out)
        .arg("udp 127.0.0.1:53"));
    let shown = ok(capnet().args(["needs", "show"]).arg(&out));
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
        capnet()
            .args(["needs", "set"])
            .arg(&lib)
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
    ok(capnet()
        .args(["needs", "set"])
        .arg(library(&dir))
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
