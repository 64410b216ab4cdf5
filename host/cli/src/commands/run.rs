//! `capnet run`: run a component under a network policy.

use crate::activation::ActivatedListeners;
use crate::decision_log::DecisionLogSpec;
use crate::flags::PolicyFlags;
use crate::host::{self, CommandHost, Exit, ModuleHost};
use crate::learn::LearnFile;
use capnet::needs::Declared;
use capnet::policy::{Policy, PolicyBuilder};
use capnet::{CapnetCtx, CapnetCtxBuilder, PolicyHandle, Recorder};
use clap::Parser;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Exit code of a guest that trapped: 128 + SIGABRT, as a native program that aborts.
const TRAP_EXIT: u8 = 134;

/// Run a WebAssembly component (a wasi:cli command) with network access only as the policy
/// grants it. Without rules, every bind, listen, accept, connect and lookup is denied.
#[derive(Parser, Debug)]
#[command(after_help = "\
Targets (LIST is comma separated): 127.0.0.1:8080, 10.0.0.0/8:8000-8100, [::1]:*, ::1,
any:443, a named set (loopback, private, link-local, metadata, public), example.com and
*.example.com (connect, udp-send, lookup). PORTS: 443, 8000-8100, *, or a list joined by ';'
(10.0.0.1:80;443). No port means any port.

SIGUSR1 prints the guest's memory (its linear memory) and the process's resident memory to
stderr; SIGHUP reloads --policy.

Examples:
  capnet run --allow-listen 127.0.0.1:8080 server.wasm 127.0.0.1:8080
  capnet run --allow-connect 10.0.0.0/8:443 --deny-connect 10.0.0.5 client.wasm
  capnet run --allow-connect 'api.example.com:443' --log-decisions=json client.wasm
  capnet run --tcplisten 127.0.0.1:8080 server.wasm 127.0.0.1:8080
  capnet run --policy policy.toml -v app.wasm
  capnet run --learn policy.toml app.wasm       # writes the policy of what it used
  capnet run --allow-connect loopback --library-allow 'weather=connect 127.0.0.1:9001' app.wasm")]
pub struct RunOpts {
    /// A policy file (TOML) with [allow] and [deny] tables of rules, and a [library.NAME] table
    /// per library of a composed app. SIGHUP reloads it (and the flags) for every later check;
    /// a file that no longer loads leaves the policy as it was.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Learn mode: allow every use no deny rule names, and write to FILE the least-privilege
    /// policy that allows exactly what the run used (added to FILE if it exists, keeping what
    /// is there; its rules count as policy for the run). Written when the guest exits, or on
    /// SIGINT or SIGTERM. For finding what a workload needs, never for running it.
    #[arg(long, value_name = "FILE")]
    learn: Option<PathBuf>,
    /// On SIGHUP, also close the listeners and connections the reloaded policy refuses (by
    /// default a reload decides later checks only, and what was granted stays open).
    #[arg(long, requires = "policy")]
    revoke_on_reload: bool,
    /// Give every library exactly what its component declares (`capnet needs`), within the
    /// app's rules and its own table; a library that declares nothing gets nothing. One
    /// library: `grant = "declared"` in its `[library.NAME]` table.
    #[arg(long)]
    grant_declared: bool,
    /// Each library of the component with its declaration, read before the policy is built.
    #[arg(skip)]
    declared: Declared,

    #[command(flatten)]
    flags: PolicyFlags,
    /// Allow every network use not denied by a rule: the one allow-everything switch.
    #[arg(long)]
    inherit_network: bool,
    /// Write one JSON line per policy decision (time, instance, use, address, verdict, rule)
    /// for audit: `json` to stderr, `json:FILE` to FILE (appended).
    #[arg(long, value_name = "json[:FILE]")]
    pub log_decisions: Option<DecisionLogSpec>,

    /// A DNS server (IP:PORT) for the guest's name lookups, instead of the system's from
    /// /etc/resolv.conf; repeatable. Asked over UDP, and over TCP on the same port when an
    /// answer is truncated. Its answers' TTLs bound DNS-pinned grants.
    #[arg(long, value_name = "ADDR")]
    dns_server: Vec<SocketAddr>,

    /// Bind a listening socket before the guest starts and hand it to the guest, which needs
    /// no bind or listen right to serve on it. ADDR=GUEST_ADDR lets the guest know it by
    /// another address (it gets the socket by binding GUEST_ADDR). Sockets a service manager
    /// passes (LISTEN_FDS) are handed over too: at their own address, or at GUEST_ADDR with
    /// ADDR=GUEST_ADDR for the one at ADDR or NAME=GUEST_ADDR for the one LISTEN_FDNAMES calls
    /// NAME.
    #[arg(long, value_name = "ADDR|NAME[=GUEST_ADDR]")]
    tcplisten: Vec<String>,

