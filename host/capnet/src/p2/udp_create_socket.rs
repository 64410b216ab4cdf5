//! `wasi:sockets/udp-create-socket`, the app's and each library's (`LIBRARY-udp-create-socket`,
//! see [`crate::composition`]). Creating a socket needs no right of its own: until it is bound
//! through a `network` it cannot reach anything. But it holds a descriptor, so it counts against
//! the limits of whoever created it, and a creator with no UDP right at all (no rule granting a
//! `udp-*` use) is refused here with `access-denied`, as wasmtime-wasi refuses one that may not
//! use UDP.

use crate::ctx::CapnetCtxView;
use crate::library::Library;
use crate::p2::bindings::named_imports::wasi::sockets::udp_create_socket as named;
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

impl named::Host for CapnetCtxView<'_> {
    fn create_udp_socket(
        &mut self,
        library: Library,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        let grant = self.ctx.library_grant(&library);
        let socket = UdpSocket::create(&grant, family.into(), "create-udp-socket")?;
        Ok(self.table.push(socket)?)
    }
}
