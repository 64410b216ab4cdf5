//! The `capnet` command as a library: its subcommands, and the host that runs a WASI command
//! component with capnet's sockets (used by the binary and by the tests).

pub mod activation;
pub mod commands;
pub mod decision_log;
pub mod flags;
pub mod host;
pub mod learn;
