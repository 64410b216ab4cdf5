//! Builds the Rust guests (`guest/rust`, its own workspace) for `wasm32-wasip2`, so the tests
//! always run the guests of this very tree.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("tests/ sits in the repository");
    let guests = root.join("guest/rust");
    for watched in ["guest/rust/Cargo.toml", "guest/rust/Cargo.lock", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for entry in std::fs::read_dir(&guests)
        .expect("guest/rust exists")
        .flatten()
    {
        let src = entry.path().join("src");
        if src.is_dir() {
            println!("cargo:rerun-if-changed={}", src.display());
            println!(
                "cargo:rerun-if-changed={}",
                entry.path().join("Cargo.toml").display()
            );
        }
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(&guests).args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
    ]);
    // The outer build's settings are for the host, not for the guests.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests in guest/rust failed; is the target installed? \
         (rustup target add wasm32-wasip2)"
    );
    println!(
        "cargo:rustc-env=CAPNET_GUEST_DIR={}",
        guests.join("target/wasm32-wasip2/release").display()
    );
}
