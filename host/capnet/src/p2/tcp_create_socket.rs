//! `wasi:sockets/tcp-create-socket`, the app's and each library's (`LIBRARY-tcp-create-socket`,
//! see [`crate::composition`]). Creating a socket needs no right of its own: until it is bound or
//! connected through a `network` it cannot reach anything. But it holds a descriptor, so it
//! counts against the limits of whoever created it, and a creator with no TCP right at all (no
//! rule granting a `tcp-*` use, no pre-opened listener) is refused here with `access-denied`, as
//! wasmtime-wasi refuses one that may not use TCP.

use crate::ctx::CapnetCtxView;
use crate::grant::Grant;
use crate::library::Library;
use crate::p2::bindings::named_imports::wasi::sockets::tcp_create_socket as named;
use crate::p2::bindings::sockets::network::IpAddressFamily;
use crate::p2::bindings::sockets::tcp_create_socket::Host;
use crate::p2::error::SocketResult;
use crate::socket::tcp::TcpSocket;
use wasmtime::component::Resource;

impl CapnetCtxView<'_> {
    fn create_tcp_socket_under(
        &mut self,
        grant: &Grant,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<TcpSocket>> {
        let preopened = grant.is_root() && self.ctx.preopens.any();
        let socket = TcpSocket::create(grant, family.into(), preopened, "create-tcp-socket")?;
        Ok(self.table.push(socket)?)
    }
}

impl Host for CapnetCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let grant = self.ctx.root.clone();
        self.create_tcp_socket_under(&grant, family)
    }
}

impl named::Host for CapnetCtxView<'_> {
    fn create_tcp_socket(
        &mut self,
        library: Library,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<TcpSocket>> {
        let grant = self.ctx.library_grant(&library);
        self.create_tcp_socket_under(&grant, family)
    }
}
