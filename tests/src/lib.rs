//! Test support: the guests built from `guest/rust` (by this crate's build script) and from
//! `guest/python`, `guest/js` and `guest/c` (by `scripts/build-guests`), and a runner that starts
//! a guest on the capnet host in this process and talks to it over real loopback sockets.

use capnet::CapnetCtx;
use capnet::policy::{Policy, Verdict};
use capnet_cli::host::{self, CommandHost, Exit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How long a guest may take to start listening or to finish before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The path of a Rust guest component, e.g. `guest("echo-server")`, built on first use.
pub fn guest(name: &str) -> PathBuf {
    rust_guests().join(format!("{name}.wasm"))
}

/// The path of a Rust WASI preview 1 module, e.g. `p1_guest("p1-echo")`, built on first use.
pub fn p1_guest(name: &str) -> PathBuf {
    p1_guests().join(format!("{name}.wasm"))
}

/// The preview 1 modules of `guest/rust` (its `p1/` members, not default members).
const P1_GUESTS: [&str; 2] = ["p1-echo", "p1-tokio-echo"];

/// Builds the preview 1 modules of `guest/rust` for `wasm32-wasip1` once per test process and
/// returns where they are.
fn p1_guests() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let packages = P1_GUESTS.iter().flat_map(|name| ["-p", *name]);
            build_guests("wasm32-wasip1", packages)
        })
        .clone()
}

/// The `guest/rust` workspace of the running test's checkout (sources, not components).
pub fn rust_guest_dir() -> PathBuf {
    repo_root().join("guest/rust")
}

/// Builds `guest/rust` for `wasm32-wasip2` once per test process (a no-op when it is up to
/// date) and returns where the components are.
///
/// The repository is found from the running test's `CARGO_MANIFEST_DIR`, never from a path
/// baked in at compile time: checkouts that share a target directory share compiled tests.
fn rust_guests() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_guests("wasm32-wasip2", []))
        .clone()
}

/// Builds `packages` of `guest/rust` (its default members when none) for `target`, and
/// returns where they are.
fn build_guests<'a>(target: &str, packages: impl IntoIterator<Item = &'a str>) -> PathBuf {
    let guests = repo_root().join("guest/rust");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(&guests)
        .args(["build", "--release", "--locked", "--target", target])
        .args(packages)
        .arg("--target-dir")
        .arg(guests.join("target"));
    // The outer build's settings are for the host, not for the guests.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests in {} for {target} failed; is the target installed? (scripts/setup)",
        guests.display()
    );
    guests.join("target").join(target).join("release")
}

/// The repository the running test belongs to, found from its `CARGO_MANIFEST_DIR` at run
/// time, never from a path baked in at compile time: checkouts that share a target directory
/// share compiled tests.
fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("a working directory"));
    start
        .ancestors()
        .find(|dir| dir.join("guest/rust/Cargo.toml").is_file())
        .unwrap_or_else(|| panic!("no guest/rust above {}", start.display()))
        .to_path_buf()
}

/// The path of a guest that `scripts/build-guests` builds, e.g. `lang_guest("python",
/// "echo-server")` for `build/guests/python-echo-server.wasm`.
pub fn lang_guest(lang: &str, name: &str) -> PathBuf {
    build_dir().join(format!("guests/{lang}-{name}.wasm"))
}

/// The repository's git-ignored `build/` directory, where `scripts/build-guests` works.
fn build_dir() -> PathBuf {
    repo_root().join("build")
}

struct Runtime {
    engine: Engine,
    /// Each component, compiled, with its linker (a composed app's serves its libraries).
    components: Mutex<HashMap<PathBuf, (Component, Linker<CommandHost>)>>,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // The host's configuration plus wasmtime's compiled-code cache in build/, so the 18 MB
        // Python components compile once, not once per test binary and run.
        // One engine for guests of both generations: the tests run 0.3 guests too.
        let cache = build_dir().join("wasmtime-cache");
        let engine = host::engine_for(host::Abi::P3, Some(&cache)).expect("engine");
        Runtime {
            engine,
            components: Mutex::new(HashMap::new()),
        }
    })
}

/// The compiled component at `path` and its linker, made once per test process.
fn component(path: &Path) -> (Component, Linker<CommandHost>) {
    let rt = runtime();
    let mut cache = rt.components.lock().unwrap();
    cache
        .entry(path.to_path_buf())
        .or_insert_with(|| {
            let component = Component::from_file(&rt.engine, path).unwrap_or_else(|e| {
                panic!(
                    "cannot compile guest {}: {e:?}\n(the Python, JavaScript and C guests and \
                     the composed nano-process example are built by scripts/build-guests)",
                    path.display()
                )
            });
            let wasm = std::fs::read(path).expect("the guest was just compiled");
            let composition = capnet::Composition::read(&wasm).expect("composition");
            let (linker, _) = host::linker_for(&rt.engine, &composition).expect("linker");
            (component, linker)
        })
        .clone()
}

