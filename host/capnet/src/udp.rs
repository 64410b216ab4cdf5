//! `wasi:sockets/udp`. The resource types are uninhabited until UDP lands: `create-udp-socket`
//! never makes one, so every method below matches on a value that cannot exist.

use crate::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::bindings::sockets::udp::{
    Host, HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, IncomingDatagram,
    IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket,
};
use crate::ctx::CapnetCtxView;
use crate::error::SocketResult;
use crate::network::Network;
use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::DynPollable;

impl Host for CapnetCtxView<'_> {}

type Streams = (
    Resource<IncomingDatagramStream>,
    Resource<OutgoingDatagramStream>,
);

impl HostUdpSocket for CapnetCtxView<'_> {
    fn start_bind(
        &mut self,
        s: Resource<UdpSocket>,
        _: Resource<Network>,
        _: IpSocketAddress,
    ) -> SocketResult<()> {
        match *self.table.get(&s)? {}
    }
    fn finish_bind(&mut self, s: Resource<UdpSocket>) -> SocketResult<()> {
        match *self.table.get(&s)? {}
    }
    fn stream(
        &mut self,
        s: Resource<UdpSocket>,
        _: Option<IpSocketAddress>,
    ) -> SocketResult<Streams> {
        match *self.table.get(&s)? {}
    }
    fn local_address(&mut self, s: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        match *self.table.get(&s)? {}
    }
    fn remote_address(&mut self, s: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        match *self.table.get(&s)? {}
    }
    fn address_family(&mut self, s: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        match *self.table.get(&s)? {}
    }
    fn unicast_hop_limit(&mut self, s: Resource<UdpSocket>) -> SocketResult<u8> {
        match *self.table.get(&s)? {}
    }
    fn set_unicast_hop_limit(&mut self, s: Resource<UdpSocket>, _: u8) -> SocketResult<()> {
        match *self.table.get(&s)? {}
    }
    fn receive_buffer_size(&mut self, s: Resource<UdpSocket>) -> SocketResult<u64> {
        match *self.table.get(&s)? {}
    }
    fn set_receive_buffer_size(&mut self, s: Resource<UdpSocket>, _: u64) -> SocketResult<()> {
        match *self.table.get(&s)? {}
    }
    fn send_buffer_size(&mut self, s: Resource<UdpSocket>) -> SocketResult<u64> {
        match *self.table.get(&s)? {}
    }
    fn set_send_buffer_size(&mut self, s: Resource<UdpSocket>, _: u64) -> SocketResult<()> {
        match *self.table.get(&s)? {}
    }
    fn subscribe(&mut self, s: Resource<UdpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        match *self.table.get(&s)? {}
    }
    fn drop(&mut self, s: Resource<UdpSocket>) -> wasmtime::Result<()> {
        match self.table.delete(s)? {}
    }
}

impl HostIncomingDatagramStream for CapnetCtxView<'_> {
    fn receive(
        &mut self,
        s: Resource<IncomingDatagramStream>,
        _: u64,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        match *self.table.get(&s)? {}
    }
    fn subscribe(
        &mut self,
        s: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        match *self.table.get(&s)? {}
    }
    fn drop(&mut self, s: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        match self.table.delete(s)? {}
    }
}

impl HostOutgoingDatagramStream for CapnetCtxView<'_> {
    fn check_send(&mut self, s: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        match *self.table.get(&s)? {}
    }
    fn send(
        &mut self,
        s: Resource<OutgoingDatagramStream>,
        _: Vec<OutgoingDatagram>,
    ) -> SocketResult<u64> {
        match *self.table.get(&s)? {}
    }
    fn subscribe(
        &mut self,
        s: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        match *self.table.get(&s)? {}
    }
    fn drop(&mut self, s: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        match self.table.delete(s)? {}
    }
}
