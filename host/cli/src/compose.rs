//! `capnet compose`'s work: one component from an app and its libraries, built with wac's
//! composition graph (`wac-graph`), in the shape capnet's per-library grants rely on.
//!
//! - Each library's exports are plugged into the imports of the same interface (or a
//!   semver-compatible one) of the app and of the other libraries. Libraries that import each
//!   other in a cycle are refused.
//! - A library's imports of the sockets interfaces that carry authority become imports of the
//!   composition of its own, labelled `NAME-<interface>` and annotated
//!   `(implements "wasi:sockets/<interface>@<version>")` ([`authority_interface`]): 0.2's
//!   `instance-network`, `tcp-create-socket` and `udp-create-socket`, 0.3's `types` and
//!   `ip-name-lookup`. Every version of one interface the library imports is plugged into the
//!   one label, so no copy of it can reach the app's unlabelled import.
//! - Its other imports (0.2's `network`, `tcp`, `udp`, `ip-name-lookup`, which act only through
//!   a `network` or socket handle, and the rest of WASI) are shared with the app's imports of
//!   the same interface, so a `network` or a socket is one type on both sides.
//! - A library may not import `capnet:sockets` (the app's pre-opens and attenuation), nor
//!   anything else it could not be given safely: a plain name no library exports (capnet reads
//!   plain names as libraries' labels), an unknown `wasi:sockets` interface or version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use wac_graph::types::{ItemKind, Package, Type, UsedType, are_semver_compatible};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId, Processor};

/// A library to compose: the name its grant and its labels go by, and its component.
#[derive(Debug, Clone)]
pub struct Library {
    /// The library's name: `weather` labels its imports `weather-instance-network`, ... and is
    /// the `NAME` of `[library.NAME]` in a policy.
    pub name: String,
    /// The library's component (binary).
    pub component: Vec<u8>,
}

/// A composed component, and where each library's imports went.
#[derive(Debug, Clone)]
pub struct Composition {
    /// The composed component (binary).
    pub component: Vec<u8>,
    /// Per library, in the order given: its labelled imports.
    pub libraries: Vec<LibraryPlacement>,
}

/// Where one library's imports went.
#[derive(Debug, Clone, Default)]
pub struct LibraryPlacement {
    /// The library's name.
    pub name: String,
    /// Each labelled import of the composition: the label, the interface its `implements`
    /// annotation names, and the library's own imports plugged into it (several versions of
    /// the interface if it imports several).
    pub labelled: Vec<(String, String, Vec<String>)>,
    /// The library's imports served by another library's exports: (import, library).
    pub plugged: Vec<(String, String)>,
    /// The library's imports shared with the app's (or passed through as the composition's).
    pub shared: Vec<String>,
}

