//! `wasi:sockets/ip-name-lookup@0.3.0`: the core's lookup, checked against `lookup` and
//! DNS-pinned as under 0.2, awaited whole.

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
use crate::grant::Grant;
use crate::p3::bindings::sockets::ip_name_lookup::{ErrorCode, Host, HostWithStore};
use crate::p3::bindings::sockets::types::IpAddress;
use crate::socket::lookup::ResolveAddressStream;
use wasmtime::component::Accessor;
use wasmtime_wasi_io::poll::Pollable;

impl Host for CapnetCtxView<'_> {}

impl<T: CapnetView + 'static> HostWithStore<T> for Capnet {
    async fn resolve_addresses(
        store: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<Vec<IpAddress>, ErrorCode>> {
        let grant = store.with(|mut access| access.get().ctx.root.clone());
        Ok(resolve(grant, &name).await)
    }
}

/// Resolves `name` as `grant` allows: the app's lookup, or a library's through its own import.
pub(crate) async fn resolve(grant: Grant, name: &str) -> Result<Vec<IpAddress>, ErrorCode> {
    let mut lookup = ResolveAddressStream::start(&grant, name)?;
    lookup.ready().await;
    let mut addresses = Vec::new();
    while let Some(ip) = lookup.next_address()? {
        addresses.push(ip.into());
    }
    Ok(addresses)
}