/// The names the component at `path` exports (`wasi:cli/run@0.3.0`, ...), from the compiled
/// copy the runner uses.
pub fn exports(path: &Path) -> Vec<String> {
    let (component, _) = component(path);
    component
        .component_type()
        .exports(&runtime().engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// A policy from `(verdict, use word, target)` rules, e.g. `(Verdict::Allow, "listen", "127.0.0.1:0")`.
pub fn policy(rules: &[(Verdict, &str, &str)]) -> Policy {
    let mut builder = Policy::builder();
    for (verdict, word, target) in rules {
        builder = builder.rule(*verdict, word, target).expect("test rule");
    }
    builder.build()
}

/// A guest running on the capnet host in this process.
pub struct Running {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    task: JoinHandle<Exit>,
    memory: host::GuestMemory,
}

/// What a finished guest left behind.
#[derive(Debug)]
pub struct Finished {
    /// Its exit code (a trap fails the test).
    pub code: i32,
    /// All it wrote to stdout.
    pub stdout: String,
    /// All it wrote to stderr.
    pub stderr: String,
}

impl Running {
    /// Starts Rust guest `name` with `args` (argv[0] is the guest's name) under `capnet`.
    pub fn start(name: &str, args: &[&str], capnet: CapnetCtx) -> Running {
        Self::start_path(&guest(name), args, capnet)
    }

    /// Starts the guest component at `path` with `args` under `capnet`; argv[0] is the file's
    /// name without `.wasm`.
    pub fn start_path(path: &Path, args: &[&str], capnet: CapnetCtx) -> Running {
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stdout = MemoryOutputPipe::new(1 << 20);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&name)
            .args(args)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        let host = CommandHost::new(wasi.build(), capnet);
        let memory = host.guest_memory();
        let (component, linker) = component(path);
        let task = tokio::spawn(async move {
            host::run_command(&runtime().engine, &linker, &component, host).await
        });
        Running {
            stdout,
            stderr,
            task,
            memory,
        }
    }

    /// The host's memory now, in bytes: what this process holds resident, less the guest's
    /// linear memory (the guest's own, counted at its size). Only a test that is alone in its
    /// process can compare two of these.
    pub fn host_memory(&self) -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let resident_kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        resident_kib * 1024 - self.memory.bytes() as i64
    }

    /// Waits for a line of stdout that starts with `prefix` and returns the rest of it.
    pub async fn line(&self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(rest) = self
                .stdout()
                .lines()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            {
                return rest;
            }
            assert!(
                !self.task.is_finished(),
                "guest ended before printing {prefix:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "guest did not print {prefix:?} in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Everything the guest wrote to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }

    /// Everything the guest wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// Waits for the guest's `listening on ADDR` line and returns ADDR.
    pub async fn listening(&self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(addr) = self
                .stdout()
                .lines()
                .find_map(|l| l.strip_prefix("listening on "))
            {
                return addr.trim().parse().expect("guest printed an address");
            }
            assert!(
                !self.task.is_finished(),
                "guest ended before listening; stderr:\n{}",
                self.stderr()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "guest did not listen in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends the guest where it is, as a host ending its instance would: its store, and every
    /// call it had in flight, are dropped.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits for the guest to end; a trap fails the test.
    pub async fn finish(self) -> Finished {
        let stderr = self.stderr.clone();
        match self.end().await {
            Ok(finished) => finished,
            Err(trap) => panic!("guest trapped: {trap:?}\nstderr:\n{}", contents(&stderr)),
        }
    }

    /// Waits for a guest that must trap to end, and returns its trap.
    pub async fn trapped(self) -> wasmtime::Error {
        match self.end().await {
            Ok(finished) => panic!("the guest did not trap: {finished:?}"),
            Err(trap) => trap,
        }
    }

    /// Waits for the guest to end: how it exited, or its trap.
    async fn end(self) -> Result<Finished, wasmtime::Error> {
        let exit = tokio::time::timeout(PATIENCE, self.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "guest did not finish in time; stderr:\n{}",
                    String::from_utf8_lossy(&self.stderr.contents())
                )
            })
            .expect("guest task");
        match exit {
            Exit::Code(code) => Ok(Finished {
                code,
                stdout: contents(&self.stdout),
                stderr: contents(&self.stderr),
            }),
            Exit::Trap(trap) => Err(trap),
        }
    }
}

fn contents(pipe: &MemoryOutputPipe) -> String {
    String::from_utf8_lossy(&pipe.contents()).into_owned()
}

/// How many network sockets (TCP, UDP) this process holds open: its `/proc/self/fd` entries
/// that are sockets, less the Unix and netlink ones (not the host's to close; a child process
/// may leave some behind). A socket closed by the peer still counts until its fd is closed.
/// The host runs in the test's process, so this counts the host's sockets and the test's
/// own; a test that compares counts must be the only one running in its binary.
pub fn open_sockets() -> usize {
    let mut local = std::collections::HashSet::new();
    for (table, column) in [("unix", 6), ("netlink", 9)] {
        let text = std::fs::read_to_string(format!("/proc/self/net/{table}")).unwrap_or_default();
        // The first line is the header.
        local.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(column).map(str::to_owned)),
        );
    }
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|inode| !local.contains(inode))
        })
        .count()
}

