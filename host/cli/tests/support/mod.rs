//! What the `capnet` command's test files share: the command itself, its `listening on` line,
//! and a server that counts who reached it.
#![allow(dead_code, reason = "each test file uses its own part")]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// The `capnet` binary under test, with no log filter of the user's and a cache of the tests'.
pub fn capnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capnet"));
    tests_environment(&mut cmd);
    cmd
}

/// Gives `cmd` (capnet, or what execs it) no log filter of the user's and the tests' cache of
/// compiled code.
pub fn tests_environment(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("CAPNET_LOG").env(
        "CAPNET_CACHE_DIR",
        std::env::temp_dir().join("capnet-cli-tests-cache"),
    )
}

/// Reads the guest's first stdout line, `listening on ADDR`, and returns ADDR.
pub fn listening(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected a listening line, got {line:?}"))
        .trim()
        .parse()
        .expect("an address")
}

/// Starts `cmd` (a `capnet run` of a serving guest) with stdout and stderr piped, and reads
/// the guest's `listening on` line: the child, and the address it serves on.
pub fn serving(cmd: &mut Command) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening(&mut child);
    (child, addr)
}

/// Runs `cmd`, which must exit 1 (the guest's failure, or capnet's refusal): its stderr.
pub fn failing(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// A counting server on loopback (`capnet_tests::counting_server`): what reached it, for tests
/// that show what did not.
pub fn server(reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    capnet_tests::counting_server(Ipv4Addr::LOCALHOST.into(), reply)
}

/// Compares `actual` with the text pinned in `expected_path`: `None` when they match, else what
/// differs, named `name`. With `bless` (`BLESS=1`), writes `actual` there instead.
pub fn pinned(name: &str, expected_path: &Path, actual: &str, bless: bool) -> Option<String> {
    if bless {
        std::fs::write(expected_path, actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(expected_path)
        .unwrap_or_else(|_| panic!("missing {}; run with BLESS=1", expected_path.display()));
    (actual != expected)
        .then(|| format!("{name}:\n  expected: {expected:?}\n  actual:   {actual:?}"))
}
