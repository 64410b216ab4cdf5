//! `wasi:sockets/udp-create-socket`. Creating a socket needs no right of its own: until it is
//! bound through a `network` it cannot reach anything. A component with no UDP right at all (no
//! rule granting a `udp-*` use) is refused here with `access-denied`, as wasmtime-wasi refuses
//! one that may not use UDP.

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::IpAddressFamily;
use crate::p2::bindings::sockets::udp_create_socket::Host;
use crate::p2::error::SocketResult;
use crate::socket::udp::UdpSocket;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        let socket = UdpSocket::create(&self.ctx.root, family.into(), "create-udp-socket")?;
        Ok(self.table.push(socket)?)
    }
}
