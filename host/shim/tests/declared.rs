//! A library granted what it declared (`grant = "declared"`) in a container: the shim reads the
//! library's declaration from its component as `capnet run` does, so the library reaches the
//! server it declared and nothing arrives from it at another; a need the app's rules do not
//! allow stops the container before the guest runs.

use capnet_cli::compose::{Library, compose};
use capnet_tests::{counting_server, guest};
use containerd_shim_capnet_v1::workload::ImagePolicy;
use containerd_shim_capnet_v1::{Code, Image};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The example nano app whose weather library declares `rules`.
fn app_declaring(rules: &[String]) -> Vec<u8> {
    let read = |name: &str| std::fs::read(guest(name)).unwrap();
    let needs = capnet::needs::Needs::from_rules("weather", rules).unwrap();
    let weather = capnet::needs::write(&read("weather"), &needs).unwrap();
    let libraries = [
        Library {
            name: "weather".into(),
            component: weather,
        },
        Library {
            name: "metrics".into(),
            component: read("metrics"),
        },
    ];
    compose(&read("nano-app"), &libraries).unwrap().component
}

/// An image of `app` with no policy of its own: the rules are the container's.
fn image(app: &[u8]) -> Image<'_> {
    Image {
        component: Code::Wasm(app),
        policy: ImagePolicy::File(Path::new("/no/default/policy.toml")),
    }
}

const RULES: &str =
    "CAPNET_RULES=[allow]\nconnect = [\"loopback\"]\n[library.weather]\ngrant = \"declared\"";

#[test]
fn a_library_granted_its_declaration_in_a_container_reaches_only_that() {
    let (declared, declared_hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "sunny");
    let (other, other_hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "sunny");
    let app = app_declaring(&[format!("connect {declared}  # the forecast")]);
    let steps = [format!("weather={declared}"), format!("weather={other}")];
    let code =
        containerd_shim_capnet_v1::run("nano-app.wasm", &image(&app), &steps, &[RULES.to_owned()]);
    // The app prints each step's outcome and exits 0 whatever they were.
    assert_eq!(code, 0);
    assert_eq!(declared_hits.load(Ordering::SeqCst), 1);
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "nothing arrived");
}

#[test]
fn a_declared_need_the_apps_rules_do_not_allow_stops_the_container() {
    let (declared, declared_hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "sunny");
    let app = app_declaring(&["connect 10.9.9.9:443  # the mirror".to_owned()]);
    let code = containerd_shim_capnet_v1::run(
        "nano-app.wasm",
        &image(&app),
        &[format!("weather={declared}")],
        &[RULES.to_owned()],
    );
    assert_eq!(code, 1);
    assert_eq!(declared_hits.load(Ordering::SeqCst), 0, "nothing ran");
}
