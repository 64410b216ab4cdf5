//! A library's own imports of `wasi:sockets/types` and `ip-name-lookup` (labels
//! `LIBRARY-types`, `LIBRARY-ip-name-lookup`; see [`crate::library`]).
//!
//! Only `create` and `resolve-addresses` need to know the library: a socket keeps the grant it
//! was created under, and every later call on it is decided by that grant. So each other call
//! goes to the app's implementation unchanged, and a library's socket passed to the app's
//! import (or the reverse) is decided as its creator would be.

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
use crate::library::Library;
use crate::p3::bindings::named_imports::wasi::sockets::{ip_name_lookup, types};
use crate::p3::bindings::sockets::ip_name_lookup::{ErrorCode as LookupError, IpAddress};
use crate::p3::bindings::sockets::types::{
    Duration, ErrorCode, HostTcpSocket, HostTcpSocketWithStore, HostUdpSocket,
    HostUdpSocketWithStore, IpAddressFamily, IpSocketAddress,
};
use crate::p3::error::SocketResult;
use crate::socket::tcp::TcpSocket;
use crate::socket::udp::UdpSocket;
use wasmtime::component::{Access, Accessor, FutureReader, Resource, StreamReader};

/// The methods of a named import's trait that hand the call, without the library, to the
/// app's implementation in trait `$app`.
macro_rules! as_the_app {
    ($app:ident: $(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, _: Library $(, $arg: $ty)*) -> $ret {
            <Self as $app>::$name(self $(, $arg)*)
        })*
    };
}

type Tcp = Resource<TcpSocket>;
type Udp = Resource<UdpSocket>;

impl types::Host for CapnetCtxView<'_> {}

impl types::HostTcpSocket for CapnetCtxView<'_> {
    fn create(&mut self, library: Library, family: IpAddressFamily) -> SocketResult<Tcp> {
        let grant = self.ctx.library_grant(&library);
        self.create_tcp(&grant, family)
    }

    as_the_app! { HostTcpSocket:
        fn bind(&mut self, s: Tcp, local: IpSocketAddress) -> SocketResult<()>;
        fn get_local_address(&mut self, s: Tcp) -> SocketResult<IpSocketAddress>;
        fn get_remote_address(&mut self, s: Tcp) -> SocketResult<IpSocketAddress>;
        fn get_is_listening(&mut self, s: Tcp) -> wasmtime::Result<bool>;
        fn get_address_family(&mut self, s: Tcp) -> wasmtime::Result<IpAddressFamily>;
        fn set_listen_backlog_size(&mut self, s: Tcp, v: u64) -> SocketResult<()>;
        fn get_keep_alive_enabled(&mut self, s: Tcp) -> SocketResult<bool>;
        fn set_keep_alive_enabled(&mut self, s: Tcp, v: bool) -> SocketResult<()>;
        fn get_keep_alive_idle_time(&mut self, s: Tcp) -> SocketResult<Duration>;
        fn set_keep_alive_idle_time(&mut self, s: Tcp, v: Duration) -> SocketResult<()>;
        fn get_keep_alive_interval(&mut self, s: Tcp) -> SocketResult<Duration>;
        fn set_keep_alive_interval(&mut self, s: Tcp, v: Duration) -> SocketResult<()>;
        fn get_keep_alive_count(&mut self, s: Tcp) -> SocketResult<u32>;
        fn set_keep_alive_count(&mut self, s: Tcp, v: u32) -> SocketResult<()>;
        fn get_hop_limit(&mut self, s: Tcp) -> SocketResult<u8>;
        fn set_hop_limit(&mut self, s: Tcp, v: u8) -> SocketResult<()>;
        fn get_receive_buffer_size(&mut self, s: Tcp) -> SocketResult<u64>;
        fn set_receive_buffer_size(&mut self, s: Tcp, v: u64) -> SocketResult<()>;
        fn get_send_buffer_size(&mut self, s: Tcp) -> SocketResult<u64>;
        fn set_send_buffer_size(&mut self, s: Tcp, v: u64) -> SocketResult<()>;
        fn drop(&mut self, s: Tcp) -> wasmtime::Result<()>;
    }
}

