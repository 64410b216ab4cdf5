//! The shim the way kubelet drives it: CRI calls to containerd's CRI plugin, which picks the
//! runtime from the pod's runtime handler `capnet`, configured as the README tells a node
//! operator. A containerd of the test's own (its root, state, socket, CNI configuration and
//! network in a temporary directory) runs pods whose sandbox is a static pause program and
//! whose containers are components, each pod in its own network namespace (CNI's bridge and
//! host-local IPAM, Debian's `containernetworking-plugins`) or on the host's; the test reads
//! what they print from the CRI log files, as `kubectl logs` does. Images of both kinds run:
//! root-fs images (a file system holding the component) and wasm images (the component and
//! its policy as layers of their own), the latter compiled at their first start only.
//!
//! Needs root, containerd, the CNI plugins and a C compiler with a static libc (`scripts/setup`
//! installs them); skipped, saying so, when not root. Every pod, process, mount, network
//! namespace, bridge and address the test makes is removed when it ends, pass or fail.

mod support;

use capnet_tests::{
    ImageFile, POLICY_LAYER, WASM_LAYER, WasmImageLayer, counting_server, curl, guest, is_root,
    lang_guest, wasm_oci_image,
};
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{Info, InfoRequest};
use containerd_client::tonic::transport::Channel;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, ImageStatusRequest, KeyValue, LinuxContainerConfig,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Containerd, PATIENCE};

/// The runtime handler of the README's containerd configuration and RuntimeClass.
const HANDLER: &str = "capnet";
/// The pod sandbox's image, built by the test.
const PAUSE_IMAGE: &str = "capnet.test/pause:1";
const HTTP_HELLO: &str = "capnet.test/http-hello:1";
const TCP_CLIENT: &str = "capnet.test/tcp-client:1";
/// Where the images keep their component.
const COMPONENT: &str = "/app.wasm";
/// The port the pod's server listens on, inside the pod's own network namespace.
const POD_PORT: u16 = 8080;

/// A node: containerd with its CRI plugin and CNI, of this test's own; dropping it removes
/// every pod, then containerd and all it made.
struct Node {
    containerd: Containerd,
    bridge: String,
    /// The pods' network and the host's address on it (the bridge's).
    gateway: Ipv4Addr,
    ip_forward: Option<String>,
    runtime: tokio::runtime::Runtime,
    cri: Option<RuntimeServiceClient<Channel>>,
}

impl Node {
    /// Starts a containerd for the test `test`, with the runtime handler [`HANDLER`] and a
    /// bridge network for pods. `None` when not root.
    fn start(test: &str) -> Option<Node> {
        if !is_root() {
            eprintln!(
                "skipped: the CRI test starts containerd, pods and networks, which needs root"
            );
            return None;
        }
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("capnet-cri-{pid}-{test}"));
        // A subnet and bridge of this node's own, so that two nodes (tests of this process or
        // of two runs) never meet: one node's cleanup must not take another's bridge.
        static NODES: AtomicUsize = AtomicUsize::new(0);
        let node = NODES.fetch_add(1, Ordering::SeqCst) as u32;
        let net = pid.wrapping_mul(8).wrapping_add(node) % (50 * 250);
        let subnet = [10, 200 + (net / 250) as u8, (net % 250) as u8];
        let gateway = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 1);
        let bridge = format!("cn{pid}-{node}");
        // The bridge plugin turns on IPv4 forwarding for its gateway: put it back after.
        let ip_forward = std::fs::read_to_string(IP_FORWARD).ok();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let containerd = Containerd::start(dir, &[], |dir, snapshotter| {
            let d = dir.display();
            std::fs::create_dir_all(dir.join("net.d")).unwrap();
            std::fs::write(
                dir.join("net.d/10-capnet.conflist"),
                format!(
                    r#"{{
  "cniVersion": "0.4.0",
  "name": "capnet-test",
  "plugins": [{{
    "type": "bridge",
    "bridge": "{bridge}",
    "isGateway": true,
    "ipMasq": false,
    "ipam": {{
      "type": "host-local",
      "ranges": [[{{ "subnet": "{}.{}.{}.0/24" }}]],
      "dataDir": "{d}/ipam"
    }}
  }}]
}}
"#,
                    subnet[0], subnet[1], subnet[2]
                ),
            )
            .unwrap();
            format!(
                r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  # Where the test itself runs in a container, a negative OOM score (the sandbox's -998) is
  # refused: keep every score at or above containerd's own.
  restrict_oom_score_adj = true
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "{snapshotter}"

# A node's configuration keeps runc, containerd's default runtime, beside capnet.
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capnet]
  runtime_type = "io.containerd.capnet.v1"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{d}/net.d"
