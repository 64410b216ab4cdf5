//! Running a `wasi:cli/command` component with capnet's sockets and `wasmtime-wasi`'s rest.

use crate::activation::ActivatedListeners;
use capnet::p1::{P1Ctx, P1CtxView, P1View};
use capnet::policy::Policy;
use capnet::{CapnetCtx, CapnetCtxBuilder, CapnetCtxView, CapnetView};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Cache, CacheConfig, Engine, Module, ResourceLimiter, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

/// The store data of one command instance.
pub struct CommandHost {
    wasi: WasiCtx,
    capnet: CapnetCtx,
    table: ResourceTable,
    memory: GuestMemory,
}

impl CommandHost {
    /// A host with the given WASI and capnet contexts.
    pub fn new(wasi: WasiCtx, capnet: CapnetCtx) -> Self {
        Self {
            wasi,
            capnet,
            table: ResourceTable::new(),
            memory: GuestMemory::default(),
        }
    }

    /// What the guest's linear memories take, readable from any thread while it runs.
    pub fn guest_memory(&self) -> GuestMemory {
        self.memory.clone()
    }
}

/// The size of a guest's linear memories, kept as they grow: the guest's own heap, which lives
/// in the host process's memory but is not the host's to free. wasmtime tells it (as the store's
/// [`ResourceLimiter`], which limits nothing) when a memory is created or grows, never on a
/// load or store; wasm memories do not shrink.
#[derive(Clone, Default)]
pub struct GuestMemory {
    bytes: Arc<AtomicUsize>,
    /// The last growth allowed, taken back if wasmtime reports that it failed.
    last: usize,
}

impl GuestMemory {
    /// The bytes of all the guest's linear memories (a composed app has one per module).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl ResourceLimiter for GuestMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A memory being created grows from 0.
        self.last = desired.saturating_sub(current);
        self.bytes.fetch_add(self.last, Ordering::Relaxed);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.bytes.fetch_sub(self.last, Ordering::Relaxed);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for CommandHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CapnetView for CommandHost {
    fn capnet(&mut self) -> CapnetCtxView<'_> {
        CapnetCtxView {
            ctx: &mut self.capnet,
            table: &mut self.table,
        }
    }
}

/// On each SIGUSR1, prints the guest's memory beside the process's to stderr:
/// `capnet: guest memory 1088 KiB, process resident 24016 KiB`. What the guest holds in its
/// linear memory is its own; the rest of what is resident is the host's. Runs as a task of the
/// current tokio runtime, so it answers whenever the guest waits (a guest that computes
/// without waiting holds it back), with no thread of its own.
///
/// # Errors
/// When the signal cannot be registered; must be called within a tokio runtime.
pub fn print_memory_on_sigusr1(memory: GuestMemory) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut signals = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            eprintln!("capnet: {}", memory_line(&memory));
        }
    });
    Ok(())
}

/// `guest memory N KiB, process resident M KiB` (without the second part where /proc has no
/// `VmRSS`).
pub fn memory_line(memory: &GuestMemory) -> String {
    let guest = memory.bytes() / 1024;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().to_owned());
    match resident {
        Some(kib) => format!("guest memory {guest} KiB, process resident {kib} KiB"),
        None => format!("guest memory {guest} KiB"),
    }
}

/// Which component ABI an engine takes: WASI 0.2 components only, or 0.3 ones too.
///
/// They are two engines because enabling the component model's async ABI, which 0.3 needs,
/// slows every 0.2 host call (a 1-byte ping-pong under `capnet run` loses about a tenth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    /// WASI 0.2: synchronous calls, `wasi:io` streams.
    P2,
    /// WASI 0.3 as well: async functions, `stream` and `future`.
    P3,
}

/// The engine capnet runs 0.2 components with ([`engine_for`] for 0.3).
///
/// # Errors
/// When wasmtime rejects the configuration.
pub fn engine() -> wasmtime::Result<Engine> {
    Engine::new(&config())
}

/// The engine configuration [`engine`] uses, for embedders that add to it.
pub fn config() -> wasmtime::Config {
    config_for(Abi::P2)
}

/// The engine configuration for components of `abi`.
pub fn config_for(abi: Abi) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // A composed app's libraries import `instance-network` under labels of their own, marked
    // with `(implements "wasi:sockets/instance-network")`.
    config.wasm_component_model_implements(true);
    // WASI 0.3 components: async functions, streams and futures. A 0.2 engine also leaves out
    // the store's bookkeeping for them, which wasmtime otherwise does on every host call.
    config.wasm_component_model_async(abi == Abi::P3);
    config.concurrency_support(abi == Abi::P3);
    config
}

