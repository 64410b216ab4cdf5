//! `wasi:sockets/ip-name-lookup@0.3.0`: the core's lookup, checked against `lookup` and
//! DNS-pinned as under 0.2, awaited whole.

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
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
        let started = store.with(|mut access| {
            let grant = access.get().ctx.root.clone();
            ResolveAddressStream::start(&grant, &name)
        });
        let mut lookup = match started {
            Ok(lookup) => lookup,
            Err(code) => return Ok(Err(code.into())),
        };
        lookup.ready().await;
        let mut addresses = Vec::new();
        loop {
            match lookup.next_address() {
                Ok(Some(ip)) => addresses.push(ip.into()),
                Ok(None) => return Ok(Ok(addresses)),
                Err(code) => return Ok(Err(code.into())),
            }
        }
    }
}
