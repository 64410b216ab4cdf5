//! The `capnet` command as a library: its subcommands, and the host that runs a WASI command
//! component with capnet's sockets and logs its decisions (used by the binary, the containerd
//! shim and the tests).

pub mod activation;
pub mod commands;
pub mod compose;
pub mod decision_log;
pub mod flags;
pub mod host;
pub mod learn;
pub mod logging;
