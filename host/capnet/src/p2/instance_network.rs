//! `wasi:sockets/instance-network`: the instance's root grant as a `network`, and each
//! library's grant for the named imports of the interface that keep a library's network apart
//! from its app's.
//!
//! A composed app imports `instance-network` once for itself and once more for each library,
//! under the label `LIBRARY-instance-network` with the component model's
//! `(implements "wasi:sockets/instance-network")`. The library's network allows a use only
//! where the app's policy and the library's own table (`[library.LIBRARY]`) both allow it; a
//! library the policy does not name gets nothing.

use crate::Capnet;
use crate::ctx::{CapnetCtxView, CapnetView};
use crate::p2::bindings::named_imports::wasi::sockets::instance_network as named;
use crate::p2::bindings::sockets::instance_network::Host;
use crate::p2::network::Network;
use std::sync::Arc;
use wasmtime::component::{Component, Linker, Resource};

/// The label suffix of a library's named import of `instance-network`.
const SUFFIX: &str = "-instance-network";

impl Host for CapnetCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        let grant = self.ctx.root.clone();
        Ok(self.table.push(Network { grant })?)
    }
}

/// The library a named import serves, by name.
#[derive(Clone, Debug)]
pub struct Library(Arc<str>);

impl named::Host for CapnetCtxView<'_> {
    fn instance_network(&mut self, library: Library) -> wasmtime::Result<Resource<Network>> {
        let grant = self.ctx.root.library(&library.0);
        Ok(self.table.push(Network { grant })?)
    }
}

/// Serves every library's named import of `wasi:sockets/instance-network` in `component`
/// (labels `LIBRARY-instance-network`) with that library's grant; returns the libraries'
/// names. Call it with the component before instantiating it; [`crate::add_to_linker`] serves
/// the app's own import.
///
/// # Errors
/// When an import implements `instance-network` under a label not of that form, or the
/// linker already defines it.
pub fn add_libraries_to_linker<T: CapnetView + 'static>(
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<Vec<String>> {
    let mut names = Vec::new();
    named::add_to_linker::<T, Capnet>(
        linker,
        component,
        |label| {
            let name = label.strip_suffix(SUFFIX).filter(|n| !n.is_empty());
            let Some(name) = name else {
                wasmtime::bail!(
                    "import \"{label}\" implements wasi:sockets/instance-network: label it LIBRARY{SUFFIX}, as in weather{SUFFIX}"
                );
            };
            names.push(name.to_owned());
            Ok(Library(Arc::from(name)))
        },
        T::capnet,
    )?;
    Ok(names)
}
