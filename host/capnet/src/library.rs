//! The libraries of a composed app: each one's grant, and the linker definitions that serve a
//! component's authority imports with their owners' grants.
//!
//! Whose each import is comes from the component's structure ([`Composition`]), never from its
//! name alone. Under 0.2 a library's `network` is its capability and its own
//! `tcp-create-socket`/`udp-create-socket` make the sockets its limits count; 0.3 has no
//! `network` handle, so a socket keeps the grant of the `types` import that created it and a
//! lookup is decided by the grant of the `ip-name-lookup` import it came through. Either way a
//! library is allowed a use only where the app's policy and the library's own table
//! (`[library.LIBRARY]`) both allow it; a library the policy does not name gets nothing.

use crate::Capnet;
use crate::composition::{Authority, Composition, Owner};
use crate::ctx::{CapnetCtx, CapnetView};
use crate::grant::Grant;
use crate::{p2, p3};
use std::sync::Arc;
use wasmtime::component::Linker;

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

/// Serves each authority import of the component `composition` was read from, by its exact
/// name, with its owner's grant: the app's with the instance's, a library's with the library's.
/// Call it on a linker for this component (a clone of a shared one, say) after
/// [`crate::add_to_linker`] and [`crate::add_to_linker_p3`], which serve the rest.
///
/// Every authority import is defined by its exact name, so none is left to the linker's
/// semver matching, where a library's import of a higher version would stand in for the app's.
/// The linker's shadowing is turned on for these definitions and off afterwards.
///
/// # Errors
/// When the linker refuses a definition.
pub fn add_composition_to_linker<T: CapnetView + 'static>(
    linker: &mut Linker<T>,
    composition: &Composition,
) -> wasmtime::Result<()> {
    use p2::bindings::named_imports::wasi::sockets as p2_named;
    use p2::bindings::{preopens, sockets as p2_app};
    use p3::bindings::named_imports::wasi::sockets as p3_named;
    use p3::bindings::sockets as p3_app;

    linker.allow_shadowing(true);
    let result = composition.imports().iter().try_for_each(|import| {
        let mut inst = linker.instance(&import.name)?;
        let inst = &mut inst;
        let get = T::capnet;
        match (&import.owner, import.authority) {
            (Owner::App, Authority::InstanceNetwork) => {
                p2_app::instance_network::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::App, Authority::TcpCreateSocket) => {
                p2_app::tcp_create_socket::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::App, Authority::UdpCreateSocket) => {
                p2_app::udp_create_socket::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::App, Authority::Types) => {
                p3_app::types::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::App, Authority::IpNameLookup) => {
                p3_app::ip_name_lookup::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::App, Authority::Preopens) => {
                preopens::add_to_linker_instance::<T, Capnet>(inst, get)
            }
            (Owner::Library(name), authority) => {
                let id = Library(Arc::from(name.as_str()));
                match authority {
                    Authority::InstanceNetwork => {
                        p2_named::instance_network::add_to_linker_instance::<T, Capnet>(
                            inst, id, get,
                        )
                    }
                    Authority::TcpCreateSocket => {
                        p2_named::tcp_create_socket::add_to_linker_instance::<T, Capnet>(
                            inst, id, get,
                        )
                    }
                    Authority::UdpCreateSocket => {
                        p2_named::udp_create_socket::add_to_linker_instance::<T, Capnet>(
                            inst, id, get,
                        )
                    }
                    Authority::Types => {
                        p3_named::types::add_to_linker_instance::<T, Capnet>(inst, id, get)
                    }
                    Authority::IpNameLookup => {
                        p3_named::ip_name_lookup::add_to_linker_instance::<T, Capnet>(inst, id, get)
                    }
                    Authority::Preopens => wasmtime::bail!(
                        "import \"{}\" is capnet:sockets/preopens, which is the app's only",
                        import.name
                    ),
                }
            }
        }
    });
    linker.allow_shadowing(false);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapnetCtxView;
    use wasmtime::component::{Component, ResourceTable};
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

    #[test]
    fn authority_imports_of_several_versions_each_link_by_their_own_name() {
        // Each is defined by its exact name, the library's @0.2.99 beside the app's @0.2.0
        // and the @0.2.12 the linker already has, shadowing turned on only for them.
        let wat = r#"(component
            (import "wasi:sockets/instance-network@0.2.0" (instance))
            (import "weather-instance-network"
                (implements "wasi:sockets/instance-network@0.2.99") (instance))
        )"#;
        let mut config = Config::new();
        config
            .wasm_component_model_async(true)
            .wasm_component_model_implements(true);
        let engine = Engine::new(&config).unwrap();
        let wasm = wat::parse_str(wat).unwrap();
        let composition = Composition::read(&wasm).unwrap();
        let mut linker = Linker::<Host>::new(&engine);
        crate::add_to_linker(&mut linker).unwrap();
        add_composition_to_linker(&mut linker, &composition).unwrap();
        let component = Component::new(&engine, &wasm).unwrap();
        linker.instantiate_pre(&component).unwrap();
        assert_eq!(composition.libraries(), ["weather"]);
    }

    /// The app hands the host's `instance-network` on unchanged and the composer plugs it into
    /// library "weather", whose code calls it (the composition's text says how): the engine
    /// would run it, serving the library's call with the app's import and grant. capnet
    /// refuses it at load, before anything is instantiated.
    #[test]
    fn a_library_given_the_apps_reexported_instance_network_is_refused_at_load() {
        let inet = "wasi:sockets/instance-network@0.2.12";
        let wat = include_str!("../tests/compositions/app-reexports-its-network.wat");
        let mut config = Config::new();
        config.wasm_component_model_implements(true);
        let engine = Engine::new(&config).unwrap();
        let wasm = wat::parse_str(wat).unwrap();
        Component::new(&engine, &wasm).expect("the engine accepts the composition");
        let refusal = Composition::read(&wasm).unwrap_err().to_string();
        assert!(
            refusal.starts_with(&format!(
                "import \"{inet}\" reaches both the app and library \"weather\""
            )),
            "{refusal}"
        );
    }
}
