//! `wasi:sockets/instance-network`: the instance's root grant as a `network`.

use crate::bindings::sockets::instance_network::Host;
use crate::ctx::CapnetCtxView;
use crate::network::Network;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        let grant = self.ctx.root.clone();
        Ok(self.table.push(Network { grant })?)
    }
}
