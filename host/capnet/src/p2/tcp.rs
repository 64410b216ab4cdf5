//! `wasi:sockets/tcp`: the `tcp-socket` resource over [`crate::socket::tcp::TcpSocket`].

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::p2::bindings::sockets::tcp::{Duration, Host, HostTcpSocket, ShutdownType};
use crate::p2::error::SocketResult;
use crate::p2::network::Network;
use crate::socket::tcp::{Connected, TcpSocket};
use std::net::Shutdown;
use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::DynPollable;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

impl Host for CapnetCtxView<'_> {}

type Streams = (Resource<DynInputStream>, Resource<DynOutputStream>);

impl CapnetCtxView<'_> {
    fn socket(&mut self, socket: &Resource<TcpSocket>) -> SocketResult<&mut TcpSocket> {
        Ok(self.table.get_mut(socket)?)
    }

    fn push_streams(&mut self, (reader, writer): Connected) -> SocketResult<Streams> {
        let reading = std::sync::Arc::downgrade(reader.side());
        let writing = std::sync::Arc::downgrade(writer.side());
        let input: DynInputStream = Box::new(reader);
        let output: DynOutputStream = Box::new(writer);
        let (input, output) = (self.table.push(input)?, self.table.push(output)?);
        let streams = &mut self.ctx.streams;
        streams.insert((input.rep(), reading), (output.rep(), writing));
        Ok((input, output))
    }
}

impl HostTcpSocket for CapnetCtxView<'_> {
    fn start_bind(
        &mut self,
        socket: Resource<TcpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let grant = self.table.get(&network)?.grant.clone();
        let socket = self.table.get_mut(&socket)?;
        socket.start_bind(&grant, local_address.into(), &mut self.ctx.preopens)?;
        Ok(())
    }

    fn finish_bind(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        Ok(self.socket(&socket)?.finish_bind()?)
    }

    fn start_connect(
        &mut self,
        socket: Resource<TcpSocket>,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let grant = self.table.get(&network)?.grant.clone();
        Ok(self
            .socket(&socket)?
            .start_connect(&grant, remote_address.into())?)
    }

    fn finish_connect(&mut self, socket: Resource<TcpSocket>) -> SocketResult<Streams> {
        let connected = self.socket(&socket)?.finish_connect()?;
        self.push_streams(connected)
    }

    fn start_listen(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        Ok(self.socket(&socket)?.start_listen()?)
    }

    fn finish_listen(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        Ok(self.socket(&socket)?.finish_listen()?)
    }

    fn accept(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        let (client, reader, writer) = self.socket(&socket)?.accept()?;
        let client = self.table.push(client)?;
        let (input, output) = self.push_streams((reader, writer))?;
        Ok((client, input, output))
    }

    fn local_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.socket(&socket)?.local_address()?.into())
    }

    fn remote_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(self.socket(&socket)?.remote_address()?.into())
    }

    fn is_listening(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&socket)?.is_listening())
    }

    fn address_family(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.family().into())
    }

    fn set_listen_backlog_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_listen_backlog_size(value)?)
    }

    fn keep_alive_enabled(&mut self, socket: Resource<TcpSocket>) -> SocketResult<bool> {
        Ok(self.socket(&socket)?.keep_alive_enabled()?)
    }

    fn set_keep_alive_enabled(
        &mut self,
        socket: Resource<TcpSocket>,
        value: bool,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_keep_alive_enabled(value)?)
    }

    fn keep_alive_idle_time(&mut self, socket: Resource<TcpSocket>) -> SocketResult<Duration> {
        Ok(self.socket(&socket)?.keep_alive_idle_time()?)
    }

    fn set_keep_alive_idle_time(
        &mut self,
        socket: Resource<TcpSocket>,
        value: Duration,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_keep_alive_idle_time(value)?)
    }

    fn keep_alive_interval(&mut self, socket: Resource<TcpSocket>) -> SocketResult<Duration> {
        Ok(self.socket(&socket)?.keep_alive_interval()?)
    }

    fn set_keep_alive_interval(
        &mut self,
        socket: Resource<TcpSocket>,
        value: Duration,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_keep_alive_interval(value)?)
    }

    fn keep_alive_count(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u32> {
        Ok(self.socket(&socket)?.keep_alive_count()?)
    }

    fn set_keep_alive_count(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u32,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_keep_alive_count(value)?)
    }

    fn hop_limit(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u8> {
        Ok(self.socket(&socket)?.hop_limit()?)
    }

    fn set_hop_limit(&mut self, socket: Resource<TcpSocket>, value: u8) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_hop_limit(value)?)
    }

    fn receive_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.socket(&socket)?.receive_buffer_size()?)
    }

    fn set_receive_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_receive_buffer_size(value)?)
    }

    fn send_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.socket(&socket)?.send_buffer_size()?)
    }

    fn set_send_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.socket(&socket)?.set_send_buffer_size(value)?)
    }

    fn subscribe(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi_io::poll::subscribe(self.table, socket)
    }

    fn shutdown(&mut self, socket: Resource<TcpSocket>, how: ShutdownType) -> SocketResult<()> {
        let how = match how {
            ShutdownType::Receive => Shutdown::Read,
            ShutdownType::Send => Shutdown::Write,
            ShutdownType::Both => Shutdown::Both,
        };
        Ok(self.socket(&socket)?.shutdown(how)?)
    }

    fn drop(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}
