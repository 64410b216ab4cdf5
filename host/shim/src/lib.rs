//! `containerd-shim-capnet-v1`: containerd's runtime `io.containerd.capnet.v1`, built on
//! runwasi's `containerd-shim-wasm`. It runs a WebAssembly component from an OCI image with
//! capnet's sockets, under the policy the image carries, so that Kubernetes (through a
//! `RuntimeClass`) and `ctr` run components with the same rights as `capnet run` would.
//!
//! runwasi sets up the container (namespaces, cgroups, the image's root file system) and calls
//! [`CapnetSandbox`] inside it. The sandbox then does what `capnet run` does, with the same
//! code ([`capnet_cli::host`]):
//! - the policy is the image's policy file ([`workload::POLICY_PATH`], or the path in
//!   `CAPNET_POLICY`) plus the rules of `CAPNET_RULES`; with neither, every use is denied. A
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

pub mod workload;

use capnet::CapnetCtx;
use capnet_cli::host::{self, CommandHost, Exit};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::shim::{Shim, Version};
use std::path::Path;
use wasmtime::component::Component;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use workload::Workload;

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
}

/// Runs one container's component; runwasi makes one per container, inside it.
#[derive(Default)]
pub struct CapnetSandbox;

impl Sandbox for CapnetSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        let entrypoint = ctx.entrypoint();
        let name = entrypoint.name.unwrap_or_else(|| "component".into());
        let bytes = entrypoint.source.as_bytes()?;
        let args = ctx.args().get(1..).unwrap_or_default();
        let env = ctx.envs();
        // The guest and the reactor that wakes it share one thread, as under `capnet run`;
        // runwasi's own runtime is a multi-threaded one, so the run gets a thread of its own.
        let code = std::thread::scope(|scope| {
            scope
                .spawn(|| run(&name, &bytes, args, env, Path::new(workload::POLICY_PATH)))
                .join()
        })
        .map_err(|_| anyhow::anyhow!("the thread running the guest panicked"))?;
        Ok(code)
    }
}

/// Runs `component` (named `name`) as a command with `args` and the container's `env`, under
/// the policy they and the policy file (`default_policy` unless `CAPNET_POLICY` names
/// another) describe, logging to stderr. Returns the exit code: the guest's, [`TRAP_EXIT`]
/// if it trapped, 1 if it could not start (the reason is on stderr).
pub fn run(
    name: &str,
    component: &[u8],
    args: &[String],
    env: &[String],
    default_policy: &Path,
) -> i32 {
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
    let policy = match workload.policy_declaring(default_policy, &declared) {
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
    match workload.policy_file(default_policy) {
        Some(file) => {
            tracing::info!(target: "capnet::shim", "policy {}: {} rule(s)", file.display(), policy.rules().len())
        }
        None => tracing::info!(
            target: "capnet::shim",
            "no policy file at {} (CAPNET_POLICY names another): only CAPNET_RULES' {} rule(s) grant anything",
            default_policy.display(),
            policy.rules().len()
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
    match runtime.block_on(start(name, component, args, &workload, policy)) {
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

    // A 0.2 engine first, and the one with the async ABI only for a 0.3 component, as under
    // `capnet run`. No compiled-code cache: a container's file system is its own.
    let composition = capnet::Composition::read(bytes)
        .map_err(|e| wasmtime::Error::from(e).context(format!("cannot load component {name}")))?;
    let load = |abi| -> wasmtime::Result<_> {
        let engine = host::engine_for(abi, None)?;
        let component = Component::new(&engine, bytes)?;
        Ok((engine, component))
    };
    let (engine, component) = load(host::Abi::P2)
        .or_else(|_| load(host::Abi::P3))
        .map_err(|e| e.context(format!("cannot load component {name}")))?;
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
