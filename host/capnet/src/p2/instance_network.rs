//! `wasi:sockets/instance-network`: the instance's root grant as a `network`, and a library's
//! grant through its named import of the interface, `LIBRARY-instance-network` (see
//! [`crate::library`]).

use crate::ctx::CapnetCtxView;
use crate::library::Library;
use crate::p2::bindings::named_imports::wasi::sockets::instance_network as named;
use crate::p2::bindings::sockets::instance_network::Host;
use crate::p2::network::Network;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        let grant = self.ctx.root.clone();
        Ok(self.table.push(Network { grant })?)
    }
}

impl named::Host for CapnetCtxView<'_> {
    fn instance_network(&mut self, library: Library) -> wasmtime::Result<Resource<Network>> {
        let grant = self.ctx.library_grant(&library);
        Ok(self.table.push(Network { grant })?)
    }
}
