//! `wasi:sockets/udp`: the `udp-socket` resource and its datagram streams, over
//! [`crate::socket::udp`].

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::p2::bindings::sockets::udp::{
    Host, HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, IncomingDatagram,
    OutgoingDatagram,
};
use crate::p2::error::{SocketError, SocketResult};
use crate::p2::network::Network;
use crate::socket::udp::{IncomingDatagramStream, OutgoingDatagramStream, SendError, UdpSocket};
use std::net::SocketAddr;
use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::DynPollable;

impl Host for CapnetCtxView<'_> {}

type Streams = (
    Resource<IncomingDatagramStream>,
    Resource<OutgoingDatagramStream>,
);

impl CapnetCtxView<'_> {
    fn udp(&mut self, socket: &Resource<UdpSocket>) -> SocketResult<&mut UdpSocket> {
        Ok(self.table.get_mut(socket)?)
    }
}

impl HostUdpSocket for CapnetCtxView<'_> {
    fn start_bind(
        &mut self,
        socket: Resource<UdpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let grant = self.table.get(&network)?.grant.clone();
        Ok(self
            .udp(&socket)?
            .start_bind(&grant, local_address.into())?)
    }

    fn finish_bind(&mut self, socket: Resource<UdpSocket>) -> SocketResult<()> {
        Ok(self.udp(&socket)?.finish_bind()?)
    }

    fn stream(
        &mut self,
        socket: Resource<UdpSocket>,
        remote_address: Option<IpSocketAddress>,
    ) -> SocketResult<Streams> {
        // Only the newest pair may exist, as in wasmtime: older ones must be dropped first.
        let alive = self.table.iter_children(&socket)?.any(|child| {
            child.is::<IncomingDatagramStream>() || child.is::<OutgoingDatagramStream>()
        });
        if alive {
            return Err(SocketError::trap(wasmtime::format_err!(
                "udp-socket.stream: the previous streams are not dropped yet"
            )));
        }
        let (incoming, outgoing) = self
            .udp(&socket)?
            .stream(remote_address.map(SocketAddr::from))?;
        let incoming = self.table.push_child(incoming, &socket)?;
        let outgoing = self.table.push_child(outgoing, &socket)?;
        Ok((incoming, outgoing))
    }

    fn local_address(&mut self, socket: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.udp(&socket)?.local_address()?.into())
    }

    fn remote_address(&mut self, socket: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.udp(&socket)?.remote_address()?.into())
    }

    fn address_family(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.family().into())
    }

    fn unicast_hop_limit(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u8> {
        Ok(self.udp(&socket)?.unicast_hop_limit()?)
    }

    fn set_unicast_hop_limit(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u8,
    ) -> SocketResult<()> {
        Ok(self.udp(&socket)?.set_unicast_hop_limit(value)?)
    }

    fn receive_buffer_size(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.udp(&socket)?.receive_buffer_size()?)
    }

    fn set_receive_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.udp(&socket)?.set_receive_buffer_size(value)?)
    }

    fn send_buffer_size(&mut self, socket: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.udp(&socket)?.send_buffer_size()?)
    }

    fn set_send_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.udp(&socket)?.set_send_buffer_size(value)?)
    }

    fn subscribe(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi_io::poll::subscribe(self.table, socket)
    }

    fn drop(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl HostIncomingDatagramStream for CapnetCtxView<'_> {
    fn receive(
        &mut self,
        stream: Resource<IncomingDatagramStream>,
        max_results: u64,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        let datagrams = self
            .table
            .get_mut(&stream)?
            .receive(max_results, |data, from| IncomingDatagram {
                data: data.to_vec(),
                remote_address: from.into(),
            })?;
        Ok(datagrams)
    }

    fn subscribe(
        &mut self,
        stream: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi_io::poll::subscribe(self.table, stream)
    }

    fn drop(&mut self, stream: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl HostOutgoingDatagramStream for CapnetCtxView<'_> {
    fn check_send(&mut self, stream: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        Ok(self.table.get_mut(&stream)?.check_send())
    }

    fn send(
        &mut self,
        stream: Resource<OutgoingDatagramStream>,
        datagrams: Vec<OutgoingDatagram>,
    ) -> SocketResult<u64> {
        let stream = self.table.get_mut(&stream)?;
        let batch = datagrams
            .iter()
            .map(|d| (d.data.as_slice(), d.remote_address.map(SocketAddr::from)));
        match stream.send(batch) {
            Ok(sent) => Ok(sent),
            Err(SendError::Code(code)) => Err(code.into()),
            Err(SendError::Unpermitted) => Err(SocketError::trap(wasmtime::format_err!(
                "outgoing-datagram-stream.send: more datagrams than check-send permitted"
            ))),
        }
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi_io::poll::subscribe(self.table, stream)
    }

    fn drop(&mut self, stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