/// The engine of [`engine`], keeping compiled code in `dir` (created if missing), so a component
/// compiles once per wasmtime build and configuration and later starts load it from disk.
///
/// # Errors
/// When `dir` cannot be created or wasmtime rejects the configuration.
pub fn engine_with_cache(dir: &Path) -> wasmtime::Result<Engine> {
    engine_for(Abi::P2, Some(dir))
}

/// An engine for components of `abi`, keeping compiled code in `cache` when given.
///
/// # Errors
/// When the cache directory cannot be created or wasmtime rejects the configuration.
pub fn engine_for(abi: Abi, cache: Option<&Path>) -> wasmtime::Result<Engine> {
    let mut config = config_for(abi);
    if let Some(dir) = cache {
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(Cache::new(cache)?));
    }
    Engine::new(&config)
}

/// Where `capnet run` keeps compiled code unless told otherwise: `$CAPNET_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/capnet`, else `$HOME/.cache/capnet`; `None` when none of them is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("CAPNET_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("capnet")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("capnet")))
}

/// A linker with the full WASI 0.2 world and capnet's 0.2 sockets, and on an engine for 0.3
/// components ([`engine_for`] with [`Abi::P3`]) the 0.3 world and sockets too.
///
/// # Errors
/// When an interface cannot be defined.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CommandHost>> {
    let mut linker = Linker::new(engine);
    capnet::add_to_linker_with_wasi(&mut linker)?;
    if takes_async_abi(engine) {
        capnet::add_to_linker_with_wasi_p3(&mut linker)?;
    }
    Ok(linker)
}

/// Whether `engine` serves WASI 0.3's async functions: a 0.2 engine ([`config_for`]) has no
/// concurrency support, and no 0.3 component loads on it, so its linkers leave 0.3 out.
fn takes_async_abi(engine: &Engine) -> bool {
    Linker::<()>::new(engine)
        .root()
        .func_wrap_concurrent("probe", |_, (): ()| Box::pin(async { Ok(()) }))
        .is_ok()
}

/// A linker for the component `composition` was read from ([`capnet::Composition::read`]):
/// [`linker`] plus each import that carries network authority served with the grant of the app
/// or library whose component receives it. Returns the libraries' names too.
///
/// # Errors
/// When an interface cannot be defined.
pub fn linker_for(
    engine: &Engine,
    composition: &capnet::Composition,
) -> wasmtime::Result<(Linker<CommandHost>, Vec<String>)> {
    let mut linker = linker(engine)?;
    capnet::add_composition_to_linker(&mut linker, composition)?;
    Ok((linker, composition.libraries().to_vec()))
}

/// What a file holds that capnet runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmKind {
    /// A component (WASI 0.2 or 0.3).
    Component,
    /// A core module: a WASI preview 1 program, if [`check_is_preview1_command`] says so.
    CoreModule,
}

/// Says what `wasm` is, or refuses, saying what it is instead, a file capnet does not run:
/// text, or anything without WebAssembly's magic number. The message follows the file's name.
///
/// # Errors
/// When `wasm` is neither a component nor a core module binary.
pub fn check_wasm(wasm: &[u8]) -> Result<WasmKind, String> {
    const MAGIC: &[u8] = b"\0asm";
    match wasm.get(..8) {
        Some([b'\0', b'a', b's', b'm', _, _, 1, 0]) => Ok(WasmKind::Component),
        Some([b'\0', b'a', b's', b'm', 1, 0, 0, 0]) => Ok(WasmKind::CoreModule),
        _ if wasm.is_empty() => Err("is empty, not a WebAssembly component".to_owned()),
        _ if !wasm.starts_with(MAGIC) && std::str::from_utf8(wasm).is_ok() => {
            let text = String::from_utf8_lossy(wasm);
            let what = if text.trim_start().starts_with('(') {
                "WebAssembly text; capnet runs binary components (`wasm-tools parse` makes one)"
            } else {
                "text, not a WebAssembly component"
            };
            Err(format!("is {what}"))
        }
        _ => Err("is not a WebAssembly component (no \\0asm header of a component)".to_owned()),
    }
}

