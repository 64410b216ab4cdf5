//! `wasi:sockets/ip-name-lookup`, checked against the `lookup` right.
//!
//! A lookup the policy refuses answers `permanent-resolver-failure`: 0.2's `resolve-addresses`
//! documents no `access-denied`, and it is what wasmtime-wasi answers when lookups are not
//! allowed, so 0.2 guests see what they were written for. (0.3's lookup error type has
//! `access-denied`, and its front says so.)

use crate::ctx::CapnetCtxView;
use crate::p2::bindings::sockets::ip_name_lookup::{Host, HostResolveAddressStream};
use crate::p2::bindings::sockets::network::IpAddress;
use crate::p2::error::SocketResult;
use crate::p2::network::Network;
use crate::socket::ErrorCode;
use crate::socket::lookup::ResolveAddressStream;
use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::DynPollable;

impl Host for CapnetCtxView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> SocketResult<Resource<ResolveAddressStream>> {
        let grant = &self.table.get(&network)?.grant;
        let stream = ResolveAddressStream::start(grant, &name).map_err(|code| match code {
            ErrorCode::AccessDenied => ErrorCode::PermanentResolverFailure,
            code => code,
        })?;
        Ok(self.table.push(stream)?)
    }
}

impl HostResolveAddressStream for CapnetCtxView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> SocketResult<Option<IpAddress>> {
        let next = self.table.get_mut(&stream)?.next_address()?;
        Ok(next.map(IpAddress::from))
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi_io::poll::subscribe(self.table, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
