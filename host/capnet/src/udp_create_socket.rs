//! `wasi:sockets/udp-create-socket`.
//!
//! UDP is not implemented yet (its own issue): creating a UDP socket reports `not-supported`,
//! so no `udp-socket` resource can exist and the methods in [`crate::udp`] are unreachable.

use crate::bindings::sockets::network::{ErrorCode, IpAddressFamily};
use crate::bindings::sockets::udp::UdpSocket;
use crate::bindings::sockets::udp_create_socket::Host;
use crate::ctx::CapnetCtxView;
use crate::error::SocketResult;
use wasmtime::component::Resource;

impl Host for CapnetCtxView<'_> {
    fn create_udp_socket(&mut self, _family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        tracing::debug!(target: "capnet::socket", "create-udp-socket: not-supported (UDP is not implemented yet)");
        Err(ErrorCode::NotSupported.into())
    }
}