/// A capnet context with `policy` and nothing pre-opened.
pub fn ctx(policy: Policy) -> CapnetCtx {
    CapnetCtx::builder().policy(policy).build()
}

/// A native server that answers one connection with `pong:` and what it read; the task
/// returns how many bytes it read.
pub async fn pong_server() -> (SocketAddr, JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        stream.write_all(b"pong:").await.unwrap();
        stream.write_all(&request).await.unwrap();
        request.len()
    });
    (addr, task)
}

/// Asserts that no connection reached `listener`: a refused connect never left the host.
pub async fn assert_unreached(listener: &tokio::net::TcpListener) {
    let reached = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(reached.is_err(), "no connection may reach the listener");
}

/// Bytes that look random (xorshift), reproducible from `seed`, for integrity checks.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A file of an OCI image's root file system: its path in the image, its bytes.
pub type ImageFile<'a> = (&'a str, &'a [u8]);

/// Writes an OCI image archive, as `ctr images import` reads it, to `out`: an image named
/// `name` for this machine's platform whose one layer holds `files` (parent directories
/// included) and whose process is `entrypoint`, its file executable. Built by runwasi's
/// `oci-tar-builder`, the layer by the `tar` crate.
///
/// # Panics
/// When a file cannot be written next to `out`.
pub fn oci_image(name: &str, files: &[ImageFile<'_>], entrypoint: &[&str], out: &Path) {
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder, RootFsBuilder};
    use std::collections::BTreeSet;

    let layer = out.with_extension("layer.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&layer).expect("create the layer"));
    let directories: BTreeSet<&Path> = files
        .iter()
        .flat_map(|(path, _)| Path::new(path.trim_start_matches('/')).ancestors().skip(1))
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    for dir in directories {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())
            .expect("a directory entry");
    }
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(if entrypoint.first() == Some(path) {
            0o755
        } else {
            0o644
        });
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, path.trim_start_matches('/'), *bytes)
            .expect("a file entry");
    }
    tar.into_inner()
        .and_then(|mut f| std::io::Write::flush(&mut f))
        .expect("write the layer");

    let diff_id = format!(
        "sha256:{}",
        sha256::try_digest(layer.as_path()).expect("digest the layer")
    );
    let config = ImageConfigurationBuilder::default()
        .config(
            ConfigBuilder::default()
                .entrypoint(entrypoint.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .expect("an image config"),
        )
        .rootfs(
            RootFsBuilder::default()
                .diff_ids(vec![diff_id])
                .build()
                .expect("a rootfs"),
        )
        .build()
        .expect("an image configuration");
    let mut builder = oci_tar_builder::Builder::default();
    builder
        .add_config(config, name.to_owned())
        .add_layer(&layer);
    builder
        .build(std::fs::File::create(out).expect("create the image archive"))
        .expect("build the image archive");
    std::fs::remove_file(&layer).expect("remove the layer");
}

/// The media type of a component layer in the OCI layout of WebAssembly artifacts (what `wkg oci
/// push` writes; runwasi also takes `application/vnd.bytecodealliance.wasm.component.layer.v0+wasm`).
pub const WASM_LAYER: &str = "application/wasm";

/// The media type of capnet's policy layer: a policy file's TOML.
pub const POLICY_LAYER: &str = "application/vnd.capnet.policy.v1+toml";

/// A layer of a wasm OCI image: its media type, the file name it carries
/// (`org.opencontainers.image.title`) and its bytes.
pub type WasmImageLayer<'a> = (&'a str, &'a str, &'a [u8]);

