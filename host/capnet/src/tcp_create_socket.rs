//! `wasi:sockets/tcp-create-socket`. Creating a socket needs no right: until it is bound or
//! connected through a `network` it cannot reach anything.

use crate::bindings::sockets::network::IpAddressFamily;
use crate::bindings::sockets::tcp_create_socket::Host;
use crate::ctx::CapnetCtxView;
use crate::error::SocketResult;
use crate::socket::tcp::TcpSocket;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let socket = TcpSocket::new(family.into())?;
        Ok(self.table.push(socket)?)
    }
}
