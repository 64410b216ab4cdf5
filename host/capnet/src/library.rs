//! The libraries of a composed app: which of a component's imports are a library's own, and the
//! grant each is served with, for both generations of `wasi:sockets`.
//!
//! A composed app imports the sockets interfaces once for itself and once more for each library
//! that must not hold the app's rights, under a label of the library's own with the component
//! model's `(implements "…")` annotation:
//!
//! | generation | interface            | label                      |
//! |------------|----------------------|----------------------------|
//! | 0.2        | `instance-network`   | `LIBRARY-instance-network` |
//! | 0.3        | `types`              | `LIBRARY-types`            |
//! | 0.3        | `ip-name-lookup`     | `LIBRARY-ip-name-lookup`   |
//!
//! Under 0.2 a library's `network` is its capability, so the other interfaces may be shared
//! with the app: each call takes a `network`. 0.3 has no `network` handle: a socket keeps the
//! grant of the import that created it, and a lookup is decided by the grant of the import it
//! came through. Either way the library is allowed a use only where the app's policy and the
//! library's own table (`[library.LIBRARY]`) both allow it; a library the policy does not name
//! gets nothing.

use crate::Capnet;
use crate::ctx::{CapnetCtx, CapnetView};
use crate::grant::Grant;
use crate::{p2, p3};
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};

/// The library a named import serves, by name.
#[derive(Clone, Debug)]
pub struct Library(pub(crate) Arc<str>);

impl CapnetCtx {
    /// The grant a library's imports are served with: one per library, made at its first use,
    /// so every socket and `network` of the library shares one authority.
    pub(crate) fn library_grant(&mut self, library: &Library) -> Grant {
        if let Some(grant) = self.libraries.get(&library.0) {
            return grant.clone();
        }
        let grant = self.root.library(&library.0);
        self.libraries.insert(library.0.clone(), grant.clone());
        grant
    }
}

/// Serves every library's named imports of the sockets interfaces in `component` (see the
/// [module docs](self) for the labels) with that library's grant, and returns the libraries'
/// names, sorted. Call it with the component before instantiating it; [`crate::add_to_linker`]
/// and [`crate::add_to_linker_p3`] serve the app's own imports.
///
/// # Errors
/// When an import implements one of the interfaces under a label not of its form, or the
/// linker already defines it.
pub fn add_libraries_to_linker<T: CapnetView + 'static>(
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<Vec<String>> {
    let mut names = BTreeSet::new();
    // The library a label names: `weather` for `weather-types`, when `interface` is `types`.
    let mut library = |interface: &str, label: &str| {
        let name = label
            .strip_suffix(interface)
            .and_then(|n| n.strip_suffix('-'))
            .filter(|n| !n.is_empty());
        let Some(name) = name else {
            wasmtime::bail!(
                "import \"{label}\" implements wasi:sockets/{interface}: label it LIBRARY-{interface}, as in weather-{interface}"
            );
        };
        names.insert(name.to_owned());
        Ok(Library(Arc::from(name)))
    };
    p2::bindings::named_imports::wasi::sockets::instance_network::add_to_linker::<T, Capnet>(
        linker,
        component,
        |label| library("instance-network", label),
        T::capnet,
    )?;
    p3::bindings::named_imports::wasi::sockets::types::add_to_linker::<T, Capnet>(
        linker,
        component,
        |label| library("types", label),
        T::capnet,
    )?;
    p3::bindings::named_imports::wasi::sockets::ip_name_lookup::add_to_linker::<T, Capnet>(
        linker,
        component,
        |label| library("ip-name-lookup", label),
        T::capnet,
    )?;
    Ok(names.into_iter().collect())
}