/// Refuses a core module capnet run cannot start: one that is not WASI preview 1 (it imports
/// nothing from `wasi_snapshot_preview1`), one that imports something else too (wasi-threads,
/// WASIX, a shared memory), naming each such import, or one with no `_start`.
///
/// # Errors
/// Saying which of those it is; the message follows the file's name.
pub fn check_is_preview1_command(module: &Module) -> Result<(), String> {
    if !capnet::p1::is_preview1(module) {
        return Err(
            "is a core WebAssembly module that is not WASI preview 1 (it imports nothing from \
             wasi_snapshot_preview1): capnet runs components, and preview 1 modules as Rust's \
             wasm32-wasip1 target builds them"
                .to_owned(),
        );
    }
    let unserved = capnet::p1::unserved_imports(module);
    if !unserved.is_empty() {
        return Err(format!(
            "imports {}, which capnet does not serve: a preview 1 module is given \
             wasi_snapshot_preview1 only (no wasi-threads, WASIX or other extension)",
            unserved.join(", ")
        ));
    }
    if !module.exports().any(|export| export.name() == "_start") {
        return Err(
            "is a preview 1 module with no _start export: capnet run starts commands, as Rust's \
             `fn main` on wasm32-wasip1 builds them"
                .to_owned(),
        );
    }
    Ok(())
}

/// Refuses a component capnet run cannot start: one that exports no `wasi:cli/run`.
///
/// # Errors
/// When `component` exports neither `wasi:cli/run@0.2.x` nor `@0.3.x`.
pub fn check_is_command(engine: &Engine, component: &Component) -> Result<(), String> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports
        .iter()
        .any(|name| name.starts_with("wasi:cli/run@0."))
    {
        return Ok(());
    }
    let list = if exports.is_empty() {
        "nothing".to_owned()
    } else {
        exports.join(", ")
    };
    Err(format!(
        "exports {list}, not wasi:cli/run (0.2 or 0.3): capnet run starts commands, as Rust's \
         `fn main` on wasm32-wasip2 builds them"
    ))
}

/// Compiles `wasm` (or loads it from the engine's cache). With `progress`, a compile that takes
/// more than a second says so on stderr, and how long it took, on one line.
///
/// # Errors
/// When the engine refuses the component.
pub fn compile(
    engine: &Engine,
    wasm: &[u8],
    name: &str,
    progress: bool,
) -> wasmtime::Result<Component> {
    announced(name, progress, || Component::new(engine, wasm))
}

/// [`compile`] for a core module (a preview 1 program).
///
/// # Errors
/// When the engine refuses the module.
pub fn compile_module(
    engine: &Engine,
    wasm: &[u8],
    name: &str,
    progress: bool,
) -> wasmtime::Result<Module> {
    announced(name, progress, || Module::new(engine, wasm))
}

/// Runs `compile`; with `progress`, says on stderr when it takes more than a second.
fn announced<T>(
    name: &str,
    progress: bool,
    compile: impl FnOnce() -> wasmtime::Result<T>,
) -> wasmtime::Result<T> {
    if !progress {
        return compile();
    }
    let started = std::time::Instant::now();
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let name = name.to_owned();
    let announcer = std::thread::spawn(move || {
        let slow = waiting
            .recv_timeout(std::time::Duration::from_secs(1))
            .is_err();
        if slow {
            eprint!(
                "capnet: compiling {name} (a first start; later starts load it from the cache)..."
            );
        }
        slow
    });
    let compiled = compile();
    let _ = done.send(());
    if announcer.join().unwrap_or(false) {
        match &compiled {
            Ok(_) => eprintln!(" {:.1} s", started.elapsed().as_secs_f64()),
            Err(_) => eprintln!(" failed"),
        }
    }
    compiled
}

/// How a command ended.
#[derive(Debug)]
pub enum Exit {
    /// `wasi:cli/run` returned, or the guest called `exit`: the exit code.
    Code(i32),
    /// The guest trapped (or its instantiation failed).
    Trap(wasmtime::Error),
}

/// Whether `component` is a WASI 0.3 command: it exports `wasi:cli/run@0.3.x`. A Rust std
/// program may export `run@0.2.0` too (std's start-up code), whose `main` is then empty: the
/// 0.3 export is the program.
pub fn is_p3_command(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with("wasi:cli/run@0.3"))
}

/// Instantiates `component` as a command, of WASI 0.3 when it exports `wasi:cli/run@0.3.x`
/// and of 0.2 otherwise, and runs it to the end.
pub async fn run_command(
    engine: &Engine,
    linker: &Linker<CommandHost>,
    component: &Component,
    host: CommandHost,
) -> Exit {
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.memory);
    let result = if is_p3_command(engine, component) {
        async {
            let command = wasmtime_wasi::p3::bindings::Command::instantiate_async(
                &mut store, component, linker,
            )
            .await?;
            store
                .run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await)
                .await?
        }
        .await
    } else {
        async {
            let command = Command::instantiate_async(&mut store, component, linker).await?;
            command.wasi_cli_run().call_run(&mut store).await
        }
        .await
    };
    match result {
        Ok(Ok(())) => Exit::Code(0),
        Ok(Err(())) => Exit::Code(1),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => Exit::Code(exit.0),
            None => Exit::Trap(error),
        },
    }
}

