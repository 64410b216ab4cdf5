//! `wasi:sockets/udp-create-socket`. Creating a socket needs no right: until it is bound
//! through a `network` it cannot reach anything.

use crate::bindings::sockets::network::IpAddressFamily;
use crate::bindings::sockets::udp_create_socket::Host;
use crate::ctx::CapnetCtxView;
use crate::error::SocketResult;
use crate::socket::udp::UdpSocket;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        let socket = UdpSocket::new(family.into())?;
        Ok(self.table.push(socket)?)
    }
}
