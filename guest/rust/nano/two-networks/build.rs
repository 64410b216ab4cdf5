//! Links without wasm-component-ld's semver merging, so the component imports
//! `wasi:sockets/instance-network` twice: std's 0.2.0 and the `wasip2` crate's 0.2.12.

fn main() {
    println!("cargo::rustc-link-arg-cdylib=--merge-imports-based-on-semver=false");
}