    /// Set an environment variable for the guest.
    #[arg(long, value_name = "KEY=VAL")]
    env: Vec<String>,
    /// Give the guest a host directory, at GUEST path (default: the same path).
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir: Vec<String>,

    /// Keep compiled code in DIR, so the next start of the same component skips compiling it
    /// [default: $CAPNET_CACHE_DIR, $XDG_CACHE_HOME/capnet or ~/.cache/capnet].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile the component afresh and keep nothing on disk.
    #[arg(long)]
    no_cache: bool,
    /// Say nothing of capnet's own progress (the line a long first compile prints).
    #[arg(short, long)]
    quiet: bool,

    /// The component to run.
    component: PathBuf,
    /// Arguments for the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl RunOpts {
    /// Builds the policy these options describe.
    ///
    /// # Errors
    /// The first bad file or flag, naming where it is and what is wrong.
    pub fn policy(&self) -> Result<Policy, capnet::policy::PolicyError> {
        self.policy_source().load()
    }

    fn policy_source(&self) -> PolicySource {
        PolicySource {
            file: self.policy.clone(),
            learned: self
                .learn
                .clone()
                .filter(|f| f.exists() && self.policy.as_ref() != Some(f)),
            flags: self.flags.clone(),
            inherit_network: self.inherit_network,
            revoke: self.revoke_on_reload,
            grant_declared: self.grant_declared,
            declared: self.declared.clone(),
        }
    }

    /// Each library of the component with the needs it declares. A malformed declaration is
    /// refused here, before anything runs; a component that does not read as a composition
    /// is left for the load to report.
    fn declarations(&self) -> wasmtime::Result<Declared> {
        let Ok(wasm) = std::fs::read(&self.component) else {
            return Ok(Declared::new());
        };
        let Ok(composition) = capnet::Composition::read(&wasm) else {
            return Ok(Declared::new());
        };
        capnet::needs::declared(&wasm, &composition).map_err(|e| {
            wasmtime::format_err!(e).context(format!(
                "cannot load component {}",
                self.component.display()
            ))
        })
    }

    /// Runs the component; the exit code is the guest's.
    ///
    /// # Errors
    /// A bad policy, option, component or pre-open, before the guest starts.
    pub fn run(mut self) -> wasmtime::Result<ExitCode> {
        self.declared = self.declarations()?;
        let policy = self.policy()?;
        if let Some((library, need)) = capnet::needs::refused_at_start(&policy, &self.declared)
            .into_iter()
            .next()
        {
            wasmtime::bail!("{}", capnet::needs::refusal(library, need));
        }
        for warning in policy.warnings() {
            eprintln!("warning: {warning}");
        }
        // Before any thread starts: adopting removes LISTEN_PID and LISTEN_FDS from the
        // environment.
        let activated = ActivatedListeners::from_env().map_err(|e| wasmtime::format_err!(e))?;
        // One thread runs the guest and the reactor that wakes it: a wake-up that crossed to
        // another thread cost more than the rest of a small round trip. Name lookups are futures
        // on this thread too; blocking work (stdio) still goes to tokio's blocking pool.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let exit = runtime.block_on(self.run_async(policy, activated))?;
        Ok(match exit {
            Exit::Code(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Exit::Trap(trap) => {
                eprintln!("error: the guest trapped: {trap:?}");
                ExitCode::from(TRAP_EXIT)
            }
        })
    }

    async fn run_async(
        self,
        policy: Policy,
        activated: ActivatedListeners,
    ) -> wasmtime::Result<Exit> {
        let name = self
            .component
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "component".into());

        let mut capnet = CapnetCtx::builder().policy(policy).instance_name(&name);
        let learning = match &self.learn {
            Some(path) => {
                let file = LearnFile::open(path, &name).map_err(|e| wasmtime::format_err!(e))?;
                let recorder = Arc::new(Recorder::new());
                capnet = capnet.learn(recorder.clone());
                write_on_interrupt(file.clone(), recorder.clone())?;
                Some((file, recorder))
            }
            None => None,
        };
        if !self.dns_server.is_empty() {
            capnet = capnet.name_servers(self.dns_server.iter().copied());
        }
        let capnet = host::preopen_listeners(capnet, "--tcplisten", &self.tcplisten, activated)?;

        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdio().arg(&name).args(&self.args);
        for pair in &self.env {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| wasmtime::format_err!("--env {pair}: write KEY=VAL"))?;
            wasi.env(key, value);
        }
        for spec in &self.dir {
            let (host_dir, guest_dir) = spec.split_once("::").unwrap_or((spec, spec));
            wasi.preopened_dir(host_dir, guest_dir, FsPerms::ReadWrite)
                .map_err(|e| wasmtime::format_err!("--dir {spec}: {e}"))?;
        }

