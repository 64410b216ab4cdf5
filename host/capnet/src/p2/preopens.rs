//! `capnet:sockets/preopens`: listening sockets the runtime opened for the guest.

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::preopens::Host;
use crate::p2::bindings::sockets::network::IpSocketAddress;
use crate::socket::tcp::TcpSocket;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn take_tcp_listeners(
        &mut self,
    ) -> wasmtime::Result<Vec<(Resource<TcpSocket>, IpSocketAddress)>> {
        let grant = self.ctx.root.clone();
        let mut out = Vec::new();
        for (listener, addr) in self.ctx.preopens.take_all() {
            let socket = TcpSocket::preopened(listener, addr, grant.clone())?;
            out.push((self.table.push(socket)?, addr.into()));
        }
        Ok(out)
    }
}