"#
            )
        });
        let mut node = Node {
            containerd,
            bridge,
            gateway,
            ip_forward,
            runtime,
            cri: None,
        };
        let runtime = &node.runtime;
        let (cri, version) = node
            .containerd
            .wait_ready("containerd's CRI plugin", |containerd| {
                let socket = containerd.socket();
                let answer = runtime.block_on(async {
                    let channel = containerd_client::connect(&socket).await.ok()?;
                    let mut cri = RuntimeServiceClient::new(channel);
                    let version = cri.version(VersionRequest::default()).await.ok()?;
                    Some((cri, version.into_inner()))
                });
                if answer.is_none() {
                    let log = containerd.log();
                    assert!(
                        !log.contains("failed to load plugin io.containerd.grpc.v1.cri"),
                        "containerd's CRI plugin did not start:\n{log}"
                    );
                }
                answer
            });
        eprintln!(
            "CRI: {} {} (API {})",
            version.runtime_name, version.runtime_version, version.runtime_api_version
        );
        node.cri = Some(cri);
        Some(node)
    }

    /// All containerd has logged, its shims' lines included.
    fn log(&self) -> String {
        self.containerd.log()
    }

    fn cri(&self) -> RuntimeServiceClient<Channel> {
        self.cri.clone().expect("connected")
    }

    /// Waits until the CRI plugin knows the image `name`, just imported: it learns of images
    /// from containerd's events, after the import.
    fn wait_for_image(&self, name: &str) {
        let socket = self.containerd.socket();
        let deadline = Instant::now() + PATIENCE;
        let mut images = self.runtime.block_on(async {
            ImageServiceClient::new(containerd_client::connect(&socket).await.unwrap())
        });
        while self
            .runtime
            .block_on(images.image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: name.into(),
                    ..Default::default()
                }),
                verbose: false,
            }))
            .unwrap_or_else(|e| panic!("ImageStatus {name}: {e}"))
            .into_inner()
            .image
            .is_none()
        {
            assert!(Instant::now() < deadline, "the CRI plugin never saw {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Imports a wasm image named `name`: the component at `wasm` as its layer `app.wasm`, and
    /// `policy` (a file name and its TOML) as its policy layer. Returns the layers' digests.
    fn import_wasm_image(&self, name: &str, wasm: &Path, policy: (&str, &str)) -> Vec<String> {
        let wasm = std::fs::read(wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
        self.import_wasm_layers(
            name,
            &[
                (WASM_LAYER, "app.wasm", &wasm),
                (POLICY_LAYER, policy.0, policy.1.as_bytes()),
            ],
        )
    }

    /// Imports a wasm image named `name` whose layers are `layers`, as the README says: no
    /// unpacking (there is no file system to unpack), every platform (the image's,
    /// `wasip2`/`wasm`, is not the node's). Returns the layers' digests.
    fn import_wasm_layers(&self, name: &str, layers: &[WasmImageLayer<'_>]) -> Vec<String> {
        let archive = self.containerd.archive(name);
        let digests = wasm_oci_image(name, layers, &[COMPONENT], &archive);
        self.containerd.import_archive(
            CRI_NAMESPACE,
            &archive,
            &["--no-unpack", "--all-platforms"],
        );
        self.wait_for_image(name);
        digests
    }

    /// What containerd's content store knows of the blob `digest` (its size, its labels), as
    /// the CRI plugin and runwasi see it (the `k8s.io` namespace).
    fn content_info(&self, digest: &str) -> Info {
        let socket = self.containerd.socket();
        self.runtime.block_on(async {
            let channel = containerd_client::connect(&socket).await.unwrap();
            let mut request = containerd_client::tonic::Request::new(InfoRequest {
                digest: digest.into(),
            });
            request
                .metadata_mut()
                .insert("containerd-namespace", "k8s.io".parse().unwrap());
            ContentClient::new(channel)
                .info(request)
                .await
                .unwrap_or_else(|e| panic!("content info {digest}: {e}"))
                .into_inner()
                .info
                .expect("the blob's info")
        })
    }

    /// Builds the pause program and imports an image of it as [`PAUSE_IMAGE`].
    fn import_pause(&self) {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/pause.c");
        let binary = self.containerd.dir.join("pause");
        let out = Command::new("gcc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .expect("gcc is installed (scripts/setup)");
        assert!(
            out.status.success(),
            "gcc -static (scripts/setup installs libc6-dev): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pause = std::fs::read(&binary).unwrap();
        self.import_image(PAUSE_IMAGE, &[("/pause", &pause)], &["/pause"]);
    }

    /// Imports an image of the component at `wasm`, with no policy file: the pod's rules
    /// come from `CAPNET_RULES`, as the README's Pod gives them.
    fn import_component(&self, name: &str, wasm: &Path) {
        let wasm = std::fs::read(wasm).unwrap();
        self.import_image(name, &[(COMPONENT, &wasm)], &[COMPONENT]);
    }

    /// Imports an image `name` holding `files`, which runs `entrypoint`, where the CRI plugin
    /// keeps its images, and waits until the CRI plugin knows it.
    fn import_image(&self, name: &str, files: &[ImageFile<'_>], entrypoint: &[&str]) {
        self.containerd
            .import_image(CRI_NAMESPACE, name, files, entrypoint);
        self.wait_for_image(name);
    }

    /// RunPodSandbox with the handler [`HANDLER`], in a network namespace of its own or, for
    /// `host_network`, in the host's.
    fn run_pod(&self, name: &str, host_network: bool) -> Pod {
        let logs = self.containerd.dir.join("pods").join(name);
        // kubelet makes the pod's log directory; containerd writes the files in it.
        std::fs::create_dir_all(&logs).unwrap();
        let network = if host_network {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("{name}-uid"),
                namespace: "capnet-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: network as i32,
                        pid: NamespaceMode::Pod as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut cri = self.cri();
        let id = self
            .runtime
            .block_on(cri.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.into(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", self.log()))
            .into_inner()
            .pod_sandbox_id;
        let status = self
            .runtime
            .block_on(cri.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            }))
            .unwrap()
            .into_inner()
            .status
            .expect("a sandbox status");
        let ip = status
            .network
            .filter(|network| !network.ip.is_empty())
            .map(|network| network.ip.parse().expect("an IP address"));
        Pod {
            id,
            config,
            logs,
            ip,
        }
    }

    /// CreateContainer and StartContainer: `image` in `pod` as `name`, with the guest's
    /// `args` and the environment `env` (`KEY=VALUE`).
    fn start_container(
        &self,
        pod: &Pod,
        name: &str,
        image: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Container {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        };
        let mut cri = self.cri();
        let id = self
            .runtime
            .block_on(cri.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            }))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}\n{}", self.log()))
            .into_inner()
            .container_id;
        self.runtime
            .block_on(cri.start_container(StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", self.log()));
        Container {
            id,
            log: pod.logs.join(format!("{name}.log")),
        }
    }

    /// Starts `image` (the `http-hello` guest) in `pod` as container "web" listening on the
    /// pod's [`POD_PORT`], fetches its page from the host through the pod IP, and waits for it
    /// to end, successfully.
    fn serve_hello_on_pod_ip(&self, pod: &Pod, image: &str, env: &[(&str, &str)]) -> Finished {
        let ip = pod.ip.expect("a pod in its own network has an IP");
        let listen = format!("0.0.0.0:{POD_PORT}");
        let web = self.start_container(pod, "web", image, env, &[&listen, "1"]);
        assert_eq!(CriLog::wait_for_line(&web.log, "listening on "), listen);
        assert_eq!(
            curl(&format!("http://{ip}:{POD_PORT}/")),
            "hello from a capnet guest\n"
        );
        let web = self.finish(web);
        assert_eq!(web.exit_code, 0, "{:?}", web.log);
        web
    }

    /// Waits for `container` to exit, reads its log and removes it.
    fn finish(&self, container: Container) -> Finished {
        let mut cri = self.cri();
        let deadline = Instant::now() + PATIENCE;
        let exit_code = loop {
            let status = self
                .runtime
                .block_on(cri.container_status(ContainerStatusRequest {
                    container_id: container.id.clone(),
                    verbose: false,
                }))
                .unwrap()
                .into_inner()
                .status
                .expect("a container status");
            if status.state == ContainerState::ContainerExited as i32 {
                break status.exit_code;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not end: {:?}",
                CriLog::read(&container.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = CriLog::read(&container.log);
        self.runtime
            .block_on(cri.remove_container(RemoveContainerRequest {
                container_id: container.id,
            }))
            .unwrap();
        Finished { exit_code, log }
    }

    /// StopPodSandbox (which gives its address back to IPAM) and RemovePodSandbox.
    fn remove_pod(&self, id: &str) {
        let mut cri = self.cri();
        self.runtime
            .block_on(cri.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", self.log()));
        self.runtime
            .block_on(cri.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", self.log()));
    }
}

/// The containerd namespace where the CRI plugin keeps its images, pods and containers.
const CRI_NAMESPACE: &str = "k8s.io";
const CNI_BIN: &str = "/usr/lib/cni";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

impl Drop for Node {
    fn drop(&mut self) {
        // Pods a failed test left: stopping them releases their addresses and network
        // namespaces, removing them ends their shims.
        if let Some(mut cri) = self.cri.clone() {
            let pods = self
                .runtime
                .block_on(cri.list_pod_sandbox(ListPodSandboxRequest::default()))
                .map(|pods| pods.into_inner().items)
                .unwrap_or_default();
            for pod in pods {
                let _ = self
                    .runtime
                    .block_on(cri.stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: pod.id.clone(),
                    }));
                let _ = self
                    .runtime
                    .block_on(cri.remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: pod.id.clone(),
                    }));
                let _ = std::fs::remove_dir_all(
                    Path::new("/run/containerd/capnet/k8s.io").join(&pod.id),
                );
            }
        }
        // Snapshots and network namespaces still mounted are unmounted.
        self.containerd.stop();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(Stdio::null())
            .status();
        if let Some(value) = &self.ip_forward {
            let _ = std::fs::write(IP_FORWARD, value);
        }
        let _ = std::fs::remove_dir_all(&self.containerd.dir);
        // runwasi's state of the k8s.io namespace, containerd's shim sockets and CNI's cache of
        // results, when this test made the directories and nothing else is in them.
        for dir in [
            "/var/lib/cni/results",
            "/var/lib/cni",
            "/run/containerd/capnet/k8s.io",
            "/run/containerd/capnet",
            "/run/containerd/s",
            "/run/containerd",
        ] {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A pod sandbox: its id, the configuration it was made with (CreateContainer takes it
/// again), its log directory and its IP (none on the host's network).
struct Pod {
    id: String,
    config: PodSandboxConfig,
    logs: PathBuf,
    ip: Option<IpAddr>,
}

/// A started container and its CRI log file.
struct Container {
    id: String,
    log: PathBuf,
}

/// How a container ended, with its log.
struct Finished {
    exit_code: i32,
    log: CriLog,
}

impl Finished {
    /// Asserts the guest failed (exit code 1) and wrote each of `messages` to stderr.
    fn assert_failed_with(&self, messages: &[&str]) {
        assert_eq!(self.exit_code, 1, "{:?}", self.log);
        for message in messages {
            assert!(
                self.log.stderr.contains(message),
                "{message:?} is not in the CRI log: {:?}",
                self.log
            );
        }
    }
}

/// A CRI log file read back by stream, as `kubectl logs` shows it.
#[derive(Debug, Default)]
struct CriLog {
    stdout: String,
    stderr: String,
}

impl CriLog {
    /// Reads the file: one line per write, `TIME STREAM TAG MESSAGE`, where the tag `P` marks
    /// a partial line whose end comes in the next.
    fn read(path: &Path) -> CriLog {
        let mut log = CriLog::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let mut fields = line.splitn(4, ' ');
            let (Some(_time), Some(stream), Some(tag), message) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let out = match stream {
                "stdout" => &mut log.stdout,
                _ => &mut log.stderr,
            };
            out.push_str(message.unwrap_or_default());
            if tag != "P" {
                out.push('\n');
            }
        }
        log
    }

    /// Waits for a line of stdout that starts with `prefix` and returns the rest of it.
    fn wait_for_line(path: &Path, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = CriLog::read(path);
            if let Some(rest) = log.stdout.lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line {prefix:?} in the log: {log:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A pod with a network namespace of its own: its component listens on the pod IP and the
/// host reaches it there; what the pod's rules deny never leaves the pod; `loopback` is the
/// pod's own, not the host's.
#[test]
fn a_pod_s_component_serves_on_the_pod_ip_and_its_rules_hold_inside_the_pod() {
    let Some(node) = Node::start("pod-network") else {
        return;
    };
    node.import_pause();
    node.import_component(HTTP_HELLO, &guest("http-hello"));
    node.import_component(TCP_CLIENT, &guest("tcp-client"));

    let pod = node.run_pod("net", false);

    // The listener is made in the pod's namespace: the pod IP serves it.
    let rules = format!("[allow]\nlisten = [\"0.0.0.0:{POD_PORT}\"]\n");
    node.serve_hello_on_pod_ip(&pod, HTTP_HELLO, &[("CAPNET_RULES", &rules)]);

    // A server on the host's side of the pod network: the pod reaches it when its rules allow.
    let (server, accepted) = counting_server(node.gateway.into(), "from the host");
    let allowed = node.finish(node.start_container(
        &pod,
        "allowed",
        TCP_CLIENT,
        &[(
            "CAPNET_RULES",
            &format!("[allow]\nconnect = [\"{server}\"]\n"),
        )],
        &[&server.to_string(), "hi"],
    ));
    assert_eq!(allowed.exit_code, 0, "{:?}", allowed.log);
    assert_eq!(allowed.log.stdout.trim_end(), "from the host");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // ... and when they do not, the connect is refused inside the pod: nothing arrives.
    let denied = node.finish(node.start_container(
        &pod,
        "denied",
        TCP_CLIENT,
        &[("CAPNET_RULES", "[allow]\nconnect = [\"loopback\"]\n")],
        &[&server.to_string(), "hi"],
    ));
    // The decision is in the CRI log, and the guest saw the refusal.
    denied.assert_failed_with(&[
        &format!("denied tcp-connect {server}: access-denied"),
        &format!("error: connect {server}: access-denied"),
    ]);
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "nothing arrived");

    // `loopback` is the pod's: a server on the host's loopback is not there.
    let (host_loopback, host_accepted) =
        counting_server(Ipv4Addr::LOCALHOST.into(), "from the host's loopback");
    let loopback = node.finish(node.start_container(
        &pod,
        "loopback",
        TCP_CLIENT,
        &[("CAPNET_RULES", "[allow]\nconnect = [\"loopback\"]\n")],
        &[&host_loopback.to_string(), "hi"],
    ));
    loopback.assert_failed_with(&[&format!(
        "error: connect {host_loopback}: connection-refused"
    )]);
    assert_eq!(host_accepted.load(Ordering::SeqCst), 0);

    node.remove_pod(&pod.id);
}

/// A `hostNetwork` pod: its component's sockets are the host's, and a use its rules deny is
/// refused with the decision in its CRI log.
#[test]
fn a_host_network_pod_s_component_serves_on_the_host() {
    let Some(node) = Node::start("host-network") else {
        return;
    };
    node.import_pause();
    node.import_component(HTTP_HELLO, &guest("http-hello"));

    let pod = node.run_pod("host", true);
    assert_eq!(pod.ip, None, "{:?}", pod.ip);

    let web = node.start_container(
        &pod,
        "web",
        HTTP_HELLO,
        &[("CAPNET_RULES", "[allow]\nlisten = [\"127.0.0.1:0\"]\n")],
        &["127.0.0.1:0", "1"],
    );
    let addr = CriLog::wait_for_line(&web.log, "listening on ");
    assert_eq!(
        curl(&format!("http://{addr}/")),
        "hello from a capnet guest\n"
    );
    let web = node.finish(web);
    assert_eq!(web.exit_code, 0, "{:?}", web.log);

    // Rules that grant no listen: the bind is denied, and `kubectl logs` says so.
    let denied = node.finish(node.start_container(
        &pod,
        "denied",
        HTTP_HELLO,
        &[("CAPNET_RULES", "[allow]\nconnect = [\"loopback\"]\n")],
        &["127.0.0.1:0", "1"],
    ));
    denied.assert_failed_with(&["denied tcp-bind 127.0.0.1:0: access-denied"]);

    node.remove_pod(&pod.id);
}

/// A wasm image (its layers the component and its policy, no file system) as a pod's
/// container: the component serves on the pod IP under the policy layer's rules, the pod's
/// `CAPNET_RULES` add to them, a use they deny is refused with nothing arriving, and a bad
/// policy layer stops the container with the message `capnet policy check` prints for it; an
/// image of two components stops it too, saying the shim runs one.
#[test]
fn a_wasm_image_s_component_serves_in_a_pod_under_the_image_s_policy_layer() {
    let Some(node) = Node::start("wasm-image") else {
        return;
    };
    node.import_pause();
    let listen = format!("0.0.0.0:{POD_PORT}");
    let serve = format!("[allow]\nlisten = [\"{listen}\"]\n");
    node.import_wasm_image(
        "capnet.test/http-hello-wasm:1",
        &guest("http-hello"),
        ("policy.toml", &serve),
    );
    node.import_wasm_image(
        "capnet.test/tcp-client-wasm:1",
        &guest("tcp-client"),
        ("policy.toml", "[allow]\nconnect = [\"loopback\"]\n"),
    );
    let pod = node.run_pod("wasm", false);
    let web = node.serve_hello_on_pod_ip(&pod, "capnet.test/http-hello-wasm:1", &[]);
    assert!(
        web.log
            .stderr
            .contains("policy policy.toml (the image's policy layer): 2 rule(s)"),
        "{:?}",
        web.log
    );

    // The client's image allows `loopback` only: the host's side of the pod network is refused.
    let (server, accepted) = counting_server(node.gateway.into(), "from the host");
    let client = |name: &str, env: &[(&str, &str)]| {
        node.finish(node.start_container(
            &pod,
            name,
            "capnet.test/tcp-client-wasm:1",
            env,
            &[&server.to_string(), "hi"],
        ))
    };
    let denied = client("denied", &[]);
    denied.assert_failed_with(&[&format!("denied tcp-connect {server}: access-denied")]);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing arrived");

    // The pod's rules add to the image's.
    let rules = format!("[allow]\nconnect = [\"{server}\"]\n");
    let allowed = client("allowed", &[("CAPNET_RULES", &rules)]);
    assert_eq!(allowed.exit_code, 0, "{:?}", allowed.log);
    assert_eq!(allowed.log.stdout.trim_end(), "from the host");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A bad policy layer: the container ends before the guest runs, saying what is wrong where
    // `capnet policy check` would (the CLI's pinned message for the same file).
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/policies");
    let bad = std::fs::read_to_string(policies.join("reversed-port-range.toml")).unwrap();
    let expected = std::fs::read_to_string(policies.join("reversed-port-range.stderr")).unwrap();
    node.import_wasm_image(
        "capnet.test/http-hello-bad-policy:1",
        &guest("http-hello"),
        ("reversed-port-range.toml", &bad),
    );
    let refused = node.finish(node.start_container(
        &pod,
        "bad-policy",
        "capnet.test/http-hello-bad-policy:1",
        &[],
        &[&listen, "1"],
    ));
    assert_eq!(refused.exit_code, 1, "{:?}", refused.log);
    assert_eq!(refused.log.stderr, expected);
    assert_eq!(refused.log.stdout, "");

    // Two components: the shim runs one, and says so rather than pick.
    let hello = std::fs::read(guest("http-hello")).unwrap();
    let client = std::fs::read(guest("tcp-client")).unwrap();
    node.import_wasm_layers(
        "capnet.test/two-components:1",
        &[
            (WASM_LAYER, "http-hello.wasm", &hello),
            (WASM_LAYER, "tcp-client.wasm", &client),
            (POLICY_LAYER, "policy.toml", serve.as_bytes()),
        ],
    );
    let two = node.finish(node.start_container(
        &pod,
        "two-components",
        "capnet.test/two-components:1",
        &[],
        &[&listen, "1"],
    ));
    assert_eq!(two.exit_code, 1, "{:?}", two.log);
    assert_eq!(
        two.log.stderr,
        "error: the image has 2 component layers: the shim runs one component\n"
    );

    node.remove_pod(&pod.id);
}

/// The label runwasi puts on a layer it compiled, naming the compiled blob:
/// `runwasi.io/precompiled/<shim>/<cache key>`.
const PRECOMPILED_LABEL: &str = "runwasi.io/precompiled/capnet/";

/// The Python guest (CPython inside, 17 MiB) as a wasm image, started twice in a pod: the first
/// start compiles it and runwasi keeps the compiled code in containerd's content store, the
/// second loads that code without compiling. Each start's time, from CreateContainer to the
/// guest's listener, is printed.
#[test]
fn the_python_guest_s_wasm_image_compiles_at_its_first_start_only() {
    let Some(node) = Node::start("python") else {
        return;
    };
    node.import_pause();
    let image = "capnet.test/python-echo-server-wasm:1";
    let wasm = lang_guest("python", "echo-server");
    assert!(
        wasm.exists(),
        "{} is built by scripts/build-guests",
        wasm.display()
    );
    let layers = node.import_wasm_image(
        image,
        &wasm,
        ("policy.toml", "[allow]\nlisten = [\"127.0.0.1:0\"]\n"),
    );
    let component_layer = &layers[0];
    assert!(
        !node
            .content_info(component_layer)
            .labels
            .keys()
            .any(|label| label.starts_with(PRECOMPILED_LABEL)),
        "nothing is compiled before the first start"
    );
    let pod = node.run_pod("python", true);

    let mut starts = Vec::new();
    let mut compiled = Vec::new();
    for run in ["first", "second"] {
        let began = Instant::now();
        let echo = node.start_container(
            &pod,
            &format!("echo-{run}"),
            image,
            &[],
            &["127.0.0.1:0", "1"],
        );
        let addr = CriLog::wait_for_line(&echo.log, "listening on ");
        starts.push(began.elapsed());
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(b"ping").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut echoed = String::new();
        stream.read_to_string(&mut echoed).unwrap();
        assert_eq!(echoed, "ping");
        let echo = node.finish(echo);
        assert_eq!(echo.exit_code, 0, "{:?}", echo.log);
        // The sandbox got the compiled code both times (the first start compiled it in the
        // shim, before the container ran).
        assert!(
            echo.log.stderr.contains(
                "app: compiled code loaded from containerd's content store, not compiled"
            ),
            "{:?}",
            echo.log
        );
        let labels = node.content_info(component_layer).labels;
        let (_, blob) = labels
            .iter()
            .find(|(label, _)| label.starts_with(PRECOMPILED_LABEL))
            .unwrap_or_else(|| panic!("the component layer names its compiled code: {labels:?}"));
        compiled.push(blob.clone());
    }
    // One compiled blob, kept in the content store (it is there to read), and one compilation:
    // runwasi says when it compiles, in the shim's log that containerd's carries.
    assert_eq!(compiled[0], compiled[1]);
    let size = node.content_info(&compiled[0]).size;
    assert_eq!(
        node.log().matches("precompiling layers for image").count(),
        1,
        "the second start compiled again:\n{}",
        node.log()
    );
    eprintln!(
        "the Python guest's pod started in {:.2} s the first time (compiling), {:.2} s the second \
         (compiled code from containerd's content store, {:.1} MiB with the component)",
        starts[0].as_secs_f64(),
        starts[1].as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    node.remove_pod(&pod.id);
}
