//! `wasi:sockets/tcp-create-socket`. Creating a socket needs no right of its own: until it is
//! bound or connected through a `network` it cannot reach anything. A component with no TCP
//! right at all (no rule granting a `tcp-*` use, no pre-opened listener) is refused here with
//! `access-denied`, as wasmtime-wasi refuses one that may not use TCP.

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::IpAddressFamily;
use crate::p2::bindings::sockets::tcp_create_socket::Host;
use crate::p2::error::SocketResult;
use crate::socket::tcp::TcpSocket;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let preopened = self.ctx.preopens.any();
        let socket = TcpSocket::create(
            &self.ctx.root,
            family.into(),
            preopened,
            "create-tcp-socket",
        )?;
        Ok(self.table.push(socket)?)
    }
}
