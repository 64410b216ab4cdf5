//! The policy a container gets: the image's file, `CAPNET_POLICY`, `CAPNET_RULES`, and the
//! messages of a bad one, which must be those `capnet policy check` prints (pinned beside the
//! CLI's bad policy files, `host/cli/tests/policies/NAME.stderr`).

use capnet::policy::{Policy, Use};
use containerd_shim_capnet_v1::workload::{ImagePolicy, Workload};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capnet-shim-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn allows(policy: &Policy, use_: Use, addr: &str) -> bool {
    policy
        .decide(use_, addr.parse::<SocketAddr>().unwrap())
        .is_allowed()
}

fn load(env: &[&str], default: &Path) -> Result<Policy, String> {
    Workload::from_env(env)
        .unwrap()
        .policy(default)
        .map_err(|e| capnet_cli::logging::error_report(&e.into()))
}

#[test]
fn the_image_policy_file_decides_and_no_file_denies_everything() {
    let dir = scratch("fixed-path");
    let file = dir.join("policy.toml");
    std::fs::write(&file, "[allow]\nlisten = [\"0.0.0.0:8080\"]\n").unwrap();

    let policy = load(&["PATH=/bin"], &file).unwrap();
    assert!(allows(&policy, Use::TcpBind, "0.0.0.0:8080"));
    assert!(!allows(&policy, Use::TcpBind, "0.0.0.0:8081"));

    let nothing = load(&["PATH=/bin"], &dir.join("absent.toml")).unwrap();
    assert!(nothing.rules().is_empty());
    for use_ in [Use::TcpBind, Use::TcpListen, Use::TcpConnect, Use::UdpBind] {
        assert!(!allows(&nothing, use_, "0.0.0.0:8080"), "{use_} is denied");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn capnet_policy_names_the_file_and_capnet_rules_add_to_it() {
    let dir = scratch("named");
    let named = dir.join("app.toml");
    std::fs::write(&named, "[allow]\nconnect = [\"10.0.0.0/8:5432\"]\n").unwrap();
    let env = [
        format!("CAPNET_POLICY={}", named.display()),
        "CAPNET_RULES=[allow]\nlisten = [\"0.0.0.0:8080\"]\n[deny]\nconnect = [\"10.0.0.5\"]"
            .to_owned(),
    ];
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    // The default path is never read when CAPNET_POLICY names a file.
    let policy = load(&env, &dir.join("default-never-read.toml")).unwrap();
    assert!(allows(&policy, Use::TcpConnect, "10.1.2.3:5432"));
    assert!(
        !allows(&policy, Use::TcpConnect, "10.0.0.5:5432"),
        "deny wins"
    );
    assert!(allows(&policy, Use::TcpListen, "0.0.0.0:8080"));

    let missing = load(&["CAPNET_POLICY=/no/such/policy.toml"], &named).unwrap_err();
    assert!(
        missing.starts_with("error: /no/such/policy.toml: "),
        "{missing}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_rule_in_capnet_rules_is_named_by_line_and_column() {
    let err = load(
        &["CAPNET_RULES=[allow]\nconnect = [\"10.0.0.0/8:9000-80\"]"],
        Path::new("/no/default"),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "error: CAPNET_RULES:2:12: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end (write 80-9000)\n"
    );
}

/// Every bad file the CLI's snapshot tests pin fails the shim with the same text.
#[test]
fn a_bad_policy_file_fails_with_the_message_policy_check_prints() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/policies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&policies).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.extension().is_none_or(|e| e != "toml") || name.starts_with("warn-") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("stderr")).unwrap();
        let env = format!("CAPNET_POLICY={}", path.display());
        let got = load(&[&env], Path::new("/no/default")).unwrap_err();
        // `capnet policy check NAME` ran in the directory of the file.
        let got = got.replace(&format!("{}/", policies.display()), "");
        assert_eq!(got, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} bad policy files found");
}

/// A wasm image's policy layer is its policy: `CAPNET_RULES` adds to it, `CAPNET_POLICY`
/// replaces it, and a bad one is named by the layer's file name.
#[test]
fn the_image_s_policy_layer_decides_and_capnet_policy_replaces_it() {
    let layer = ImagePolicy::Layer {
        origin: "policy.toml",
        text: "[allow]\nlisten = [\"0.0.0.0:8080\"]\n",
    };
    let declared = capnet::needs::Declared::new();
    let policy = |env: &[&str], image: &ImagePolicy<'_>| {
        Workload::from_env(env)
            .unwrap()
            .policy_declaring(image, &declared)
            .map_err(|e| capnet_cli::logging::error_report(&e.into()))
    };

    let added = policy(
        &["CAPNET_RULES=[allow]\nconnect = [\"10.0.0.5:5432\"]"],
        &layer,
    )
    .unwrap();
    assert!(allows(&added, Use::TcpBind, "0.0.0.0:8080"));
    assert!(allows(&added, Use::TcpConnect, "10.0.0.5:5432"));

    let dir = scratch("layer");
    let file = dir.join("other.toml");
    std::fs::write(&file, "[allow]\nconnect = [\"loopback\"]\n").unwrap();
    let replaced = policy(&[&format!("CAPNET_POLICY={}", file.display())], &layer).unwrap();
    assert!(!allows(&replaced, Use::TcpBind, "0.0.0.0:8080"));
    assert!(allows(&replaced, Use::TcpConnect, "127.0.0.1:80"));
    std::fs::remove_dir_all(dir).unwrap();

    let bad = ImagePolicy::Layer {
        origin: "policy.toml",
        text: "[allow]\nconnect = [\"10.0.0.0/8:9000-80\"]\n",
    };
    assert_eq!(
        policy(&[], &bad).unwrap_err(),
        "error: policy.toml:2:12: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end (write 80-9000)\n"
    );
}