        let shown = self.component.display().to_string();
        let cannot_load = |e: wasmtime::Error| e.context(format!("cannot load component {shown}"));
        let wasm = std::fs::read(&self.component)
            .map_err(|e| wasmtime::format_err!("cannot read {shown}: {e}"))?;
        let kind = host::check_wasm(&wasm).map_err(|e| wasmtime::format_err!("{shown} {e}"))?;
        if kind == host::WasmKind::CoreModule {
            return self.run_preview1(&wasm, capnet, wasi, learning).await;
        }
        // Who holds each network import is read before anything compiles, so a composition
        // capnet refuses says so at once.
        let composition = capnet::Composition::read(&wasm).map_err(|e| cannot_load(e.into()))?;
        // A 0.2 engine first: a 0.3 component does not load there, and loads on the engine
        // that also takes the async ABI (which 0.2 components would pay for on every call).
        let progress = !self.quiet && std::io::stderr().is_terminal();
        let load = |abi| -> wasmtime::Result<_> {
            let engine = self.engine(abi)?;
            let component = host::compile(&engine, &wasm, &shown, progress)?;
            Ok((engine, component))
        };
        let (engine, component) = load(host::Abi::P2)
            .or_else(|_| load(host::Abi::P3))
            .map_err(cannot_load)?;
        host::check_is_command(&engine, &component)
            .map_err(|e| wasmtime::format_err!("{shown} {e}"))?;
        let (linker, libraries) = host::linker_for(&engine, &composition)?;
        let capnet = capnet.build();
        let current = capnet.policy_handle().current();
        // Learning, a library with no table of its own gets one written.
        let component_name = self.component.display().to_string();
        if learning.is_none() {
            host::report_libraries(&current, &libraries, &component_name, |library| {
                format!("--library-allow {library}=...")
            });
        } else {
            for warning in host::unknown_libraries(&current, &libraries, &component_name) {
                eprintln!("warning: {warning}");
            }
        }
        if self.policy.is_some() {
            reload_on_hangup(self.policy_source(), capnet.policy_handle())?;
        }
        let host = CommandHost::new(wasi.build(), capnet);
        let memory = host.guest_memory();
        host::print_memory_on_sigusr1(memory.clone())?;
        let exit = host::run_command(&engine, &linker, &component, host).await;
        tracing::debug!(target: "capnet::cli", "the guest's linear memory reached {} KiB", memory.bytes() / 1024);
        if let Some((file, recorder)) = learning {
            write_learned(&file, &recorder).map_err(|e| wasmtime::format_err!(e))?;
        }
        Ok(exit)
    }
}

impl RunOpts {
    /// Runs a WASI preview 1 module, as `wasmtime run` does: the pre-opened sockets are its
    /// descriptors from 3 on, served by capnet.
    async fn run_preview1(
        &self,
        wasm: &[u8],
        capnet: CapnetCtxBuilder,
        mut wasi: WasiCtxBuilder,
        learning: Option<(LearnFile, Arc<Recorder>)>,
    ) -> wasmtime::Result<Exit> {
        let shown = self.component.display().to_string();
        let cannot_load = |e: wasmtime::Error| e.context(format!("cannot load module {shown}"));
        let progress = !self.quiet && std::io::stderr().is_terminal();
        let engine = self.engine(host::Abi::P2)?;
        let module = host::compile_module(&engine, wasm, &shown, progress).map_err(cannot_load)?;
        host::check_is_preview1_command(&module)
            .map_err(|e| wasmtime::format_err!("{shown} {e}"))?;
        let module = host::module_linker(&engine)?
            .instantiate_pre(&module)
            .map_err(cannot_load)?;
        let capnet = capnet.build();
        let handle = capnet.policy_handle();
        let sockets = capnet::p1::P1Ctx::new(capnet)?;
        // wasmtime numbers a preview 1 module's directories after its sockets; wasmtime-wasi,
        // which serves the directories here, numbers them from 3.
        if sockets.has_sockets() && !self.dir.is_empty() {
            wasmtime::bail!(
                "{shown}: --dir beside pre-opened sockets is not served for a preview 1 module yet \
                 (both would be numbered from descriptor 3); drop --dir, or build the program for \
                 wasm32-wasip2"
            );
        }
        if self.policy.is_some() {
            reload_on_hangup(self.policy_source(), handle)?;
        }
        let host = ModuleHost::new(wasi.build_p1(), sockets);
        let memory = host.guest_memory();
        host::print_memory_on_sigusr1(memory.clone())?;
        let exit = host::run_module(&engine, &module, host).await;
        tracing::debug!(target: "capnet::cli", "the guest's linear memory reached {} KiB", memory.bytes() / 1024);
        if let Some((file, recorder)) = learning {
            write_learned(&file, &recorder).map_err(|e| wasmtime::format_err!(e))?;
        }
        Ok(exit)
    }

