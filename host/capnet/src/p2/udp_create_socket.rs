//! `wasi:sockets/udp-create-socket`. Creating a socket needs no right of its own: until it is
//! bound through a `network` it cannot reach anything. A component with no UDP right at all (no
//! rule granting a `udp-*` use) is refused here with `access-denied`, as wasmtime-wasi refuses
//! one that may not use UDP.

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::IpAddressFamily;
use crate::p2::bindings::sockets::udp_create_socket::Host;
use crate::p2::error::SocketResult;
use crate::socket::udp::UdpSocket;
use capnet_policy::Use;
use wasmtime::component::Resource;

/// The uses a UDP socket can be put to (a client's ephemeral bind is covered by `udp-send`).
const UDP_USES: [Use; 3] = [Use::UdpBind, Use::UdpSend, Use::UdpReceive];

impl Host for CapnetCtxView<'_> {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        self.ctx
            .root
            .check_kind("create-udp-socket", &UDP_USES, false)?;
        let socket = UdpSocket::new(family.into())?;
        Ok(self.table.push(socket)?)
    }
}