/// Why a composition could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// A library name that cannot start a label.
    #[error(
        "library name \"{0}\" is not a label: write lowercase words of letters and digits joined by '-', as in weather or geo-ip"
    )]
    BadLibraryName(String),
    /// The same library name twice.
    #[error("library \"{0}\" is given twice")]
    DuplicateLibrary(String),
    /// A file that is not a component wac can read.
    #[error("{component}: not a WebAssembly component that capnet compose can read")]
    Unreadable {
        /// `the app` or `library NAME`.
        component: String,
        /// wac's reason.
        #[source]
        source: anyhow::Error,
    },
    /// A library that imports `capnet:sockets`.
    #[error(
        "library {library} imports {import}: capnet:sockets (pre-opened listeners, attenuation) is the app's; a library reaches the network only through its own wasi:sockets imports"
    )]
    CapnetSockets {
        /// The library.
        library: String,
        /// Its import.
        import: String,
    },
    /// A library import that cannot be given to it safely.
    #[error("library {library} imports \"{import}\", which capnet compose cannot place: {why}")]
    Unplaceable {
        /// The library.
        library: String,
        /// Its import.
        import: String,
        /// Why.
        why: &'static str,
    },
    /// A library's sockets export that the app or another library imports.
    #[error(
        "library {library} exports {export}, which {importer} imports: sockets come from the host, and capnet compose never plugs a library's into another component"
    )]
    SocketsExport {
        /// The library.
        library: String,
        /// Its export.
        export: String,
        /// `the app` or `library NAME`.
        importer: String,
    },
    /// An import that more than one library exports.
    #[error(
        "{importer} imports {import}, which more than one library exports ({libraries}): compose only the one it should use"
    )]
    Ambiguous {
        /// `the app` or `library NAME`.
        importer: String,
        /// The import.
        import: String,
        /// The libraries, joined by ", ".
        libraries: String,
    },
    /// Libraries that import each other's exports.
    #[error(
        "libraries import each other's exports in a cycle ({0}): each is instantiated before what imports it, so a cycle cannot be composed"
    )]
    Cycle(String),
    /// A library whose exports nothing imports.
    #[error(
        "library {0}: neither the app nor another library imports anything it exports (check its name and its exports' versions)"
    )]
    Unused(String),
    /// The app imports a name that a library's label takes.
    #[error(
        "the app imports \"{import}\", the label capnet compose gives library {library}'s own import: name the library otherwise"
    )]
    LabelTaken {
        /// The app's import.
        import: String,
        /// The library.
        library: String,
    },
    /// An export that does not fit the import it was plugged into.
    #[error("{importer}'s import {import} does not fit library {library}'s export {export}")]
    Mismatch {
        /// `the app` or `library NAME`.
        importer: String,
        /// The import.
        import: String,
        /// The exporting library.
        library: String,
        /// Its export.
        export: String,
        /// wac's reason.
        #[source]
        source: anyhow::Error,
    },
    /// Versions of one sockets interface a library imports that cannot share its label.
    #[error(
        "library {library} imports {import}, which cannot share the labelled import {label} with {highest}"
    )]
    Label {
        /// The library.
        library: String,
        /// Its import that does not fit.
        import: String,
        /// The label.
        label: String,
        /// The version whose type the label has.
        highest: String,
        /// wac's reason.
        #[source]
        source: anyhow::Error,
    },
    /// wac could not build or encode the graph (types that do not merge, ...).
    #[error("composing failed")]
    Graph(#[source] anyhow::Error),
}

/// The sockets interfaces whose import is a capability: whoever imports one may open sockets
/// (0.2: a `network`, or a socket; 0.3: everything). For `wasi:sockets/<interface>@<version>`
/// it answers `Some(true)` when the import carries authority, `Some(false)` when it acts only
/// through a handle that does (0.2's `network`, `tcp`, `udp`, `ip-name-lookup`), and `None`
/// for an interface or version capnet does not serve.
pub fn authority_interface(interface: &str, version: &semver::Version) -> Option<bool> {
    // Which carry authority is the load-time check's own list, so the two never disagree.
    if capnet::Authority::of(&format!("wasi:sockets/{interface}@{version}")).is_some() {
        return Some(true);
    }
    match (version.major, version.minor, interface) {
        (0, 2, "network" | "tcp" | "udp" | "ip-name-lookup") => Some(false),
        _ => None,
    }
}

/// An extern name of the form `namespace:package/interface[@version]`.
struct InterfaceName<'a> {
    package: &'a str,
    interface: &'a str,
    version: Option<semver::Version>,
}

impl<'a> InterfaceName<'a> {
    fn parse(name: &'a str) -> Option<Self> {
        if name.contains(['=', '<', '>']) {
            return None;
        }
        let (path, version) = match name.split_once('@') {
            Some((path, version)) => (path, Some(semver::Version::parse(version).ok()?)),
            None => (name, None),
        };
        let (package, interface) = path.split_once('/')?;
        package.contains(':').then_some(Self {
            package,
            interface,
            version,
        })
    }

    fn is(&self, package: &str) -> bool {
        self.package.eq_ignore_ascii_case(package)
    }
}

/// Whether `name` is an import or export of `wasi:sockets` or `capnet:sockets`.
fn is_sockets(name: &str) -> bool {
    InterfaceName::parse(name).is_some_and(|n| n.is("wasi:sockets") || n.is("capnet:sockets"))
}

/// Where one library import goes.
enum Place {
    /// Into the library's labelled import of this interface.
    Labelled { interface: String },
    /// Served by another library's export.
    Plugged { library: usize, export: String },
    /// Shared with the app's imports, or passed through.
    Shared,
}

/// The components to compose, read: each one's package in the graph.
struct Parts {
    graph: CompositionGraph,
    app: PackageId,
    libraries: Vec<PackageId>,
    names: Vec<String>,
}

