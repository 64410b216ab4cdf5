//! The shim under a real containerd, as a node runs it: a private containerd (its own root,
//! state and socket in a temporary directory) finds `containerd-shim-capnet-v1` on its PATH,
//! imports OCI images of the `http-hello` guest with their policy files, and runs them with
//! `ctr run --runtime io.containerd.capnet.v1` on the host network; curl talks to them.
//!
//! Needs root and Debian's `containerd` (`scripts/setup` installs it). Everything the test
//! starts is stopped and removed when it ends, whether it passes or not.

mod support;

use capnet_tests::{ImageFile, curl, guest, is_root, lang_guest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::PATIENCE;

const RUNTIME: &str = "io.containerd.capnet.v1";
const POLICY_PATH: &str = "/etc/capnet/policy.toml";
/// Where every image of the test keeps its component.
const COMPONENT: &str = "/app.wasm";

/// The serving image's policy: the guest may listen on loopback, any port.
const SERVE_POLICY: &str = "[allow]\nlisten = [\"127.0.0.1:0\"]\n";
/// The other image's policy: it may call out, but never serve.
const NO_SERVE_POLICY: &str =
    "[allow]\nconnect = [\"loopback:443\"]\n\n[deny]\nlisten = [\"any\"]\n";

/// A containerd of this test's own, without the CRI plugin, and the namespace the test's
/// images and containers are in; dropping it stops it and removes all it made.
struct Containerd {
    containerd: support::Containerd,
    namespace: String,
}

impl Containerd {
    /// Starts a containerd for the test `test`.
    fn start(test: &str) -> Containerd {
        assert!(
            is_root(),
            "the containerd test starts containerd and containers: run it as root"
        );
        let id = format!("{}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(format!("capnet-containerd-{id}"));
        let containerd =
            support::Containerd::start(dir, &["io.containerd.grpc.v1.cri"], |_, _| String::new());
        let mut containerd = Containerd {
            containerd,
            namespace: format!("capnet-test-{id}"),
        };
        let namespace = &containerd.namespace;
        containerd
            .containerd
            .wait_ready("containerd", |containerd| {
                let version = containerd.ctr(namespace).arg("version").output().unwrap();
                version.status.success().then_some(())
            });
        containerd
    }

    /// `ctr` talking to this containerd, in this test's namespace.
    fn ctr(&self) -> Command {
        self.containerd.ctr(&self.namespace)
    }

    /// Builds an image of the component at `wasm` with `policy` at the fixed path and
    /// imports it.
    fn import(&self, name: &str, wasm: &Path, policy: &str) {
        let wasm = std::fs::read(wasm).unwrap();
        let files: [ImageFile<'_>; 2] = [
            (COMPONENT, wasm.as_slice()),
            (POLICY_PATH, policy.as_bytes()),
        ];
        self.containerd
            .import_image(&self.namespace, name, &files, &[COMPONENT]);
    }

    /// `ctr run` of `image` as container `id` with `env` and the guest's `args`, stdout and
    /// stderr piped.
    fn run(&self, image: &str, id: &str, env: &[&str], args: &[&str]) -> Child {
        let mut ctr = self.ctr();
        ctr.args(["run", "--rm", "--net-host", "--runtime", RUNTIME])
            .arg("--fifo-dir")
            .arg(self.containerd.dir.join("fifo"))
            .args(["--snapshotter", self.containerd.snapshotter]);
        for var in env {
            ctr.args(["--env", var]);
        }
        ctr.args([image, id, COMPONENT])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers a failed test left: kill their tasks and delete them, so that their shims
        // exit, before containerd stops.
        if let Ok(out) = self.ctr().args(["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self
                    .ctr()
                    .args(["tasks", "kill", "-s", "SIGKILL", id])
                    .output();
                let _ = self.ctr().args(["tasks", "delete", "--force", id]).output();
                let _ = self.ctr().args(["containers", "delete", id]).output();
            }
        }
        // Its containers are gone: nothing is left for a graceful stop to tidy.
        self.containerd.stop();
        let _ = std::fs::remove_dir_all(&self.containerd.dir);
        // runwasi keeps its containers' state under /run/containerd/RUNTIME/NAMESPACE.
        let runwasi = Path::new("/run/containerd/capnet");
        let _ = std::fs::remove_dir_all(runwasi.join(&self.namespace));
        // Shims' sockets live in /run/containerd/s whatever containerd's state directory is:
        // remove what this test created there, when nothing else is left in it.
        let _ = std::fs::remove_dir(runwasi);
        let _ = std::fs::remove_dir("/run/containerd/s");
        let _ = std::fs::remove_dir("/run/containerd");
    }
}

/// The first line of `child`'s stdout that starts with `prefix`, without it.
fn stdout_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("the container printed nothing"))
        .unwrap();
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
        .trim()
        .to_owned()
}

