//! What the `capnet` command's test files share: the command itself, its `listening on` line,
//! and a server that counts who reached it.
#![allow(dead_code, reason = "each test file uses its own part")]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// The `capnet` binary under test, with no log filter of the user's and a cache of the tests'.
pub fn capnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capnet"));
    cmd.env_remove("CAPNET_LOG").env(
        "CAPNET_CACHE_DIR",
        std::env::temp_dir().join("capnet-cli-tests-cache"),
    );
    cmd
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

/// A counting server on loopback (`capnet_tests::counting_server`): what reached it, for tests
/// that show what did not.
pub fn server(reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    capnet_tests::counting_server(Ipv4Addr::LOCALHOST.into(), reply)
}
