//! `containerd-shim-capnet-v1`: containerd's runtime `io.containerd.capnet.v1`, built on
//! runwasi's `containerd-shim-wasm`. It runs a WebAssembly component from an OCI image with
//! capnet's sockets, under the policy the image carries, so that Kubernetes (through a
//! `RuntimeClass`) and `ctr` run components with the same rights as `capnet run` would.
//!
//! It runs two kinds of images:
//! - a root-fs image: a file system holding the component (the entry point, a `.wasm` file)
//!   and perhaps its policy file ([`workload::POLICY_PATH`]); compiled at every start;
//! - a wasm image: its layers are the component itself ([`precompiled::WASM_LAYERS`]) and
//!   perhaps a policy layer ([`precompiled::POLICY_LAYER`]), its configuration's architecture
//!   `wasm`; compiled at its first start only, the code kept in containerd's content store
//!   ([`precompiled`]).
//!
//! runwasi sets up the container (namespaces, cgroups, the image's root file system) and calls
//! [`CapnetSandbox`] inside it. The sandbox then does what `capnet run` does, with the same
//! code ([`capnet_cli::host`]):
//! - the policy is the image's (its policy layer, else its policy file; `CAPNET_POLICY` names
//!   another file) plus the rules of `CAPNET_RULES`; with neither, every use is denied. A
//!   bad policy stops the container before the guest runs, with the message `capnet policy
//!   check` prints, on the container's stderr;
//! - decisions are logged to the container's stderr (what `kubectl logs` shows): denials by
//!   default, every decision with `CAPNET_LOG=capnet=debug`, JSON lines with
//!   `CAPNET_LOG_DECISIONS=json`;
//! - `CAPNET_TCPLISTEN` pre-opens listeners, and a composed app's libraries get the grants of
//!   the policy's `[library.NAME]` tables; a table saying `grant = "declared"` gives its
//!   library what its component declares (`capnet needs`), and a declared need the app's
//!   rules do not allow stops the container before the guest runs.
//!
//! [`workload`] lists the variables.

pub mod precompiled;
pub mod workload;

use capnet::CapnetCtx;
use capnet_cli::host::{self, Abi, CommandHost, Exit};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use containerd_shim_wasm::shim::{Compiler, Shim, Version};
use precompiled::{Artifact, CapnetCompiler, StoredCode};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use workload::{ImagePolicy, Workload};

/// Exit code of a guest that trapped: 128 + SIGABRT, as under `capnet run`.
pub const TRAP_EXIT: i32 = 134;

/// The shim: its name makes containerd's runtime `io.containerd.capnet.v1` run the binary
/// `containerd-shim-capnet-v1`.
pub struct CapnetShim;

impl Shim for CapnetShim {
    type Sandbox = CapnetSandbox;

    fn name() -> &'static str {
        "capnet"
    }

    fn version() -> Version {
        containerd_shim_wasm::shim::version!()
    }

    fn supported_layers_types() -> &'static [&'static str] {
        &precompiled::LAYERS
    }

    /// Without its engines (wasmtime rejecting their configuration, which the sandbox would
    /// report) the shim compiles at every start.
    async fn compiler() -> Option<impl Compiler> {
        CapnetCompiler::new().ok()
    }
}

/// Runs one container's component; runwasi makes one per container, inside it.
#[derive(Default)]
pub struct CapnetSandbox;

impl Sandbox for CapnetSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        let entrypoint = ctx.entrypoint();
        let name = entrypoint.name.unwrap_or_else(|| "component".into());
        let file;
        let image = match entrypoint.source {
            Source::File(_) => {
                file = entrypoint.source.as_bytes()?;
                Image {
                    component: Code::Wasm(&file),
                    policy: ImagePolicy::File(Path::new(workload::POLICY_PATH)),
                }
            }
            Source::Oci(layers) => match Image::from_layers(layers) {
                Ok(image) => image,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(1);
                }
            },
        };
        let args = ctx.args().get(1..).unwrap_or_default();
        let env = ctx.envs();
        // The guest and the reactor that wakes it share one thread, as under `capnet run`;
        // runwasi's own runtime is a multi-threaded one, so the run gets a thread of its own.
        let code = std::thread::scope(|scope| scope.spawn(|| run(&name, &image, args, env)).join())
            .map_err(|_| anyhow::anyhow!("the thread running the guest panicked"))?;
        Ok(code)
    }
}

/// What a container's image gives the shim: its component and its policy.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    /// The component.
    pub component: Code<'a>,
    /// Where the image's policy is.
    pub policy: ImagePolicy<'a>,
}