impl types::HostUdpSocket for CapnetCtxView<'_> {
    fn create(&mut self, library: Library, family: IpAddressFamily) -> SocketResult<Udp> {
        let grant = self.ctx.library_grant(&library);
        self.create_udp(&grant, family)
    }

    as_the_app! { HostUdpSocket:
        fn bind(&mut self, s: Udp, local: IpSocketAddress) -> SocketResult<()>;
        fn connect(&mut self, s: Udp, remote: IpSocketAddress) -> SocketResult<()>;
        fn disconnect(&mut self, s: Udp) -> SocketResult<()>;
        fn get_local_address(&mut self, s: Udp) -> SocketResult<IpSocketAddress>;
        fn get_remote_address(&mut self, s: Udp) -> SocketResult<IpSocketAddress>;
        fn get_address_family(&mut self, s: Udp) -> wasmtime::Result<IpAddressFamily>;
        fn get_unicast_hop_limit(&mut self, s: Udp) -> SocketResult<u8>;
        fn set_unicast_hop_limit(&mut self, s: Udp, v: u8) -> SocketResult<()>;
        fn get_receive_buffer_size(&mut self, s: Udp) -> SocketResult<u64>;
        fn set_receive_buffer_size(&mut self, s: Udp, v: u64) -> SocketResult<()>;
        fn get_send_buffer_size(&mut self, s: Udp) -> SocketResult<u64>;
        fn set_send_buffer_size(&mut self, s: Udp, v: u64) -> SocketResult<()>;
        fn drop(&mut self, s: Udp) -> wasmtime::Result<()>;
    }
}

impl<T: CapnetView + 'static> types::HostTcpSocketWithStore<T> for Capnet {
    async fn connect(
        store: &Accessor<T, Self>,
        _: Library,
        socket: Tcp,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        <Self as HostTcpSocketWithStore<T>>::connect(store, socket, remote).await
    }

    fn listen(
        store: Access<'_, T, Self>,
        _: Library,
        socket: Tcp,
    ) -> SocketResult<StreamReader<Tcp>> {
        <Self as HostTcpSocketWithStore<T>>::listen(store, socket)
    }

    fn send(
        store: Access<'_, T, Self>,
        _: Library,
        socket: Tcp,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        <Self as HostTcpSocketWithStore<T>>::send(store, socket, data)
    }

    fn receive(
        store: Access<'_, T, Self>,
        _: Library,
        socket: Tcp,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Result<(), ErrorCode>>)> {
        <Self as HostTcpSocketWithStore<T>>::receive(store, socket)
    }
}

impl<T: CapnetView + 'static> types::HostUdpSocketWithStore<T> for Capnet {
    async fn send(
        store: &Accessor<T, Self>,
        _: Library,
        socket: Udp,
        data: Vec<u8>,
        remote: Option<IpSocketAddress>,
    ) -> SocketResult<()> {
        <Self as HostUdpSocketWithStore<T>>::send(store, socket, data, remote).await
    }

    async fn receive(
        store: &Accessor<T, Self>,
        _: Library,
        socket: Udp,
    ) -> SocketResult<(Vec<u8>, IpSocketAddress)> {
        <Self as HostUdpSocketWithStore<T>>::receive(store, socket).await
    }
}

impl ip_name_lookup::Host for CapnetCtxView<'_> {}

impl<T: CapnetView + 'static> ip_name_lookup::HostWithStore<T> for Capnet {
    async fn resolve_addresses(
        store: &Accessor<T, Self>,
        library: Library,
        name: String,
    ) -> wasmtime::Result<Result<Vec<IpAddress>, LookupError>> {
        let grant = store.with(|mut access| access.get().ctx.library_grant(&library));
        Ok(crate::p3::ip_name_lookup::resolve(grant, &name).await)
    }
}
