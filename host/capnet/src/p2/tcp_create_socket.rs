//! `wasi:sockets/tcp-create-socket`. Creating a socket needs no right of its own: until it is
//! bound or connected through a `network` it cannot reach anything. A component with no TCP
//! right at all (no rule granting a `tcp-*` use, no pre-opened listener) is refused here with
//! `access-denied`, as wasmtime-wasi refuses one that may not use TCP.

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::IpAddressFamily;
use crate::p2::bindings::sockets::tcp_create_socket::Host;
use crate::p2::error::SocketResult;
use crate::socket::tcp::TcpSocket;
use capnet_policy::Use;
use wasmtime::component::Resource;

/// The uses a TCP socket can be put to.
const TCP_USES: [Use; 4] = [
    Use::TcpBind,
    Use::TcpListen,
    Use::TcpAccept,
    Use::TcpConnect,
];

impl Host for CapnetCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let preopened = self.ctx.preopens.any();
        self.ctx
            .root
            .check_kind("create-tcp-socket", &TCP_USES, preopened)?;
        let socket = TcpSocket::new(family.into())?;
        Ok(self.table.push(socket)?)
    }
}