/// A component as the sandbox gets it.
#[derive(Clone, Copy, Debug)]
pub enum Code<'a> {
    /// Its bytes: a root-fs image's file, or a wasm image's layer that was not compiled.
    Wasm(&'a [u8]),
    /// A wasm image's layer compiled by [`CapnetCompiler`] ([`Artifact`]), as runwasi read it
    /// from containerd's content store.
    Precompiled(StoredCode<'a>),
}

impl<'a> Image<'a> {
    /// The image whose layers runwasi handed over (those of [`precompiled::LAYERS`]): one
    /// component and at most one policy layer, whose messages name it by its file name (the
    /// `org.opencontainers.image.title` annotation) or else by its digest.
    ///
    /// # Errors
    /// No component layer or more than one, more than one policy layer, or a policy that is not
    /// UTF-8.
    #[allow(unsafe_code)]
    fn from_layers(layers: &'a [WasmLayer]) -> anyhow::Result<Image<'a>> {
        let (policies, components): (Vec<_>, Vec<_>) = layers
            .iter()
            .partition(|layer| layer.config.media_type().to_string() == precompiled::POLICY_LAYER);
        let component = match components.as_slice() {
            // SAFETY: runwasi marks a layer precompiled when it is what the shim's compiler
            // just returned, or what it read from containerd's content store under the label
            // it put on the original layer for this shim's cache key. That store is
            // content-addressed and written by root alone (who controls every container of the
            // node anyway); an image brings layers, never content-store labels, and its own
            // layers come unmarked. wasmtime checks what it can (its version, the engine's
            // configuration, the CPU's features, the code's format) before running any of it.
            [layer] if layer.precompiled => {
                Code::Precompiled(unsafe { StoredCode::new(&layer.layer) })
            }
            [layer] => Code::Wasm(&layer.layer),
            [] => anyhow::bail!("the image has a policy layer but no component layer"),
            _ => anyhow::bail!(
                "the image has {} component layers: the shim runs one component",
                components.len()
            ),
        };
        let policy = match policies.as_slice() {
            [] => ImagePolicy::File(Path::new(workload::POLICY_PATH)),
            [layer] => {
                let origin = layer
                    .config
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.title"))
                    .map_or_else(|| layer.config.digest().as_ref(), String::as_str);
                let text = std::str::from_utf8(&layer.layer)
                    .map_err(|e| anyhow::anyhow!("{origin}: the policy layer is not UTF-8: {e}"))?;
                ImagePolicy::Layer { origin, text }
            }
            _ => anyhow::bail!(
                "the image has {} policy layers: write the policy in one",
                policies.len()
            ),
        };
        Ok(Image { component, policy })
    }
}

/// Runs `image`'s component (named `name`) as a command with `args` and the container's `env`,
/// under the policy they and the image describe, logging to stderr. Returns the exit code: the
/// guest's, [`TRAP_EXIT`] if it trapped, 1 if it could not start (the reason is on stderr).
pub fn run(name: &str, image: &Image<'_>, args: &[String], env: &[String]) -> i32 {
    let workload = match Workload::from_env(env) {
        Ok(workload) => workload,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match capnet_cli::logging::dispatch(
        0,
        workload.log_filter.as_deref(),
        workload.log_decisions.as_ref(),
    ) {
        // The container's process is this guest's alone: its log is the process's.
        Ok(dispatch) => {
            let _ = tracing::dispatcher::set_global_default(dispatch);
        }
        Err(e) => {
            eprintln!("error: CAPNET_LOG_DECISIONS: {e}");
            return 1;
        }
    }
    // A compiled layer carries the component it was compiled from: the composition and the
    // declared needs are read from that, and it is compiled again if the code does not fit.
    let (component, compiled) = match image.component {
        Code::Wasm(bytes) => (bytes, None),
        Code::Precompiled(stored) => match Artifact::read(stored.bytes()) {
            Some(artifact) => (artifact.original, Some((artifact.abi, artifact.compiled))),
            None => {
                eprintln!(
                    "error: cannot load component {name}: its compiled form in containerd's \
                     content store is not one this shim writes (remove the image and import it again)"
                );
                return 1;
            }
        },
    };
    // Each library's declared needs, for a policy that grants a library what it declared; a
    // component that does not read as a composition is left for the load to report.
    let declared = match capnet::Composition::read(component) {
        Ok(composition) => match capnet::needs::declared(component, &composition) {
            Ok(declared) => declared,
            Err(e) => {
                eprintln!("error: cannot load component {name}: {e}");
                return 1;
            }
        },
        Err(_) => capnet::needs::Declared::new(),
    };
    let policy = match workload.policy_declaring(&image.policy, &declared) {
        Ok(policy) => policy,
        Err(e) => {
            eprint!("{}", capnet_cli::logging::error_report(&e.into()));
            return 1;
        }
    };
    if let Some((library, need)) = capnet::needs::refused_at_start(&policy, &declared).first() {
        eprintln!("error: {}", capnet::needs::refusal(library, need));
        return 1;
    }
    for warning in policy.warnings() {
        eprintln!("warning: {warning}");
    }
    let rules = policy.rules().len();
    match workload.policy_source(&image.policy) {
        Some(ImagePolicy::File(file)) => {
            tracing::info!(target: "capnet::shim", "policy {}: {rules} rule(s)", file.display())
        }
        Some(ImagePolicy::Layer { origin, .. }) => {
            tracing::info!(target: "capnet::shim", "policy {origin} (the image's policy layer): {rules} rule(s)")
        }
        // Only a file can be missing: a policy layer is there or not offered.
        None => tracing::info!(
            target: "capnet::shim",
            "no policy file at {} (CAPNET_POLICY names another): only CAPNET_RULES' {rules} rule(s) grant anything",
            match image.policy {
                ImagePolicy::File(file) => file.display().to_string(),
                ImagePolicy::Layer { origin, .. } => origin.to_owned(),
            }
        ),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(start(name, component, compiled, args, &workload, policy)) {
        Ok(Exit::Code(code)) => code,
        Ok(Exit::Trap(trap)) => {
            eprintln!("error: the guest trapped: {trap:?}");
            TRAP_EXIT
        }
        Err(e) => {
            eprint!("{}", capnet_cli::logging::error_report(&e));
            1
        }
    }
}

async fn start(
    name: &str,
    bytes: &[u8],
    compiled: Option<(Abi, &[u8])>,
    args: &[String],
    workload: &Workload,
    policy: capnet::policy::Policy,
) -> wasmtime::Result<Exit> {
    let capnet = CapnetCtx::builder().policy(policy).instance_name(name);
    let capnet = host::preopen_listeners(
        capnet,
        "CAPNET_TCPLISTEN",
        &workload.tcplisten,
        capnet_cli::activation::ActivatedListeners::default(),
    )?;

    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stdio().arg(name).args(args);
    for (key, value) in &workload.guest_env {
        wasi.env(key, value);
    }
    // The container's root file system is the guest's, as runwasi's other shims give it.
    wasi.preopened_dir("/", "/", FsPerms::ReadWrite)?;

    let composition = capnet::Composition::read(bytes)
        .map_err(|e| wasmtime::Error::from(e).context(format!("cannot load component {name}")))?;
    let loaded = compiled.and_then(|(abi, code)| match deserialize(abi, code) {
        Ok(loaded) => {
            tracing::info!(
                target: "capnet::shim",
                "{name}: compiled code loaded from containerd's content store, not compiled"
            );
            Some(loaded)
        }
        Err(e) => {
            tracing::warn!(
                target: "capnet::shim",
                "{name}: the compiled code in containerd's content store does not fit this engine, compiling the component: {e}"
            );
            None
        }
    });
    // A 0.2 engine first, and the one with the async ABI only for a 0.3 component, as under
    // `capnet run`. No compiled-code cache of capnet's: a container's file system is its own
    // (a wasm image's compiled code is containerd's to keep).
    let load = |abi| -> wasmtime::Result<_> {
        let engine = host::engine_for(abi, None)?;
        let component = Component::new(&engine, bytes)?;
        Ok((engine, component))
    };
    let (engine, component) = match loaded {
        Some(loaded) => loaded,
        None => load(Abi::P2)
            .or_else(|_| load(Abi::P3))
            .map_err(|e| e.context(format!("cannot load component {name}")))?,
    };
    let (linker, libraries) = host::linker_for(&engine, &composition)?;
    let capnet = capnet.build();
    host::report_libraries(
        &capnet.policy_handle().current(),
        &libraries,
        name,
        |library| format!("a [library.{library}] table in CAPNET_RULES"),
    );
    let host = CommandHost::new(wasi.build(), capnet);
    Ok(host::run_command(&engine, &linker, &component, host).await)
}

/// The component `compiled` (from a [`StoredCode`]) holds, on an engine of `abi`.
///
/// # Errors
/// When wasmtime refuses the code: compiled by another wasmtime, for another configuration or
/// CPU, or not compiled code at all.
#[allow(unsafe_code)]
fn deserialize(abi: Abi, compiled: &[u8]) -> wasmtime::Result<(Engine, Component)> {
    let engine = host::engine_for(abi, None)?;
    // SAFETY: wasmtime trusts serialized code to be what it compiled. `compiled` is the
    // compiled part of a `StoredCode`, whose maker promised it is what `CapnetCompiler` wrote
    // (or bytes wasmtime refuses): the sandbox makes one only of a layer runwasi read from
    // containerd's content store (see `Image::from_layers`). What wasmtime can check (its
    // version, the engine's configuration, the CPU's features, the code's format) it checks, and
    // a refusal is an error here, upon which the caller compiles the original component.
    let component = unsafe { Component::deserialize(&engine, compiled)? };
    Ok((engine, component))
}
