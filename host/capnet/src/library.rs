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
/// and [`crate::add_to_linker_p3`] serve the app's own imports. The engine reads the labels'
/// annotations only with `Config::wasm_component_model_implements(true)`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapnetCtxView;
    use wasmtime::component::ResourceTable;
    use wasmtime::{Config, Engine};

    struct Host {
        capnet: CapnetCtx,
        table: ResourceTable,
    }

    impl CapnetView for Host {
        fn capnet(&mut self) -> CapnetCtxView<'_> {
            CapnetCtxView {
                ctx: &mut self.capnet,
                table: &mut self.table,
            }
        }
    }

    /// The libraries `component` (text) names, or the error that refused it.
    fn libraries(component: &str) -> wasmtime::Result<Vec<String>> {
        let mut config = Config::new();
        config
            .wasm_component_model_async(true)
            .wasm_component_model_implements(true);
        let engine = Engine::new(&config)?;
        let component = Component::new(&engine, wat::parse_str(component)?)?;
        add_libraries_to_linker(&mut Linker::<Host>::new(&engine), &component)
    }

    #[test]
    fn each_librarys_labelled_imports_name_it_once_whatever_the_generation() {
        let names = libraries(
            r#"(component
                (import "weather-types" (implements "wasi:sockets/types@0.3.0") (instance))
                (import "weather-ip-name-lookup"
                    (implements "wasi:sockets/ip-name-lookup@0.3.0") (instance))
                (import "metrics-instance-network"
                    (implements "wasi:sockets/instance-network@0.2.6") (instance))
                (import "wasi:sockets/types@0.3.0" (instance))
            )"#,
        )
        .unwrap();
        assert_eq!(names, ["metrics", "weather"]);
    }

    #[test]
    fn an_import_implementing_a_sockets_interface_under_another_label_is_refused_by_name() {
        let error = libraries(
            r#"(component
                (import "weather" (implements "wasi:sockets/types@0.3.0") (instance))
            )"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "import \"weather\" implements wasi:sockets/types: label it LIBRARY-types, as in weather-types"
        );
    }
}