/// The store data of one preview 1 module: `wasmtime-wasi`'s preview 1 and capnet's sockets.
pub struct ModuleHost {
    wasi: WasiP1Ctx,
    sockets: P1Ctx,
    memory: GuestMemory,
}

impl ModuleHost {
    /// A host with the given contexts.
    pub fn new(wasi: WasiP1Ctx, sockets: P1Ctx) -> Self {
        Self {
            wasi,
            sockets,
            memory: GuestMemory::default(),
        }
    }

    /// What the module's linear memory takes, readable from any thread while it runs.
    pub fn guest_memory(&self) -> GuestMemory {
        self.memory.clone()
    }
}

impl P1View for ModuleHost {
    fn p1(&mut self) -> P1CtxView<'_> {
        P1CtxView {
            wasi: &mut self.wasi,
            capnet: &mut self.sockets,
        }
    }
}

/// A linker for preview 1 modules: `wasmtime-wasi`'s preview 1 with capnet's sockets.
///
/// # Errors
/// When a function cannot be defined.
pub fn module_linker(engine: &Engine) -> wasmtime::Result<wasmtime::Linker<ModuleHost>> {
    let mut linker = wasmtime::Linker::new(engine);
    capnet::p1::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Instantiates a preview 1 module and runs its `_start` to the end.
pub async fn run_module(
    engine: &Engine,
    module: &wasmtime::InstancePre<ModuleHost>,
    host: ModuleHost,
) -> Exit {
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.memory);
    let result = async {
        let instance = module.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    }
    .await;
    match result {
        Ok(()) => Exit::Code(0),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => Exit::Code(exit.0),
            None => Exit::Trap(error),
        },
    }
}

/// Pre-opens a listener for each `ADDR[=GUEST]` or `NAME[=GUEST]` of `specs` (`source` names
/// the flag or variable they came from, for messages): a socket the service manager passed
/// (`activated`) at ADDR, or by that NAME, stands for the bind. What `specs` does not name of
/// `activated` is handed to the guest at its own address.
///
/// They are handed over in the order `wasmtime run` numbers a preview 1 module's sockets from
/// descriptor 3: the service manager's in its order (`LISTEN_FDS`), then those bound for
/// `specs`, in the order given.
///
/// # Errors
/// A spec that does not parse, an address that cannot be bound, a name nothing was passed as.
pub fn preopen_listeners(
    mut capnet: CapnetCtxBuilder,
    source: &str,
    specs: &[String],
    mut activated: ActivatedListeners,
) -> wasmtime::Result<CapnetCtxBuilder> {
    // (the passed descriptor, if it was passed; the listener; the guest's address for it)
    let mut preopens = Vec::new();
    for spec in specs {
        let (from, guest_addr) = parse_tcplisten(source, spec)?;
        let (listener, bound, passed) = match from {
            // A socket the service manager passed at that address stands for the bind.
            ListenSource::Addr(host_addr) => match activated.take_at(host_addr) {
                Some(a) => {
                    let fd = (a.fd, a.describe());
                    (a.listener, a.addr, Some(fd))
                }
                None => {
                    let listener = std::net::TcpListener::bind(host_addr).map_err(|e| {
                        wasmtime::format_err!("{source} {spec}: cannot bind {host_addr}: {e}")
                    })?;
                    let bound = listener.local_addr()?;
                    (listener, bound, None)
                }
            },
            ListenSource::Name(name) => {
                let a = activated
                    .take_named(name)
                    .map_err(|e| wasmtime::format_err!("{source} {spec}: {e}"))?;
                let fd = (a.fd, a.describe());
                (a.listener, a.addr, Some(fd))
            }
        };
        let guest_addr = guest_addr.unwrap_or(bound);
        match &passed {
            Some((_, fd)) => {
                tracing::info!(target: "capnet::cli", "pre-opened listener on {bound} ({fd} from the service manager) for the guest as {guest_addr}")
            }
            None => {
                tracing::info!(target: "capnet::cli", "pre-opened listener on {bound} for the guest as {guest_addr}")
            }
        }
        preopens.push((passed.map(|(fd, _)| fd), listener, Some(guest_addr)));
    }
    // What no spec named, the guest knows by its own address.
    for a in activated.into_rest() {
        tracing::info!(target: "capnet::cli", "pre-opened listener on {} ({} from the service manager) for the guest as {}", a.addr, a.describe(), a.addr);
        preopens.push((Some(a.fd), a.listener, None));
    }
    // Passed ones first, by descriptor; the sort is stable, so bound ones keep their order.
    preopens.sort_by_key(|(fd, _, _)| fd.unwrap_or(i32::MAX));
    for (_, listener, guest_addr) in preopens {
        capnet = capnet.tcp_listener(listener, guest_addr)?;
    }
    Ok(capnet)
}

