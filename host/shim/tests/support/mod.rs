//! What the containerd and CRI tests share: a private containerd (its own root, state, socket
//! and configuration in a temporary directory) that finds the shim cargo just built on its
//! PATH, and the images it imports.

use capnet_tests::{ImageFile, oci_image, overlay_works};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long containerd may take to answer, and a container to end, before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A containerd of a test's own. Its owner stops it with [`Containerd::stop`] once it has
/// removed what it ran there, since a running containerd is what removes them.
pub struct Containerd {
    /// The temporary directory that holds all it makes.
    pub dir: PathBuf,
    /// overlayfs where this file system can carry it, else the copying one.
    pub snapshotter: &'static str,
    process: Child,
}

impl Containerd {
    /// Makes the empty directory `dir` and finds the snapshotter that works there, then starts
    /// containerd with its root, state, sockets and plugins' files in `dir`, without
    /// `disabled_plugins`, and the plugins' tables `plugins` makes from `dir` and the
    /// snapshotter.
    pub fn start(
        dir: PathBuf,
        disabled_plugins: &[&str],
        plugins: impl FnOnce(&Path, &str) -> String,
    ) -> Containerd {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let snapshotter = if overlay_works(&dir) {
            "overlayfs"
        } else {
            "native"
        };
        let config_path = dir.join("config.toml");
        let d = dir.display();
        // A list of plugin ids, debug-formatted, is a TOML array of strings.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = {disabled_plugins:?}

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

{}"#,
            plugins(&dir, snapshotter)
        );
        std::fs::write(&config_path, config).unwrap();
        // containerd finds a runtime's shim on its PATH: the one cargo just built.
        let shim = Path::new(env!("CARGO_BIN_EXE_containerd-shim-capnet-v1"));
        let path = format!(
            "{}:{}",
            shim.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let process = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (scripts/setup installs Debian's containerd)");
        Containerd {
            dir,
            snapshotter,
            process,
        }
    }

    /// Asks `answer` until it has containerd's answer, and returns it; fails the test when
    /// containerd exits or [`PATIENCE`] passes first, with containerd's log and `what` did
    /// not answer.
    pub fn wait_ready<T>(
        &mut self,
        what: &str,
        mut answer: impl FnMut(&Containerd) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                panic!(
                    "containerd cannot run here: it exited ({status}):\n{}",
                    self.log()
                );
            }
            if let Some(answer) = answer(self) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not answer on its socket:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// All containerd has logged, its shims' lines included.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// containerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// `ctr` talking to this containerd, in `namespace`.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut ctr = Command::new("ctr");
        ctr.arg("--address")
            .arg(self.socket())
            .args(["--namespace", namespace]);
        ctr
    }

    /// Where the archive of the image `name` is written.
    pub fn archive(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.tar", name.replace([':', '/'], "_")))
    }

    /// Writes an image `name` holding `files`, which runs `entrypoint`, and imports it into
    /// `namespace` with `ctr images import`.
    pub fn import_image(
        &self,
        namespace: &str,
        name: &str,
        files: &[ImageFile<'_>],
        entrypoint: &[&str],
    ) {
        let archive = self.archive(name);
        oci_image(name, files, entrypoint, &archive);
        self.import_archive(namespace, &archive, &[]);
    }

    /// `ctr images import` of the archive at `archive` into `namespace`, with `options`.
    pub fn import_archive(&self, namespace: &str, archive: &Path, options: &[&str]) {
        let out = self
            .ctr(namespace)
            .args(["images", "import", "--snapshotter", self.snapshotter])
            .args(options)
            .arg(archive)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr images import: {out:?}");
    }

    /// Kills containerd and unmounts what it left mounted under its directory (snapshots,
    /// network namespaces), innermost first; the directory itself is the owner's to remove.
    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|line| line.split_whitespace().nth(1))
                .filter(|point| Path::new(point).starts_with(&self.dir))
                .collect();
            points.reverse();
            for point in points {
                let _ = Command::new("umount").args(["-l", point]).status();
            }
        }
    }
}
