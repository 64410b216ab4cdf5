//! A wasm image's compiled code as the sandbox gets it from containerd's content store: code
//! the shim's compiler wrote runs; code that does not fit the engine is compiled again from the
//! component the artifact carries; an artifact the shim did not write stops the container.

use capnet_cli::host::Abi;
use capnet_tests::{counting_server, guest};
use containerd_shim_capnet_v1::precompiled::{Artifact, CapnetCompiler, StoredCode};
use containerd_shim_capnet_v1::workload::ImagePolicy;
use containerd_shim_capnet_v1::{Code, Image, run};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;

/// Runs the tcp-client guest from `artifact` against `server`, allowed to reach it.
///
/// Every artifact here is one `CapnetCompiler` wrote, or holds code wasmtime refuses before
/// running it (not an ELF file; code for the other engine's features), or is not an artifact.
#[allow(unsafe_code)]
fn run_client(artifact: &[u8], server: SocketAddr) -> i32 {
    // SAFETY: see above; each test says what its bytes are.
    let stored = unsafe { StoredCode::new(artifact) };
    let image = Image {
        component: Code::Precompiled(stored),
        policy: ImagePolicy::File(Path::new("/no/default/policy.toml")),
    };
    run(
        "tcp-client",
        &image,
        &[server.to_string(), "hi".into()],
        &[format!("CAPNET_RULES=[allow]\nconnect = [\"{server}\"]")],
    )
}

#[test]
fn the_shim_s_compiled_code_runs() {
    let (server, hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "compiled");
    let wasm = std::fs::read(guest("tcp-client")).unwrap();
    let artifact = CapnetCompiler::new()
        .unwrap()
        .compile_component(&wasm)
        .unwrap();
    let read = Artifact::read(&artifact).expect("an artifact the shim reads");
    assert_eq!(read.abi, Abi::P2);
    assert_eq!(read.original, wasm.as_slice());
    assert_eq!(run_client(&artifact, server), 0);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn code_that_does_not_fit_the_engine_is_compiled_again_from_the_component() {
    let (server, hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "recompiled");
    let wasm = std::fs::read(guest("tcp-client")).unwrap();
    // Code for the 0.3 engine said to be the 0.2 engine's: wasmtime refuses it (the engines'
    // features differ), as it would code of another wasmtime or CPU.
    let p3 = capnet_cli::host::engine_for(Abi::P3, None).unwrap();
    let for_p3 = p3.precompile_component(&wasm).unwrap();
    let mislabelled = Artifact {
        abi: Abi::P2,
        original: &wasm,
        compiled: &for_p3,
    };
    assert_eq!(run_client(&mislabelled.to_bytes(), server), 0);
    let garbage = Artifact {
        abi: Abi::P2,
        original: &wasm,
        compiled: b"not compiled code",
    };
    assert_eq!(run_client(&garbage.to_bytes(), server), 0);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn an_artifact_the_shim_did_not_write_stops_the_container() {
    let (server, hits) = counting_server(Ipv4Addr::LOCALHOST.into(), "never");
    let wasm = std::fs::read(guest("tcp-client")).unwrap();
    assert_eq!(run_client(&wasm, server), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing ran");
}