/// Where a pre-opened listener comes from.
enum ListenSource<'a> {
    /// Bound at this address, or the passed socket listening there.
    Addr(SocketAddr),
    /// The passed socket of this `LISTEN_FDNAMES` name.
    Name(&'a str),
}

/// `ADDR`, `ADDR=GUEST_ADDR`, `NAME` or `NAME=GUEST_ADDR`.
fn parse_tcplisten<'a>(
    source: &str,
    spec: &'a str,
) -> wasmtime::Result<(ListenSource<'a>, Option<SocketAddr>)> {
    let parse = |s: &str| {
        s.parse::<SocketAddr>().map_err(|_| {
            wasmtime::format_err!(
                "{source} {spec}: {s:?} is not an IP socket address (write 127.0.0.1:8080 or [::1]:8080)"
            )
        })
    };
    let (host, guest) = match spec.split_once('=') {
        Some((host, guest)) => (host, Some(parse(guest)?)),
        None => (spec, None),
    };
    // A socket address has a ':'; a systemd file descriptor name never does.
    let from = match host.contains(':') {
        true => ListenSource::Addr(parse(host)?),
        false if !host.is_empty() => ListenSource::Name(host),
        false => return Err(parse(host).unwrap_err()),
    };
    Ok((from, guest))
}

/// Says, for each library of a composed app, whether `policy` gives it rules of its own (a
/// log line) or none, so that it gets no network (a warning on stderr naming `component`),
/// and warns of each library the policy names that the component does not have (see
/// [`unknown_libraries`]). `elsewhere(NAME)` names where else than a `[library.NAME]` table
/// the library's rules could come from (`--library-allow NAME=...`).
pub fn report_libraries(
    policy: &Policy,
    libraries: &[String],
    component: &str,
    elsewhere: impl Fn(&str) -> String,
) {
    for library in libraries {
        match policy.library(library) {
            Some(rules) => tracing::info!(
                target: "capnet::cli",
                "library {library}: its own {} rule(s), within the app's",
                rules.rules().len()
            ),
            None => eprintln!(
                "warning: {component}: library {library} has no [library.{library}] table nor {}: it gets no network",
                elsewhere(library)
            ),
        }
    }
    for warning in unknown_libraries(policy, libraries, component) {
        eprintln!("warning: {warning}");
    }
}

/// A warning for each library `policy` names (a `[library.NAME]` table, `--library-allow`,
/// `--library-limit`) that is not one of the component's `libraries`, with the names it
/// does have: a misspelt name would otherwise hold rules nothing is ever decided by.
pub fn unknown_libraries(policy: &Policy, libraries: &[String], component: &str) -> Vec<String> {
    let has = match libraries {
        [] => "it has no libraries".to_owned(),
        names => format!("its libraries: {}", names.join(", ")),
    };
    policy
        .libraries()
        .filter(|(name, _)| !libraries.iter().any(|l| l == name))
        .map(|(name, _)| {
            format!(
                "{component}: the policy names library {name}, which the component does not have ({has}): its rules decide nothing"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_naming_a_library_the_component_lacks_is_warned_of_with_the_names_it_has() {
        let policy = Policy::builder()
            .toml(
                "policy.toml",
                "[library.evl.allow]\nconnect = [\"127.0.0.1:1\"]\n[library.weather.allow]\nconnect = [\"127.0.0.1:2\"]\n",
            )
            .unwrap()
            .build();
        let libraries = ["metrics".to_owned(), "weather".to_owned()];
        assert_eq!(
            unknown_libraries(&policy, &libraries, "app.wasm"),
            [
                "app.wasm: the policy names library evl, which the component does not have (its libraries: metrics, weather): its rules decide nothing"
            ]
        );
        assert_eq!(
            unknown_libraries(&policy, &[], "client.wasm"),
            [
                "client.wasm: the policy names library evl, which the component does not have (it has no libraries): its rules decide nothing",
                "client.wasm: the policy names library weather, which the component does not have (it has no libraries): its rules decide nothing",
            ]
        );
    }
}