impl Parts {
    fn imports(&self, package: PackageId) -> Vec<(String, ItemKind)> {
        let world = &self.graph.types()[self.graph[package].ty()];
        world.imports.iter().map(|(n, k)| (n.clone(), *k)).collect()
    }

    fn exports(&self, package: PackageId) -> Vec<String> {
        let world = &self.graph.types()[self.graph[package].ty()];
        world.exports.keys().cloned().collect()
    }

    /// The library (other than `importer`) whose export serves `import`, and that export.
    fn provider(
        &self,
        importer: Option<usize>,
        import: &str,
    ) -> Result<Option<(usize, String)>, ComposeError> {
        let mut found: Vec<(usize, String)> = Vec::new();
        for (index, &library) in self.libraries.iter().enumerate() {
            if Some(index) == importer {
                continue;
            }
            let exports = self.exports(library);
            let export = exports
                .iter()
                .find(|e| *e == import)
                .or_else(|| exports.iter().find(|e| are_semver_compatible(e, import)));
            if let Some(export) = export {
                found.push((index, export.clone()));
            }
        }
        let who = || match importer {
            Some(i) => format!("library {}", self.names[i]),
            None => String::from("the app"),
        };
        match found.as_slice() {
            [] => Ok(None),
            [(library, export)] if is_sockets(export) => Err(ComposeError::SocketsExport {
                library: self.names[*library].clone(),
                export: export.clone(),
                importer: who(),
            }),
            [one] => Ok(Some(one.clone())),
            many => Err(ComposeError::Ambiguous {
                importer: who(),
                import: import.to_owned(),
                libraries: many
                    .iter()
                    .map(|(i, _)| self.names[*i].as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Where library `index`'s import `import` goes.
    fn place(&self, index: usize, import: &str) -> Result<Place, ComposeError> {
        let library = &self.names[index];
        let unplaceable = |why| ComposeError::Unplaceable {
            library: library.clone(),
            import: import.to_owned(),
            why,
        };
        let Some(name) = InterfaceName::parse(import) else {
            // A plain name: only another library's export may serve it. Left to pass through,
            // capnet would read it as a label, maybe another library's.
            return match self.provider(Some(index), import)? {
                Some((library, export)) => Ok(Place::Plugged { library, export }),
                None => Err(unplaceable(
                    "no library exports it, and an import under a plain name would pass through to the composition, where capnet reads plain names as libraries' labels",
                )),
            };
        };
        if name.is("capnet:sockets") {
            return Err(ComposeError::CapnetSockets {
                library: library.clone(),
                import: import.to_owned(),
            });
        }
        if name.is("wasi:sockets") {
            let authority = name
                .version
                .as_ref()
                .filter(|_| name.package == "wasi:sockets")
                .and_then(|v| authority_interface(name.interface, v));
            return match authority {
                Some(true) => Ok(Place::Labelled {
                    interface: name.interface.to_owned(),
                }),
                Some(false) => Ok(Place::Shared),
                None => Err(unplaceable(
                    "capnet serves wasi:sockets 0.2.x (network, instance-network, tcp, tcp-create-socket, udp, udp-create-socket, ip-name-lookup) and 0.3.x (types, ip-name-lookup)",
                )),
            };
        }
        Ok(match self.provider(Some(index), import)? {
            Some((library, export)) => Place::Plugged { library, export },
            None => Place::Shared,
        })
    }
}

/// Composes `app` with `libraries`: see the module's documentation for what goes where.
///
/// # Errors
/// [`ComposeError`]: a bad library name, a component that cannot be read, a library import that
/// cannot be placed (`capnet:sockets`, an unknown sockets interface, a plain name no library
/// exports), libraries in a cycle or unused, types that do not fit.
pub fn compose(app: &[u8], libraries: &[Library]) -> Result<Composition, ComposeError> {
    let mut names: Vec<String> = Vec::new();
    for library in libraries {
        if !is_label(&library.name) {
            return Err(ComposeError::BadLibraryName(library.name.clone()));
        }
        if names.contains(&library.name) {
            return Err(ComposeError::DuplicateLibrary(library.name.clone()));
        }
        names.push(library.name.clone());
    }

    let mut graph = CompositionGraph::new();
    let register = |graph: &mut CompositionGraph, key: String, who: String, bytes: &[u8]| {
        let unreadable = |source| ComposeError::Unreadable {
            component: who.clone(),
            source,
        };
        let package = Package::from_bytes(&key, None, bytes.to_vec(), graph.types_mut())
            .map_err(unreadable)?;
        graph
            .register_package(package)
            .map_err(|e| unreadable(e.into()))
    };
    let app_package = register(&mut graph, "capnet:app".into(), "the app".into(), app)?;
    let mut packages = Vec::new();
    for library in libraries {
        let key = format!("library:{}", library.name);
        let who = format!("library {}", library.name);
        packages.push(register(&mut graph, key, who, &library.component)?);
    }
    let mut parts = Parts {
        graph,
        app: app_package,
        libraries: packages,
        names,
    };

    // Where every import goes, before anything is built: refusals come first.
    let mut places: Vec<Vec<(String, Place)>> = Vec::new();
    for index in 0..libraries.len() {
        let mut placed = Vec::new();
        for (import, _) in parts.imports(parts.libraries[index]) {
            let place = parts.place(index, &import)?;
            placed.push((import, place));
        }
        places.push(placed);
    }
    let labels: HashMap<String, usize> = places
        .iter()
        .enumerate()
        .flat_map(|(index, placed)| {
            let name = &parts.names[index];
            placed.iter().filter_map(move |(_, place)| match place {
                Place::Labelled { interface } => Some((format!("{name}-{interface}"), index)),
                _ => None,
            })
        })
        .collect();
    let mut app_plugs = Vec::new();
    for (import, _) in parts.imports(parts.app) {
        if let Some(&library) = labels.get(&import) {
            return Err(ComposeError::LabelTaken {
                import,
                library: parts.names[library].clone(),
            });
        }
        // The app's sockets are the host's, never a library's.
        if InterfaceName::parse(&import).is_some_and(|n| n.is("wasi:sockets")) {
            continue;
        }
        if let Some((library, export)) = parts.provider(None, &import)? {
            app_plugs.push((import, library, export));
        }
    }
    let order = instantiation_order(&parts.names, &places)?;
    for (index, name) in parts.names.iter().enumerate() {
        let used = app_plugs.iter().any(|(_, l, _)| *l == index)
            || places.iter().flatten().any(
                |(_, place)| matches!(place, Place::Plugged { library, .. } if *library == index),
            );
        if !used {
            return Err(ComposeError::Unused(name.clone()));
        }
    }

    // Build: each library after the ones it imports from, then the app.
    let mut instances: Vec<Option<NodeId>> = vec![None; libraries.len()];
    let mut placements: Vec<LibraryPlacement> = parts
        .names
        .iter()
        .map(|name| LibraryPlacement {
            name: name.clone(),
            ..Default::default()
        })
        .collect();
    for &index in &order {
        let package = parts.libraries[index];
        let name = parts.names[index].clone();
        let instance = parts.graph.instantiate(package);
        parts.graph.set_node_name(instance, name.clone());
        let kinds: HashMap<String, ItemKind> = parts.imports(package).into_iter().collect();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let placement = &mut placements[index];
        for (import, place) in &places[index] {
            match place {
                Place::Labelled { interface } => groups
                    .entry(interface.clone())
                    .or_default()
                    .push(import.clone()),
                Place::Plugged { library, export } => {
                    let from = instances[*library].expect("instantiated in dependency order");
                    plug(
                        &mut parts.graph,
                        (instance, &format!("library {name}"), import),
                        (from, &parts.names[*library], export),
                    )?;
                    placement
                        .plugged
                        .push((import.clone(), parts.names[*library].clone()));
                }
                Place::Shared => placement.shared.push(import.clone()),
            }
        }
        let labelled: HashSet<String> = groups.values().flatten().cloned().collect();
        for (interface, mut imports) in groups {
            // The highest version's type: each lower 0.2.x one is a semver-compatible subset.
            imports.sort_by_key(|i| InterfaceName::parse(i).and_then(|n| n.version));
            let highest = imports.last().expect("a group has an import").clone();
            let label = format!("{name}-{interface}");
            let kind = without_labelled_uses(&mut parts.graph, kinds[&highest], &labelled);
            let node = parts
                .graph
                .import(label.clone(), kind)
                .map_err(|e| ComposeError::Graph(e.into()))?;
            for import in &imports {
                parts
                    .graph
                    .set_instantiation_argument(instance, import, node)
                    .map_err(|e| ComposeError::Label {
                        library: name.clone(),
                        import: import.clone(),
                        label: label.clone(),
                        highest: highest.clone(),
                        source: e.into(),
                    })?;
            }
            placement.labelled.push((label, highest, imports));
        }
        instances[index] = Some(instance);
    }
    let app = parts.graph.instantiate(parts.app);
    parts.graph.set_node_name(app, "app");
    for (import, library, export) in &app_plugs {
        let from = instances[*library].expect("every library is instantiated");
        plug(
            &mut parts.graph,
            (app, "the app", import),
            (from, &parts.names[*library], export),
        )?;
    }
    for export in parts.exports(parts.app) {
        let node = parts
            .graph
            .alias_instance_export(app, &export)
            .map_err(|e| ComposeError::Graph(e.into()))?;
        parts
            .graph
            .export(node, export)
            .map_err(|e| ComposeError::Graph(e.into()))?;
    }
    let component = parts
        .graph
        .encode(EncodeOptions {
            processor: Some(Processor {
                name: "capnet compose",
                version: env!("CARGO_PKG_VERSION"),
            }),
            ..EncodeOptions::default()
        })
        .map_err(|e| ComposeError::Graph(e.into()))?;
    // Each label with the interface its annotation names, as encoded: wac merges the label's
    // type with the app's import of the interface, whose version it may then carry.
    let annotations: HashMap<String, String> = imports(&component)?
        .into_iter()
        .filter_map(|(name, implements)| Some((name, implements?)))
        .collect();
    for placement in &mut placements {
        for (label, implements, _) in &mut placement.labelled {
            if let Some(annotation) = annotations.get(label.as_str()) {
                implements.clone_from(annotation);
            }
        }
    }
    Ok(Composition {
        component,
        libraries: placements,
    })
}

/// `kind` without the value types it uses from the library's own labelled interfaces (0.3's
/// `ip-name-lookup` uses `types`' `ip-address`): wac would alias them from an unlabelled import of
/// that interface, adding one that reaches no component when the app has none. A value type is
/// encoded in place instead; a resource stays used (no such use exists in wasi:sockets).
fn without_labelled_uses(
    graph: &mut CompositionGraph,
    kind: ItemKind,
    labelled: &HashSet<String>,
) -> ItemKind {
    let ItemKind::Instance(id) = kind else {
        return kind;
    };
    let types = graph.types();
    let dropped = |(name, used): (&String, &UsedType)| {
        let from = &types[used.interface];
        let is_labelled = from.id.as_ref().is_some_and(|i| labelled.contains(i));
        let export = used.name.as_ref().unwrap_or(name);
        let is_resource = matches!(
            from.exports.get(export),
            Some(ItemKind::Type(Type::Resource(_)))
        );
        is_labelled && !is_resource
    };
    if !types[id].uses.iter().any(dropped) {
        return kind;
    }
    let mut copy = types[id].clone();
    copy.uses.retain(|name, used| !dropped((name, used)));
    ItemKind::Instance(graph.types_mut().add_interface(copy))
}

/// Plugs the export `export` of instance `from` into the import `import` of `into`; each side
/// comes with how messages name it (`the app`, `library NAME`; the exporter by its name).
fn plug(
    graph: &mut CompositionGraph,
    (into, importer, import): (NodeId, &str, &str),
    (from, library, export): (NodeId, &str, &str),
) -> Result<(), ComposeError> {
    let mismatch = |source: anyhow::Error| ComposeError::Mismatch {
        importer: importer.to_owned(),
        import: import.to_owned(),
        library: library.to_owned(),
        export: export.to_owned(),
        source,
    };
    let node = graph
        .alias_instance_export(from, export)
        .map_err(|e| mismatch(e.into()))?;
    graph
        .set_instantiation_argument(into, import, node)
        .map_err(|e| mismatch(e.into()))
}

/// The libraries in an order where each comes after every library it imports from, or the
/// cycle that prevents one.
fn instantiation_order(
    names: &[String],
    places: &[Vec<(String, Place)>],
) -> Result<Vec<usize>, ComposeError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        index: usize,
        places: &[Vec<(String, Place)>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[index] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&i| i == index).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(index);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[index] = Mark::Visiting;
        path.push(index);
        for (_, place) in &places[index] {
            if let Place::Plugged { library, .. } = place {
                visit(*library, places, marks, path, order)?;
            }
        }
        path.pop();
        marks[index] = Mark::Done;
        order.push(index);
        Ok(())
    }
    let mut marks = vec![Mark::New; names.len()];
    let mut order = Vec::new();
    for index in 0..names.len() {
        visit(index, places, &mut marks, &mut Vec::new(), &mut order).map_err(|cycle| {
            ComposeError::Cycle(
                cycle
                    .iter()
                    .map(|&i| names[i].as_str())
                    .collect::<Vec<_>>()
                    .join(" -> "),
            )
        })?;
    }
    Ok(order)
}

/// Whether `name` is a component-model label of lowercase words: `weather`, `geo-ip`.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// A composition's top-level imports: each name, and the interface an `(implements "…")`
/// annotation says it implements.
///
/// # Errors
/// Bytes that are not a valid component's.
pub fn imports(component: &[u8]) -> Result<Vec<(String, Option<String>)>, ComposeError> {
    use wasmparser::{Parser, Payload};
    let mut imports = Vec::new();
    let mut depth = 0usize;
    let graph = |e: wasmparser::BinaryReaderError| ComposeError::Graph(e.into());
    for payload in Parser::new(0).parse_all(component) {
        match payload.map_err(graph)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(graph)?;
                    imports.push((
                        import.name.name.to_owned(),
                        import.name.implements.map(str::to_owned),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// A composition described in a file (`capnet compose --config FILE`), for repeatable builds.
/// Paths are relative to the file:
///
/// ```toml
/// app = "nano-app.wasm"
/// output = "nano-app.composed.wasm"
///
/// [library]
/// weather = "weather.wasm"
/// metrics = "metrics.wasm"
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    /// The app component.
    pub app: PathBuf,
    /// Each library's name and component.
    pub libraries: Vec<(String, PathBuf)>,
    /// Where to write the composition.
    pub output: PathBuf,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeToml {
    app: PathBuf,
    output: PathBuf,
    #[serde(default)]
    library: BTreeMap<String, PathBuf>,
}

impl ComposeFile {
    /// Reads a composition file; its paths are made relative to the file's directory.
    ///
    /// # Errors
    /// A file that cannot be read, or is not TOML of the form above (the message names the
    /// line and column).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("")))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a composition file whose paths are relative to `dir`.
    ///
    /// # Errors
    /// Text that is not TOML of the form above.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let file: ComposeToml = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self {
            app: dir.join(file.app),
            libraries: file
                .library
                .into_iter()
                .map(|(name, path)| (name, dir.join(path)))
                .collect(),
            output: dir.join(file.output),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing `imports` (empty instances) and exporting an empty instance
    /// under each of `exports`.
    fn component(imports: &[&str], exports: &[&str]) -> Vec<u8> {
        let mut text = String::from("(component\n");
        for import in imports {
            text += &format!("  (import \"{import}\" (instance))\n");
        }
        text += "  (instance $empty)\n";
        for export in exports {
            text += &format!("  (export \"{export}\" (instance $empty))\n");
        }
        text += ")";
        wat::parse_str(&text).unwrap()
    }

    fn library(name: &str, imports: &[&str], exports: &[&str]) -> Library {
        Library {
            name: name.into(),
            component: component(imports, exports),
        }
    }

    const WEATHER: &str = "capnet:example/weather@0.1.0";

    fn refusal(app: &[&str], libraries: &[Library]) -> String {
        compose(&component(app, &[]), libraries)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_version_of_a_librarys_authority_import_goes_to_its_one_label() {
        let app = component(&[WEATHER, "wasi:sockets/instance-network@0.2.6"], &[]);
        let weather = library(
            "weather",
            &[
                "wasi:sockets/instance-network@0.2.0",
                "wasi:sockets/instance-network@0.2.6",
                "wasi:sockets/network@0.2.0",
                "wasi:sockets/types@0.3.0",
            ],
            &[WEATHER],
        );
        let composition = compose(&app, &[weather]).unwrap();
        let mut imports = imports(&composition.component).unwrap();
        imports.sort();
        let label = |name: &str, implements: &str| (name.to_owned(), Some(implements.to_owned()));
        assert_eq!(
            imports,
            [
                // The app's own, unlabelled; the library's network shared with it.
                ("wasi:sockets/instance-network@0.2.6".to_owned(), None),
                ("wasi:sockets/network@0.2.0".to_owned(), None),
                label(
                    "weather-instance-network",
                    "wasi:sockets/instance-network@0.2.6"
                ),
                label("weather-types", "wasi:sockets/types@0.3.0"),
            ]
        );
        let placement = &composition.libraries[0];
        assert_eq!(
            placement.labelled[0].2,
            [
                "wasi:sockets/instance-network@0.2.0",
                "wasi:sockets/instance-network@0.2.6"
            ]
        );
    }

    #[test]
    fn a_0_3_librarys_lookup_label_needs_no_unlabelled_types_import() {
        // `ip-name-lookup` uses `types`' `ip-address`; the app imports no 0.3 sockets.
        let weather = Library {
            name: "weather".into(),
            component: wat::parse_str(
                r#"(component
                    (import "wasi:sockets/types@0.3.0" (instance $types
                        (type $ip (variant (case "ipv4" u32) (case "ipv6" u64)))
                        (export "ip-address" (type (eq $ip)))))
                    (alias export $types "ip-address" (type $ip))
                    (import "wasi:sockets/ip-name-lookup@0.3.0" (instance
                        (export "ip-address" (type (eq $ip)))))
                    (instance $empty)
                    (export "capnet:example/weather@0.1.0" (instance $empty)))"#,
            )
            .unwrap(),
        };
        let composition = compose(&component(&[WEATHER], &[]), &[weather]).unwrap();
        let mut imports = imports(&composition.component).unwrap();
        imports.sort();
        assert_eq!(
            imports,
            [
                (
                    "weather-ip-name-lookup".to_owned(),
                    Some("wasi:sockets/ip-name-lookup@0.3.0".to_owned())
                ),
                (
                    "weather-types".to_owned(),
                    Some("wasi:sockets/types@0.3.0".to_owned())
                ),
            ]
        );
    }

    #[test]
    fn a_library_importing_capnet_sockets_is_refused_by_name() {
        let evil = library("evil", &["capnet:sockets/preopens@0.1.0"], &[WEATHER]);
        assert_eq!(
            refusal(&[WEATHER], &[evil]),
            "library evil imports capnet:sockets/preopens@0.1.0: capnet:sockets (pre-opened listeners, attenuation) is the app's; a library reaches the network only through its own wasi:sockets imports"
        );
    }

    #[test]
    fn a_library_import_under_a_plain_name_no_library_exports_is_refused() {
        // Passed through, it would be served as library metrics' label.
        let evil = library("evil", &["metrics-instance-network"], &[WEATHER]);
        let message = refusal(&[WEATHER], &[evil]);
        assert!(
            message.starts_with(
                "library evil imports \"metrics-instance-network\", which capnet compose cannot place: no library exports it"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_sockets_import_capnet_does_not_serve_is_refused() {
        for import in [
            "wasi:sockets/instance-network@0.1.0",
            "wasi:sockets/network@0.3.0",
            "wasi:sockets/instance-network",
            "wasi:sockets/tcp-create-socket@0.4.0",
        ] {
            let evil = library("evil", &[import], &[WEATHER]);
            let message = refusal(&[WEATHER], &[evil]);
            assert!(
                message.starts_with(&format!(
                    "library evil imports \"{import}\", which capnet compose cannot place: capnet serves wasi:sockets 0.2.x"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn libraries_that_import_each_other_are_refused_as_a_cycle() {
        let a = library("geo", &["x:y/time"], &[WEATHER]);
        let b = library("clock", &[WEATHER], &["x:y/time"]);
        assert_eq!(
            refusal(&[WEATHER], &[a, b]),
            "libraries import each other's exports in a cycle (geo -> clock -> geo): each is instantiated before what imports it, so a cycle cannot be composed"
        );
    }

    #[test]
    fn a_library_may_serve_another_library() {
        let geo = library("geo", &["x:y/time"], &[WEATHER]);
        let clock = library(
            "clock",
            &["wasi:sockets/udp-create-socket@0.2.6"],
            &["x:y/time"],
        );
        let composition = compose(&component(&[WEATHER], &[]), &[geo, clock]).unwrap();
        assert_eq!(
            composition.libraries[0].plugged,
            [("x:y/time".to_owned(), "clock".to_owned())]
        );
        assert_eq!(
            imports(&composition.component).unwrap(),
            [(
                "clock-udp-create-socket".to_owned(),
                Some("wasi:sockets/udp-create-socket@0.2.6".to_owned())
            )]
        );
    }

    #[test]
    fn a_library_nothing_imports_is_refused() {
        let idle = library("idle", &[], &["x:y/unused"]);
        assert_eq!(
            refusal(&[], &[idle]),
            "library idle: neither the app nor another library imports anything it exports (check its name and its exports' versions)"
        );
    }

    #[test]
    fn an_import_two_libraries_export_is_refused() {
        let one = library("one", &[], &[WEATHER]);
        let two = library("two", &[], &["capnet:example/weather@0.1.2"]);
        assert_eq!(
            refusal(&[WEATHER], &[one, two]),
            "the app imports capnet:example/weather@0.1.0, which more than one library exports (one, two): compose only the one it should use"
        );
    }

    #[test]
    fn a_librarys_sockets_export_is_never_plugged_into_the_app() {
        let fake = library("fake", &[], &["capnet:sockets/attenuate@0.1.0"]);
        assert_eq!(
            refusal(&["capnet:sockets/attenuate@0.1.0"], &[fake]),
            "library fake exports capnet:sockets/attenuate@0.1.0, which the app imports: sockets come from the host, and capnet compose never plugs a library's into another component"
        );
    }

    #[test]
    fn an_app_import_that_takes_a_librarys_label_is_refused() {
        let weather = library(
            "weather",
            &["wasi:sockets/instance-network@0.2.6"],
            &[WEATHER],
        );
        assert_eq!(
            refusal(&[WEATHER, "weather-instance-network"], &[weather]),
            "the app imports \"weather-instance-network\", the label capnet compose gives library weather's own import: name the library otherwise"
        );
    }

    #[test]
    fn authority_bearing_sockets_interfaces_are_the_ones_that_create_sockets() {
        let v = |s| semver::Version::parse(s).unwrap();
        for (interface, version, authority) in [
            ("instance-network", "0.2.0", Some(true)),
            ("tcp-create-socket", "0.2.6", Some(true)),
            ("udp-create-socket", "0.2.12", Some(true)),
            ("network", "0.2.6", Some(false)),
            ("tcp", "0.2.6", Some(false)),
            ("udp", "0.2.6", Some(false)),
            ("ip-name-lookup", "0.2.6", Some(false)),
            ("types", "0.3.0", Some(true)),
            ("ip-name-lookup", "0.3.0", Some(true)),
            ("ip-name-lookup", "0.3.0-rc-2025-09-16", Some(true)),
            ("network", "0.3.0", None),
            ("instance-network", "0.1.0", None),
            ("types", "1.0.0", None),
        ] {
            assert_eq!(
                authority_interface(interface, &v(version)),
                authority,
                "{interface}@{version}"
            );
        }
    }

    #[test]
    fn library_names_are_lowercase_labels() {
        for good in ["weather", "geo-ip", "a1", "x-b2"] {
            assert!(is_label(good), "{good}");
        }
        for bad in [
            "",
            "Weather",
            "geo_ip",
            "-x",
            "x-",
            "1a",
            "a--b",
            "wasi:sockets",
        ] {
            assert!(!is_label(bad), "{bad}");
        }
    }

    #[test]
    fn a_compose_file_names_paths_relative_to_itself() {
        let file = ComposeFile::parse(
            "app = \"app.wasm\"\noutput = \"../out.wasm\"\n[library]\nweather = \"lib/w.wasm\"\n",
            Path::new("/x/y"),
        )
        .unwrap();
        assert_eq!(
            file,
            ComposeFile {
                app: "/x/y/app.wasm".into(),
                libraries: vec![("weather".into(), "/x/y/lib/w.wasm".into())],
                output: "/x/y/../out.wasm".into(),
            }
        );
    }

    #[test]
    fn a_compose_file_with_an_unknown_key_is_refused_by_line() {
        let error = ComposeFile::parse(
            "app = \"a.wasm\"\noutput = \"o.wasm\"\nlibraries = {}\n",
            Path::new(""),
        )
        .unwrap_err();
        assert!(
            error.contains("line 3") && error.contains("unknown field `libraries`"),
            "{error}"
        );
    }
}
