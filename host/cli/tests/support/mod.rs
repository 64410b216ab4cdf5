//! What the `capnet` command's test files share: the command itself, its `listening on` line,
//! and a server that counts who reached it.
#![allow(dead_code, reason = "each test file uses its own part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A TCP server on a port of its own that reads each request to its end, answers `reply`, and
/// counts the connections it got: what reached it, for tests that show what did not.
pub fn server(reply: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
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