fn wait(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the container did not end: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One containerd for all the cases: starting it and importing images is most of the time.
#[test]
fn containerd_runs_components_under_the_policy_their_image_carries() {
    let containerd = Containerd::start("policy");
    let serve = "capnet.test/http-hello:serve";
    let no_serve = "capnet.test/http-hello:no-serve";
    let hello = guest("http-hello");
    containerd.import(serve, &hello, SERVE_POLICY);
    containerd.import(no_serve, &hello, NO_SERVE_POLICY);

    // The image's policy allows the listen: it serves curl (one connection, then it exits).
    let mut child = containerd.run(serve, "serve", &[], &["127.0.0.1:0", "1"]);
    let addr = stdout_line(&mut child, "listening on ");
    assert_eq!(
        curl(&format!("http://{addr}/")),
        "hello from a capnet guest\n"
    );
    let out = wait(child);
    assert!(out.status.success(), "{out:?}");

    // The image's policy denies it: the container fails, and its log says why.
    let out = wait(containerd.run(no_serve, "denied", &[], &["127.0.0.1:0", "1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains(&format!(
            "denied tcp-bind 127.0.0.1:0: access-denied (rule {POLICY_PATH}:5:11 \"listen any\")"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: bind 127.0.0.1:0:"),
        "the guest saw the refusal: {stderr}"
    );

    // A pre-opened listener needs no right to bind or listen, as under `capnet run`.
    let mut child = containerd.run(
        no_serve,
        "preopened",
        &["CAPNET_TCPLISTEN=127.0.0.1:0=127.0.0.1:8080"],
        &["127.0.0.1:8080", "1"],
    );
    assert_eq!(stdout_line(&mut child, "listening on "), "127.0.0.1:8080");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let real = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.split("pre-opened listener on ").nth(1)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .expect("a pre-open line on stderr");
    assert_eq!(
        curl(&format!("http://{real}/")),
        "hello from a capnet guest\n"
    );
    let out = wait(child);
    assert!(out.status.success(), "{out:?}");

    // A bad rule stops the container before the guest runs, with the message of
    // `capnet policy check`.
    let out = wait(containerd.run(
        serve,
        "bad-rules",
        &["CAPNET_RULES=[allow]\nconnect = [\"10.0.0.0/8:9000-80\"]"],
        &["127.0.0.1:0", "1"],
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: CAPNET_RULES:2:12: rule \"connect 10.0.0.0/8:9000-80\": port range start is above its end (write 80-9000)\n"
    );
    assert!(out.stdout.is_empty(), "the guest never ran: {out:?}");
}

/// A TCP server on a port of its own that answers every connection with `reply`.
fn server(reply: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = Vec::new();
            let _ = stream.read_to_end(&mut request);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    addr
}

/// A composed app's libraries get the grants of the image policy's `[library.NAME]` tables,
/// as under `capnet run` (the nano-process example, built by scripts/build-guests).
#[test]
fn containerd_gives_each_library_of_a_composed_app_its_own_grant() {
    let containerd = Containerd::start("nano");
    let weather = server("sunny");
    let app = server("app");
    let image = "capnet.test/nano-app:latest";
    let policy = format!(
        "[allow]\nconnect = [\"loopback\"]\n\n[library.weather.allow]\nconnect = [\"{weather}\"]\n"
    );
    containerd.import(image, &lang_guest("rust", "nano-app"), &policy);

    let steps = [
        format!("weather={weather}"),
        format!("app={app}"),
        format!("weather={app}"),
    ];
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = wait(containerd.run(image, "nano", &["CAPNET_LOG_DECISIONS=json"], &steps));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{step}: ")))
            .unwrap_or_else(|| panic!("no line for {step} in:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(line(steps[0]), format!("{}: ok sunny", steps[0]));
    assert_eq!(line(steps[1]), format!("{}: ok app", steps[1]));
    assert!(
        line(steps[2]).starts_with(&format!("{}: error PermissionDenied", steps[2])),
        "the weather library may not reach the app's server:\n{stdout}"
    );
    // The refusal is a JSON decision line on the container's stderr, naming the library.
    let refused = stderr
        .lines()
        .find(|l| l.contains(&format!("\"address\":\"{app}\",\"verdict\":\"deny\"")))
        .unwrap_or_else(|| panic!("no refusal of {app} in:\n{stderr}"));
    assert!(
        refused.contains(r#""library":"weather","use":"tcp-connect""#),
        "{refused}"
    );
}