/// Writes an OCI image archive, as `ctr images import` reads it, to `out`: an image named `name`
/// whose layers are `layers` themselves (a component, a policy), not file systems, and whose
/// process is `entrypoint`.
///
/// The configuration is an OCI image configuration for the platform `wasip2`/`wasm` (runwasi
/// looks for the architecture `wasm`) with no diff ids: its root file system has no layer, so
/// containerd 1.6 gives a container an empty snapshot and never tries to unpack a layer it
/// has no processor for. It lists the layers' digests (`layerDigests`) so that it is the
/// image's own: the CRI plugin takes an image's configuration digest for the image's id. Import it with `--no-unpack` (an unpack would find the layers and the
/// empty root file system mismatched) and `--all-platforms` (the platform is not the node's).
///
/// Returns the layers' digests (`sha256:...`), in order.
///
/// # Panics
/// When the archive cannot be written.
pub fn wasm_oci_image(
    name: &str,
    layers: &[WasmImageLayer<'_>],
    entrypoint: &[&str],
    out: &Path,
) -> Vec<String> {
    use oci_spec::image::{
        Arch, ConfigBuilder, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
        ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
    };
    use std::collections::HashMap;

    let mut tar = tar::Builder::new(std::fs::File::create(out).expect("create the archive"));
    let mut add = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, path, bytes)
            .expect("an archive entry");
    };
    let mut blob = |bytes: &[u8], media_type: MediaType| {
        let digest = sha256::digest(bytes);
        add(&format!("blobs/sha256/{digest}"), bytes);
        DescriptorBuilder::default()
            .media_type(media_type)
            .digest(format!("sha256:{digest}"))
            .size(bytes.len() as i64)
    };
    let layers: Vec<_> = layers
        .iter()
        .map(|(media_type, title, bytes)| {
            blob(bytes, MediaType::Other((*media_type).to_owned()))
                .annotations(HashMap::from([(
                    "org.opencontainers.image.title".to_owned(),
                    (*title).to_owned(),
                )]))
                .build()
                .expect("a layer descriptor")
        })
        .collect();
    let digests: Vec<String> = layers.iter().map(|l| l.digest().clone()).collect();
    let (os, architecture) = (Os::Other("wasip2".into()), Arch::Wasm);
    let config = ImageConfigurationBuilder::default()
        .os(os.clone())
        .architecture(architecture.clone())
        .config(
            ConfigBuilder::default()
                .entrypoint(entrypoint.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .expect("an image config"),
        )
        .rootfs(RootFsBuilder::default().build().expect("a rootfs"))
        .build()
        .expect("an image configuration");
    // The CRI plugin names an image by its configuration's digest: without diff ids, two images
    // of one entry point would be one. The layers' digests make each image's configuration its
    // own, under the name the OCI layout of WebAssembly artifacts gives them.
    let mut config = serde_json::to_value(&config).expect("the configuration's JSON");
    config["layerDigests"] = digests.iter().map(|d: &String| d.as_str()).collect();
    let config = config.to_string();
    let config = blob(config.as_bytes(), MediaType::ImageConfig)
        .build()
        .expect("the configuration's descriptor");
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .expect("a manifest")
        .to_string()
        .expect("the manifest's JSON");
    let reference = name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
    let manifest = blob(manifest.as_bytes(), MediaType::ImageManifest)
        .platform(
            PlatformBuilder::default()
                .os(os)
                .architecture(architecture)
                .build()
                .expect("a platform"),
        )
        .annotations(HashMap::from([
            ("io.containerd.image.name".to_owned(), name.to_owned()),
            (
                "org.opencontainers.image.ref.name".to_owned(),
                reference.to_owned(),
            ),
        ]))
        .build()
        .expect("the manifest's descriptor");
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest])
        .build()
        .expect("an index")
        .to_string()
        .expect("the index's JSON");
    add("index.json", index.as_bytes());
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    tar.into_inner()
        .and_then(|mut f| std::io::Write::flush(&mut f))
        .expect("write the archive");
    digests
}

/// A TCP server at `ip`, port 0, that reads each request to its end, answers `reply` and counts
/// the connections it got: what reached it, for tests that show what did not.
///
/// # Panics
/// When no port can be bound at `ip`.
pub fn counting_server(
    ip: std::net::IpAddr,
    reply: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind a counting server");
    let addr = listener.local_addr().expect("its address");
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let _ = stream.read_to_end(&mut request);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (addr, count)
}

/// Whether the tests run as root (containerd and network namespaces need it).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Whether an overlay mount works in `dir` (not in every container a test may run in);
/// containerd's native snapshotter serves where it does not.
///
/// # Panics
/// When the probe's directories cannot be made in `dir`.
pub fn overlay_works(dir: &Path) -> bool {
    use std::process::{Command, Stdio};

    let probe = dir.join("overlay-probe");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| probe.join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).expect("make the overlay probe's directories");
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let _ = Command::new("umount").arg(&merged).status();
    }
    let _ = std::fs::remove_dir_all(&probe);
    mounted
}

/// The body `curl` gets from `url`.
///
/// # Panics
/// When curl is missing or the request fails.
pub fn curl(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", url])
        .output()
        .expect("curl is installed (scripts/setup)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("curl's answer is text")
}
