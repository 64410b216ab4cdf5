//! `wasi:sockets/types@0.3.0`, `udp-socket`: the core's [`UdpSocket`] behind 0.3's calls.
//!
//! `send` checks its destination against `udp-send` and `receive` drops datagrams from
//! sources `udp-receive` refuses, as under 0.2; a first send or a connect binds an unbound
//! socket to an ephemeral port. Under a `bytes-per-second` rate both wait while the grant's
//! buckets are empty. A pending `send` holds the datagram wasmtime lifted out of the guest
//! before the call began (the component model's copy: the `list<u8>` is the host's from
//! then on), a pending `receive` no buffer; their number is bounded per socket and per
//! instance ([`UdpSocket`]'s `datagrams` and `calls-in-flight`).

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
use crate::grant::Grant;
use crate::p3::bindings::sockets::types::{
    HostUdpSocket, HostUdpSocketWithStore, IpAddressFamily, IpSocketAddress,
};
use crate::p3::error::SocketResult;
use crate::socket::udp::UdpSocket;
use std::net::SocketAddr;
use wasmtime::component::{Accessor, Resource};

impl CapnetCtxView<'_> {
    fn udp_p3(&mut self, socket: &Resource<UdpSocket>) -> SocketResult<&mut UdpSocket> {
        Ok(self.table.get_mut(socket)?)
    }

    /// `create` through the app's import or a library's: the socket keeps `grant` for every
    /// later check.
    pub(super) fn create_udp(
        &mut self,
        grant: &Grant,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        let socket = UdpSocket::create(grant, family.into(), "udp-socket.create")?;
        Ok(self.table.push(socket)?)
    }
}

impl HostUdpSocket for CapnetCtxView<'_> {
    fn create(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        let grant = self.ctx.root.clone();
        self.create_udp(&grant, family)
    }

    fn bind(&mut self, socket: Resource<UdpSocket>, local: IpSocketAddress) -> SocketResult<()> {
        let socket = self.table.get_mut(&socket)?;
        let grant = socket.created_under().unwrap_or(&self.ctx.root).clone();
        socket.start_bind(&grant, local.into())?;
        Ok(socket.finish_bind()?)
    }

    fn connect(
        &mut self,
        socket: Resource<UdpSocket>,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        let socket = self.table.get_mut(&socket)?;
        let grant = socket.created_under().unwrap_or(&self.ctx.root).clone();
        Ok(socket.connect(&grant, remote.into())?)
    }

    fn disconnect(&mut self, socket: Resource<UdpSocket>) -> SocketResult<()> {
        let socket = self.udp_p3(&socket)?;
        socket.remote_address()?;
        Ok(socket.set_remote(None)?)
    }

    fn get_local_address(&mut self, socket: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.udp_p3(&socket)?.local_address()?.into())
    }

    fn get_remote_address(&mut self, socket: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.udp_p3(&socket)?.remote_address()?.into())
    }

    fn get_address_family(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.family().into())
    }

    fn get_unicast_hop_limit(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u8> {
        Ok(self.udp_p3(&socket)?.unicast_hop_limit()?)
    }

    fn set_unicast_hop_limit(&mut self, socket: Resource<UdpSocket>, v: u8) -> SocketResult<()> {
        Ok(self.udp_p3(&socket)?.set_unicast_hop_limit(v)?)
    }

    fn get_receive_buffer_size(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.udp_p3(&socket)?.receive_buffer_size()?)
    }

    fn set_receive_buffer_size(&mut self, socket: Resource<UdpSocket>, v: u64) -> SocketResult<()> {
        Ok(self.udp_p3(&socket)?.set_receive_buffer_size(v)?)
    }

    fn get_send_buffer_size(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.udp_p3(&socket)?.send_buffer_size()?)
    }

    fn set_send_buffer_size(&mut self, socket: Resource<UdpSocket>, v: u64) -> SocketResult<()> {
        Ok(self.udp_p3(&socket)?.set_send_buffer_size(v)?)
    }

    fn drop(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl<T: CapnetView + 'static> HostUdpSocketWithStore<T> for Capnet {
    async fn send(
        store: &Accessor<T, Self>,
        socket: Resource<UdpSocket>,
        data: Vec<u8>,
        remote: Option<IpSocketAddress>,
    ) -> SocketResult<()> {
        let sender = store.with(|mut access| {
            let view = access.get();
            let socket = view.table.get_mut(&socket)?;
            let grant = socket.created_under().unwrap_or(&view.ctx.root).clone();
            let dest = remote.map(SocketAddr::from);
            SocketResult::Ok(socket.sender_binding(&grant, dest, data.len())?)
        })?;
        Ok(sender.send(&data).await?)
    }

    async fn receive(
        store: &Accessor<T, Self>,
        socket: Resource<UdpSocket>,
    ) -> SocketResult<(Vec<u8>, IpSocketAddress)> {
        let mut receiver = store
            .with(|mut access| SocketResult::Ok(access.get().table.get(&socket)?.receiver()?))?;
        let (datagram, from) = receiver.receive().await?;
        Ok((datagram, from.into()))
    }
}
