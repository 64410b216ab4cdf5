//! `containerd-shim-capnet-v1`: started by containerd for the runtime `io.containerd.capnet.v1`
//! (see the crate's library for what it does).

use containerd_shim_capnet_v1::CapnetShim;
use containerd_shim_wasm::shim::{Cli, Config};

fn main() {
    CapnetShim::run(Config::default());
}