    /// An engine with the compiled-code cache these options ask for. A cache that cannot be set
    /// up costs start-up time, not the run: it is reported and the run goes on without one.
    fn engine(&self, abi: host::Abi) -> wasmtime::Result<wasmtime::Engine> {
        let dir = match (&self.cache_dir, self.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(dir.clone()),
            (None, false) => host::default_cache_dir(),
        };
        if let Some(dir) = dir {
            match host::engine_for(abi, Some(&dir)) {
                Ok(engine) => return Ok(engine),
                Err(e) => eprintln!(
                    "warning: no compiled-code cache in {}: {e:#}; compiling every start",
                    dir.display()
                ),
            }
        }
        host::engine_for(abi, None)
    }
}

/// Writes what a learning run learned to its file, and says so.
fn write_learned(file: &LearnFile, recorder: &Recorder) -> Result<(), String> {
    let added = file.write(recorder)?;
    eprintln!(
        "capnet: learned {added} new rule(s) into {}",
        file.path().display()
    );
    Ok(())
}

/// On SIGINT or SIGTERM, writes what the run learned so far and exits as the signal would
/// (130, 143). Waits on a thread of its own, as a reload does, so a guest that computes
/// without waiting does not hold it back.
fn write_on_interrupt(file: LearnFile, recorder: Arc<Recorder>) -> wasmtime::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupts, mut terminations) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    std::thread::Builder::new()
        .name("capnet-learn".into())
        .spawn(move || {
            let code = runtime.block_on(async move {
                tokio::select! {
                    _ = interrupts.recv() => 130,
                    _ = terminations.recv() => 143,
                }
            });
            if let Err(e) = write_learned(&file, &recorder) {
                eprintln!("error: {e}");
            }
            std::process::exit(code);
        })?;
    Ok(())
}

/// Where the policy of a run comes from: its file, then its flags.
struct PolicySource {
    file: Option<PathBuf>,
    /// The file a learning run adds to, when it exists: what it allows is not learned again.
    learned: Option<PathBuf>,
    flags: PolicyFlags,
    inherit_network: bool,
    /// Whether a reload also closes what the new policy refuses.
    revoke: bool,
    /// `--grant-declared`.
    grant_declared: bool,
    /// Each library's declaration, which bounds its grant where the policy says so.
    declared: Declared,
}

impl PolicySource {
    fn load(&self) -> Result<Policy, capnet::policy::PolicyError> {
        let mut builder: PolicyBuilder = Policy::builder().inherit_network(self.inherit_network);
        for path in [&self.file, &self.learned].into_iter().flatten() {
            builder = builder.file(path)?;
        }
        builder = self.flags.apply(builder)?;
        builder = capnet::needs::add_declarations(builder, &self.declared, self.grant_declared)?;
        Ok(builder.build())
    }
}

/// On SIGHUP, reads the policy file again (with the same flags) and makes it the policy of
/// every later check. A file that no longer loads changes nothing: the error is printed and
/// the policy in force stays.
///
/// The reload waits on a thread of its own, so that it happens even while the guest computes
/// without waiting: the guest's thread serves no one else until it does. The signal is
/// registered before this returns, so a SIGHUP that comes early is not fatal.
fn reload_on_hangup(source: PolicySource, handle: PolicyHandle) -> wasmtime::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut hangups = {
        let _context = runtime.enter();
        signal(SignalKind::hangup())?
    };
    std::thread::Builder::new()
        .name("capnet-reload".into())
        .spawn(move || {
            runtime.block_on(async move {
                while hangups.recv().await.is_some() {
                    reload(&source, &handle);
                }
            });
        })?;
    Ok(())
}

fn reload(source: &PolicySource, handle: &PolicyHandle) {
    match source.load() {
        Ok(policy) => {
            for warning in policy.warnings() {
                eprintln!("warning: {warning}");
            }
            // Logged by the handle: `policy replaced rules=N`.
            if source.revoke {
                let (_, closed) = handle.replace_revoking(policy);
                eprintln!(
                    "capnet: policy reloaded; closed {closed} listener(s) and connection(s) it refuses"
                );
            } else {
                handle.replace(policy);
            }
        }
        Err(e) => eprintln!("error: policy not reloaded, the one in force stays: {e}"),
    }
}
