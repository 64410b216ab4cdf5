//! Who each of a component's network imports belongs to, read from the component's structure.
//!
//! A composed app is one component holding the app and its libraries as nested components,
//! wired together by instantiation arguments. The composition's own imports flow into them
//! through aliases, instance exports and bags of exports, and back out of a nested component
//! that exports an import of its own unchanged (a call of that export is a call of the import,
//! served with the import's grant whoever makes it). [`Composition::read`] follows those flows
//! and learns, for every import that carries network authority, which nested components
//! receive it. The labels a tool wrote (`weather-instance-network`) name a library's grant, but
//! they only name it: an import is a library's because the library's component receives it.
//!
//! An import carries authority when its functions create sockets or hand out a grant:
//!
//! | generation | interfaces                                                   |
//! |------------|--------------------------------------------------------------|
//! | 0.2        | `instance-network`, `tcp-create-socket`, `udp-create-socket` |
//! | 0.3        | `types`, `ip-name-lookup`                                     |
//! | capnet     | `preopens` (the app's pre-opened listeners)                  |
//!
//! The other sockets interfaces (0.2's `network`, `tcp`, `udp`, `ip-name-lookup`) decide every
//! call by the `network` or socket handle passed to it, so the app and its libraries may share
//! them: a handle crosses between them only as a value one of them chose to give.
//!
//! The rule, decided at load:
//! - a nested component that receives labelled imports of one library is that library; one
//!   that receives labels of two libraries is refused;
//! - a nested component with no label whose exports the composition exports (or the
//!   composition's own code) is the app;
//! - each authority import is served with the grant of the one party that receives it. One
//!   that reaches two parties (the app and a library, or two libraries), or a nested component
//!   that is neither the app nor named by a label, is refused, naming the import and how to fix
//!   it. `preopens` may reach the app only;
//! - so is one handed to two unlabelled nested components whose exports the composition exports
//!   (either could be a library), and one reaching an app whose component is not defined inside
//!   the composition, which capnet cannot read for libraries nested in it.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use wasmparser::{
    CanonicalFunction, Chunk, ComponentAlias, ComponentExternalKind, ComponentInstance,
    ComponentName, ComponentTypeRef, ExternalKind, Instance, KnownCustom, Parser, Payload,
};

/// The party an authority import is served for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// The app: the instance's own grant.
    App,
    /// A library, by the name its policy table uses.
    Library(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::App => f.write_str("the app"),
            Owner::Library(name) => write!(f, "library \"{name}\""),
        }
    }
}

/// A sockets interface whose functions carry authority (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// `wasi:sockets/instance-network@0.2.x`
    InstanceNetwork,
    /// `wasi:sockets/tcp-create-socket@0.2.x`
    TcpCreateSocket,
    /// `wasi:sockets/udp-create-socket@0.2.x`
    UdpCreateSocket,
    /// `wasi:sockets/types@0.3.x`
    Types,
    /// `wasi:sockets/ip-name-lookup@0.3.x`
    IpNameLookup,
    /// `capnet:sockets/preopens`
    Preopens,
}

impl Authority {
    /// The authority interface `interface` (`package/name@version`) names, if any: the one
    /// list of them, shared with `capnet compose`.
    pub fn of(interface: &str) -> Option<Self> {
        let (path, version) = interface.split_once('@')?;
        let p2 = version.starts_with("0.2.");
        let p3 = version.starts_with("0.3.");
        Some(match path {
            "wasi:sockets/instance-network" if p2 => Self::InstanceNetwork,
            "wasi:sockets/tcp-create-socket" if p2 => Self::TcpCreateSocket,
            "wasi:sockets/udp-create-socket" if p2 => Self::UdpCreateSocket,
            "wasi:sockets/types" if p3 => Self::Types,
            "wasi:sockets/ip-name-lookup" if p3 => Self::IpNameLookup,
            "capnet:sockets/preopens" => Self::Preopens,
            _ => return None,
        })
    }

    /// The interface's name, the suffix of a library's label.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::InstanceNetwork => "instance-network",
            Self::TcpCreateSocket => "tcp-create-socket",
            Self::UdpCreateSocket => "udp-create-socket",
            Self::Types => "types",
            Self::IpNameLookup => "ip-name-lookup",
            Self::Preopens => "preopens",
        }
    }
}

/// One import of a component that carries network authority, and who it is served for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorityImport {
    /// The import's name in the component (a label or an interface name).
    pub name: String,
    /// The interface it implements, with its version (`wasi:sockets/types@0.3.0`).
    pub interface: String,
    /// Which of the authority interfaces that is.
    pub authority: Authority,
    /// Whether its owner was named by the import's label (`weather-types`) rather than found
    /// from the structure alone (an unlabelled import only the library receives).
    pub labelled: bool,
    /// Whose grant serves it.
    pub owner: Owner,
}

/// Who each network authority import of a component belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Composition {
    imports: Vec<AuthorityImport>,
    libraries: Vec<String>,
    components: Vec<(Owner, Range<usize>)>,
}

/// Why a component's composition is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositionError(String);

impl fmt::Display for CompositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompositionError {}

macro_rules! refuse {
    ($($arg:tt)*) => { return Err(CompositionError(format!($($arg)*))) };
}

const FIX: &str =
    "compose the app with `capnet compose`, which gives each library imports of its own";

impl Composition {
    /// Reads the structure of `wasm` (a component's binary). A core module, or anything that
    /// does not parse, yields an empty composition: the engine says what is wrong with it.
    ///
    /// # Errors
    /// When an authority import reaches more than one party, reaches a nested component that
    /// is neither the app nor a labelled library, is labelled in a form capnet does not read,
    /// or is `preopens` reaching a library.
    pub fn read(wasm: &[u8]) -> Result<Self, CompositionError> {
        let (Ok(flows), Ok(unchanged)) = (
            Flows::read(wasm, Follow::ThroughCode, 0),
            Flows::read(wasm, Follow::Unchanged, 0),
        ) else {
            return Ok(Self::default());
        };
        flows.decide(wasm, &unchanged.receivers)
    }

    /// The component's authority imports, with their owners.
    pub fn imports(&self) -> &[AuthorityImport] {
        &self.imports
    }

    /// The libraries' names, sorted.
    pub fn libraries(&self) -> &[String] {
        &self.libraries
    }

    /// Each party's nested component defined inside the composition, as its byte range in
    /// the binary read: where a library's own custom sections (its declared needs) are.
    /// A party instantiated twice from one component appears once.
    pub fn components(&self) -> &[(Owner, Range<usize>)] {
        &self.components
    }
}

/// Where an item of the component came from: the component's imports it carries, and the
/// nested instantiations whose exports it is.
#[derive(Clone, Debug, Default)]
struct Item {
    imports: BTreeSet<u32>,
    parties: BTreeSet<u32>,
}

impl Item {
    fn import(index: u32) -> Self {
        Self {
            imports: BTreeSet::from([index]),
            ..Self::default()
        }
    }

    fn party(index: u32) -> Self {
        Self {
            parties: BTreeSet::from([index]),
            ..Self::default()
        }
    }

    fn absorb(&mut self, other: &Item) {
        self.imports.extend(&other.imports);
        self.parties.extend(&other.parties);
    }
}

/// The component's own code: core instances at its top level.
const OWN_CODE: u32 = 0;

/// A party: the component's own code, or one instantiation of a nested component.
#[derive(Debug, Default)]
struct Party {
    /// Whether the composition exports something of this party's.
    exported: bool,
    /// The nested component's bytes, when it is defined inside this one.
    component: Option<Range<usize>>,
    /// The component's imports each instantiation argument carries, by argument name.
    args: Vec<(String, BTreeSet<u32>)>,
    /// The instance this instantiation made, and the component it instantiated: indices into
    /// their index spaces, where the `component-name` section names them.
    instance: u32,
    instantiated: u32,
}

/// How far a reading follows an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follow {
    /// Through the component's own code too: code given an import may hand it on through
    /// anything it exports. How a composition is read.
    ThroughCode,
    /// Only as the component model hands it on unchanged: an imported instance, or one of its
    /// functions, exported again. How a nested component is read for what it passes on: a
    /// call of such an export is a call of the import itself, so the host serves it with the
    /// import's grant, whoever makes it. (A function the component's code lifts is that
    /// code's own: whatever it calls, it calls through the component's own imports.)
    Unchanged,
}

/// The flows of one component's imports into its parties.
#[derive(Debug, Default)]
struct Flows {
    /// Each import's name and the interface it implements (its annotation, else its name).
    imports: Vec<(String, Option<String>)>,
    /// For each import, the parties that receive it.
    receivers: Vec<BTreeSet<u32>>,
    /// The imports the component's own exports carry.
    exported_imports: BTreeSet<u32>,
    /// For each nested component, the names of its imports it hands on through its exports
    /// ([`passed_on`]), read once per component; `None` inside when capnet cannot tell.
    passes_on: std::collections::BTreeMap<u32, Option<BTreeSet<String>>>,
    parties: Vec<Party>,
    instances: Vec<Item>,
    funcs: Vec<Item>,
    /// The nested components, with their bytes when defined inside this one.
    components: Vec<Option<Range<usize>>>,
    core_instances: Vec<Item>,
    core_funcs: Vec<Item>,
    core_tables: Vec<Item>,
    core_memories: Vec<Item>,
    core_globals: Vec<Item>,
    core_tags: Vec<Item>,
    /// What the `component-name` section calls instances and components (`wac` and
    /// `capnet compose` write one), by index: how a refusal names a party for the composer.
    instance_names: std::collections::BTreeMap<u32, String>,
    component_names: std::collections::BTreeMap<u32, String>,
}

type Parse<T> = Result<T, wasmparser::BinaryReaderError>;

impl Flows {
    /// Reads the flows of `wasm`, a component `depth` components deep in the one being loaded.
    fn read(wasm: &[u8], follow: Follow, depth: usize) -> Parse<Self> {
        let mut flows = Flows {
            parties: vec![Party {
                exported: true,
                ..Party::default()
            }],
            ..Self::default()
        };
        // A new parser reads every feature the engine may accept (`implements` among them).
        let mut parser = Parser::new(0);
        let mut data = wasm;
        loop {
            let (payload, consumed) = match parser.parse(data, true)? {
                Chunk::Parsed { payload, consumed } => (payload, consumed),
                Chunk::NeedMoreData(_) => unreachable!("the whole binary is given"),
            };
            data = &data[consumed..];
            match payload {
                Payload::Version { encoding, .. }
                    if encoding != wasmparser::Encoding::Component =>
                {
                    return Ok(Self::default());
                }
                Payload::ModuleSection {
                    unchecked_range, ..
                } => data = data.get(unchecked_range.len()..).unwrap_or_default(),
                Payload::ComponentSection {
                    unchecked_range, ..
                } => {
                    data = data.get(unchecked_range.len()..).unwrap_or_default();
                    flows.components.push(Some(unchecked_range));
                }
                Payload::ComponentImportSection(reader) => {
                    for import in reader {
                        let import = import?;
                        let index = u32::try_from(flows.imports.len()).unwrap_or(u32::MAX);
                        let name = import.name.name.to_owned();
                        let interface = import.name.implements.map(str::to_owned);
                        flows.imports.push((name, interface));
                        flows.receivers.push(BTreeSet::new());
                        let item = Item::import(index);
                        match import.ty {
                            ComponentTypeRef::Instance(_) => flows.instances.push(item),
                            ComponentTypeRef::Func(_) => flows.funcs.push(item),
                            ComponentTypeRef::Component(_) => flows.components.push(None),
                            _ => {}
                        }
                    }
                }
                Payload::ComponentInstanceSection(reader) => {
                    for instance in reader {
                        let item = match instance? {
                            ComponentInstance::Instantiate {
                                component_index,
                                args,
                            } => {
                                let party = u32::try_from(flows.parties.len()).unwrap_or(u32::MAX);
                                let mut instantiation = Party {
                                    component: flows
                                        .components
                                        .get(component_index as usize)
                                        .cloned()
                                        .flatten(),
                                    instance: u32::try_from(flows.instances.len())
                                        .unwrap_or(u32::MAX),
                                    instantiated: component_index,
                                    ..Party::default()
                                };
                                // What the instance exports carries the imports it was given
                                // and hands on unchanged.
                                let passes_on =
                                    flows.passes_on(wasm, component_index, depth).clone();
                                let mut made = Item::party(party);
                                for arg in &args {
                                    let given = flows.component_item(arg.kind, arg.index);
                                    flows.give(&given, party);
                                    if passes_on
                                        .as_ref()
                                        .is_none_or(|names| names.contains(arg.name))
                                    {
                                        made.imports.extend(&given.imports);
                                    }
                                    instantiation
                                        .args
                                        .push((arg.name.to_owned(), given.imports));
                                }
                                flows.parties.push(instantiation);
                                made
                            }
                            ComponentInstance::FromExports(exports) => {
                                let mut bag = Item::default();
                                for export in &exports {
                                    bag.absorb(&flows.component_item(export.kind, export.index));
                                }
                                bag
                            }
                        };
                        flows.instances.push(item);
                    }
                }
                Payload::ComponentAliasSection(reader) => {
                    for alias in reader {
                        match alias? {
                            ComponentAlias::InstanceExport {
                                kind,
                                instance_index,
                                ..
                            } => {
                                let item = get(&flows.instances, instance_index);
                                flows.push_component(kind, item);
                            }
                            ComponentAlias::CoreInstanceExport {
                                kind,
                                instance_index,
                                ..
                            } => {
                                let item = get(&flows.core_instances, instance_index);
                                flows.push_core(kind, item);
                            }
                            ComponentAlias::Outer { kind, .. } => {
                                if kind == wasmparser::ComponentOuterAliasKind::Component {
                                    flows.components.push(None);
                                }
                            }
                        }
                    }
                }
                Payload::ComponentCanonicalSection(reader) => {
                    for function in reader {
                        match function? {
                            CanonicalFunction::Lift {
                                core_func_index, ..
                            } => {
                                let item = match follow {
                                    Follow::ThroughCode => get(&flows.core_funcs, core_func_index),
                                    Follow::Unchanged => Item::default(),
                                };
                                flows.funcs.push(item);
                            }
                            CanonicalFunction::Lower { func_index, .. } => {
                                let item = get(&flows.funcs, func_index);
                                flows.core_funcs.push(item);
                            }
                            _ => flows.core_funcs.push(Item::default()),
                        }
                    }
                }
                Payload::InstanceSection(reader) => {
                    for instance in reader {
                        let item = match instance? {
                            // The component's own code: what it is given flows out of its
                            // exports too, as far as this reading can tell.
                            Instance::Instantiate { args, .. } => {
                                let mut given = Item::party(OWN_CODE);
                                for arg in &args {
                                    given.absorb(&get(&flows.core_instances, arg.index));
                                }
                                flows.give(&given, OWN_CODE);
                                given
                            }
                            Instance::FromExports(exports) => {
                                let mut bag = Item::default();
                                for export in &exports {
                                    bag.absorb(&flows.core_item(export.kind, export.index));
                                }
                                bag
                            }
                        };
                        flows.core_instances.push(item);
                    }
                }
                Payload::ComponentExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        let item = flows.component_item(export.kind, export.index);
                        flows.exported_imports.extend(&item.imports);
                        for party in &item.parties {
                            if let Some(party) = flows.parties.get_mut(*party as usize) {
                                party.exported = true;
                            }
                        }
                        if export.kind == ComponentExternalKind::Component {
                            let exported = flows.components.get(export.index as usize);
                            flows.components.push(exported.cloned().flatten());
                        } else {
                            flows.push_component(export.kind, item);
                        }
                    }
                }
                Payload::CustomSection(section) => {
                    if let KnownCustom::ComponentName(names) = section.as_known() {
                        flows.read_names(names);
                    }
                }
                Payload::End(_) => return Ok(flows),
                _ => {}
            }
        }
    }

    /// Keeps the instance and component names of a `component-name` section. A malformed
    /// section only costs the names: the engine does not read it either.
    fn read_names(&mut self, names: wasmparser::ComponentNameSectionReader<'_>) {
        for name in names.into_iter().map_while(Result::ok) {
            let (map, names) = match name {
                ComponentName::Instances(names) => (&mut self.instance_names, names),
                ComponentName::Components(names) => (&mut self.component_names, names),
                _ => continue,
            };
            for naming in names.into_iter().map_while(Result::ok) {
                map.insert(naming.index, naming.name.to_owned());
            }
        }
    }

    /// A party as the composer would recognise it: by the names the composition gives its
    /// instance and component, else by its place.
    fn describe(&self, party: u32) -> String {
        if party == OWN_CODE {
            return "the component's own code".to_owned();
        }
        let Some(instantiation) = self.parties.get(party as usize) else {
            return format!("the composition's instantiation #{party} of a nested component");
        };
        let instance = self.instance_names.get(&instantiation.instance);
        let component = self.component_names.get(&instantiation.instantiated);
        match (instance, component) {
            (Some(instance), Some(component)) => {
                format!("instance \"{instance}\" (of component \"{component}\")")
            }
            (Some(instance), None) => format!("instance \"{instance}\""),
            (None, Some(component)) => {
                format!("the composition's instantiation #{party}, of component \"{component}\"")
            }
            (None, None) => {
                format!("the composition's instantiation #{party} of a nested component")
            }
        }
    }

    /// Records that `party` receives every import `item` carries.
    fn give(&mut self, item: &Item, party: u32) {
        for import in &item.imports {
            if let Some(receivers) = self.receivers.get_mut(*import as usize) {
                receivers.insert(party);
            }
        }
    }

    /// The names of the imports the nested component `index` hands on through its exports,
    /// `None` when it is not defined inside this one or cannot be read (then every argument
    /// counts as handed on).
    fn passes_on(&mut self, wasm: &[u8], index: u32, depth: usize) -> &Option<BTreeSet<String>> {
        let range = self.components.get(index as usize).cloned().flatten();
        self.passes_on.entry(index).or_insert_with(|| {
            let component = wasm.get(range?)?;
            passed_on(component, depth + 1)
        })
    }

    fn component_item(&self, kind: ComponentExternalKind, index: u32) -> Item {
        match kind {
            ComponentExternalKind::Instance => get(&self.instances, index),
            ComponentExternalKind::Func => get(&self.funcs, index),
            _ => Item::default(),
        }
    }

    fn push_component(&mut self, kind: ComponentExternalKind, item: Item) {
        match kind {
            ComponentExternalKind::Instance => self.instances.push(item),
            ComponentExternalKind::Func => self.funcs.push(item),
            ComponentExternalKind::Component => self.components.push(None),
            _ => {}
        }
    }

    fn core_space(&mut self, kind: ExternalKind) -> &mut Vec<Item> {
        match kind {
            ExternalKind::Func | ExternalKind::FuncExact => &mut self.core_funcs,
            ExternalKind::Table => &mut self.core_tables,
            ExternalKind::Memory => &mut self.core_memories,
            ExternalKind::Global => &mut self.core_globals,
            ExternalKind::Tag => &mut self.core_tags,
        }
    }

    fn core_item(&mut self, kind: ExternalKind, index: u32) -> Item {
        get(self.core_space(kind), index)
    }

    fn push_core(&mut self, kind: ExternalKind, item: Item) {
        self.core_space(kind).push(item);
    }

    /// Names each party and each authority import's owner, or refuses the composition.
    /// `unchanged` is, for each import, the parties it reaches as the component model hands it
    /// on, not through any code ([`Follow::Unchanged`]).
    fn decide(
        self,
        wasm: &[u8],
        unchanged: &[BTreeSet<u32>],
    ) -> Result<Composition, CompositionError> {
        // The authority imports, with the library a label names.
        let mut authority = Vec::new();
        for (index, (name, implements)) in self.imports.iter().enumerate() {
            let interface = implements.as_deref().unwrap_or(name);
            let Some(kind) = Authority::of(interface) else {
                continue;
            };
            let label = if name == interface {
                None
            } else {
                let library = name
                    .strip_suffix(kind.short_name())
                    .and_then(|n| n.strip_suffix('-'))
                    .filter(|n| !n.is_empty() && kind != Authority::Preopens);
                match library {
                    Some(library) => Some(library.to_owned()),
                    None => refuse!(
                        "import \"{name}\" implements {interface}: label it LIBRARY-{short}, as in weather-{short}",
                        short = kind.short_name()
                    ),
                }
            };
            authority.push((index, kind, label, interface.to_owned()));
        }

        // Each party's name, from the labels it receives.
        let mut names: Vec<BTreeSet<String>> = vec![BTreeSet::new(); self.parties.len()];
        for (index, _, label, _) in &authority {
            if let Some(label) = label {
                for party in &self.receivers[*index] {
                    names[*party as usize].insert(label.clone());
                }
            }
        }
        let role = |party: u32| -> Result<Option<Owner>, CompositionError> {
            let names = &names[party as usize];
            let mut names = names.iter();
            match (names.next(), names.next()) {
                (Some(a), Some(b)) => refuse!(
                    "{} receives the labelled imports of two libraries, \"{a}\" and \"{b}\": {FIX}",
                    self.describe(party)
                ),
                (Some(name), None) => Ok(Some(Owner::Library(name.clone()))),
                (None, _) if self.parties[party as usize].exported => Ok(Some(Owner::App)),
                (None, _) => Ok(None),
            }
        };

        // The app's parts that are compositions themselves hold the app's imports only in
        // parts of the app.
        for (party, instantiation) in self.parties.iter().enumerate() {
            let party = u32::try_from(party).unwrap_or(u32::MAX);
            if party == OWN_CODE || role(party)? != Some(Owner::App) {
                continue;
            }
            let carried: std::collections::BTreeMap<String, String> = instantiation
                .args
                .iter()
                .filter_map(|(arg, imports)| {
                    let outer = authority
                        .iter()
                        .find(|(i, ..)| imports.contains(&(*i as u32)))?;
                    Some((arg.clone(), self.imports[outer.0].0.clone()))
                })
                .collect();
            // An app whose component is not defined inside this one (imported, or taken from
            // another instance's export) cannot be read for libraries nested in it.
            let Some(range) = &instantiation.component else {
                if let Some(outer) = carried.values().next() {
                    refuse!(
                        "import \"{outer}\" reaches {}, whose component is not defined inside the composition, so capnet cannot see whether a library inside it would hold the app's grant: {FIX}",
                        self.describe(party)
                    );
                }
                continue;
            };
            within_the_app(wasm.get(range.clone()).unwrap_or_default(), &carried, 1)?;
        }

        let mut imports = Vec::new();
        let mut libraries = BTreeSet::new();
        for (index, kind, label, interface) in authority {
            let name = &self.imports[index].0;
            let mut owners = BTreeSet::new();
            let mut apps = Vec::new();
            for party in &self.receivers[index] {
                match role(*party)? {
                    Some(Owner::App) => {
                        if unchanged.get(index).is_some_and(|to| to.contains(party)) {
                            apps.push(*party);
                        }
                        owners.insert(Owner::App)
                    }
                    Some(owner) => owners.insert(owner),
                    None => refuse!(
                        "import \"{name}\" reaches {}, which is neither the app (its exports are not the composition's) nor a library named by a labelled import: {FIX}",
                        self.describe(*party)
                    ),
                };
            }
            // Two unlabelled parts whose exports the composition exports, each handed the import
            // itself, could each be the app or a library (a library's export exported beside the
            // app's): neither may hold the app's import unless a label says which is which.
            // Parts that reach it only through code (the shims wit-component nests for an
            // export's other versions call the component's own code) are that code's.
            if let [a, b, ..] = apps[..] {
                refuse!(
                    "import \"{name}\" reaches both {} and {}, and the composition exports something of each, so capnet cannot tell which is the app: {FIX}",
                    self.describe(a),
                    self.describe(b)
                );
            }
            let mut iter = owners.into_iter();
            let owner = match (iter.next(), iter.next()) {
                (Some(a), Some(b)) => refuse!(
                    "import \"{name}\" reaches both {a} and {b}, so neither could hold it alone: {FIX}"
                ),
                (Some(owner), None) => owner,
                // Nothing receives it: the label's library, else the app.
                (None, _) => label.clone().map_or(Owner::App, Owner::Library),
            };
            if let (Authority::Preopens, Owner::Library(library)) = (kind, &owner) {
                refuse!(
                    "import \"{name}\" reaches library \"{library}\": the pre-opened listeners are the app's; a library must not import capnet:sockets/preopens"
                );
            }
            if let Owner::Library(library) = &owner {
                libraries.insert(library.clone());
            }
            imports.push(AuthorityImport {
                name: name.clone(),
                interface,
                authority: kind,
                labelled: label.is_some(),
                owner,
            });
        }
        let mut components = Vec::new();
        for (party, instantiation) in self.parties.iter().enumerate() {
            let party = u32::try_from(party).unwrap_or(u32::MAX);
            if let (Ok(Some(owner)), Some(range)) = (role(party), &instantiation.component) {
                let found = (owner, range.clone());
                if !components.contains(&found) {
                    components.push(found);
                }
            }
        }
        Ok(Composition {
            imports,
            libraries: libraries.into_iter().collect(),
            components,
        })
    }
}

/// How deep inside the app capnet follows compositions; deeper is refused.
const MAX_DEPTH: usize = 16;

/// Checks that in the app's component `wasm`, the imports named in `carried` (each with the
/// outer authority import it carries) reach only the app's own parts: its code and the nested
/// components whose exports it exports. A library nested inside the app would hold the app's
/// grant, so it is refused.
fn within_the_app(
    wasm: &[u8],
    carried: &std::collections::BTreeMap<String, String>,
    depth: usize,
) -> Result<(), CompositionError> {
    if carried.is_empty() {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        refuse!("the app nests compositions more than {MAX_DEPTH} deep: {FIX}");
    }
    let Ok(inner) = Flows::read(wasm, Follow::ThroughCode, depth) else {
        return Ok(());
    };
    let mut deeper: Vec<std::collections::BTreeMap<String, String>> =
        vec![Default::default(); inner.parties.len()];
    for (index, (name, _)) in inner.imports.iter().enumerate() {
        let Some(outer) = carried.get(name) else {
            continue;
        };
        for party in inner.receivers[index].iter().filter(|p| **p != OWN_CODE) {
            let instantiation = &inner.parties[*party as usize];
            if !instantiation.exported {
                refuse!(
                    "import \"{outer}\" reaches a component nested inside the app that is not part of the app's exports (the app is itself a composition): a library there would hold the app's grant; {FIX}, each library at the top"
                );
            }
            if instantiation.component.is_none() {
                refuse!(
                    "import \"{outer}\" reaches a component nested inside the app that is not defined there, so capnet cannot see whether a library inside it would hold the app's grant; {FIX}, each library at the top"
                );
            }
            for (arg, imports) in &instantiation.args {
                if imports.contains(&(index as u32)) {
                    deeper[*party as usize].insert(arg.clone(), outer.clone());
                }
            }
        }
    }
    for (instantiation, carried) in inner.parties.iter().zip(&deeper) {
        if let Some(range) = &instantiation.component {
            within_the_app(
                wasm.get(range.clone()).unwrap_or_default(),
                carried,
                depth + 1,
            )?;
        }
    }
    Ok(())
}

/// The names of the imports the component `wasm` hands on unchanged through its exports
/// ([`Follow::Unchanged`]), `depth` components deep; `None` when it cannot be read or lies
/// deeper than capnet follows.
fn passed_on(wasm: &[u8], depth: usize) -> Option<BTreeSet<String>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let flows = Flows::read(wasm, Follow::Unchanged, depth).ok()?;
    Some(
        flows
            .exported_imports
            .iter()
            .filter_map(|index| Some(flows.imports.get(*index as usize)?.0.clone()))
            .collect(),
    )
}

/// The item at `index`, or an empty one for an index out of range (the engine refuses such a
/// binary; reading it must not panic).
fn get(space: &[Item], index: u32) -> Item {
    space.get(index as usize).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P2: &str = "wasi:sockets/instance-network@0.2.6";

    /// A composition of `body` (imports, then nested components and their instantiations),
    /// with `$lib` a library component taking one instance argument per name in `lib_args`
    /// and `$app` the app, which exports what it is given as "out".
    fn compose(imports: &str, instances: &str) -> Result<Composition, CompositionError> {
        let wat = format!(
            r#"(component
                {imports}
                (component $lib
                    (import "a" (instance)) (import "b" (instance)) (import "c" (instance)))
                (component $app
                    (import "a" (instance $a)) (import "b" (instance)) (import "c" (instance))
                    (export "out" (instance $a)))
                {instances}
            )"#
        );
        Composition::read(&wat::parse_str(&wat).expect("the test's text is a component"))
    }

    fn owners(composition: &Composition) -> Vec<(&str, Owner)> {
        let imports = composition.imports().iter();
        imports
            .map(|i| (i.name.as_str(), i.owner.clone()))
            .collect()
    }

    fn lib(name: &str) -> Owner {
        Owner::Library(name.to_owned())
    }

    /// The app's instantiation: given `a`, `b`, `c`, its "out" exported by the composition.
    fn app(a: &str, b: &str, c: &str) -> String {
        format!(
            r#"(instance $app_i (instantiate $app
                (with "a" (instance {a})) (with "b" (instance {b})) (with "c" (instance {c}))))
            (alias export $app_i "out" (instance $out))
            (export "out" (instance $out))"#
        )
    }

    fn library(id: &str, a: &str, b: &str, c: &str) -> String {
        format!(
            r#"(instance {id} (instantiate $lib
                (with "a" (instance {a})) (with "b" (instance {b})) (with "c" (instance {c}))))"#
        )
    }

    #[test]
    fn each_import_belongs_to_the_party_that_receives_it() {
        let composition = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))
                (import "other" (instance $other))"#
            ),
            &format!(
                "{}{}",
                library("$w", "$wnet", "$other", "$other"),
                app("$net", "$other", "$other")
            ),
        )
        .unwrap();
        assert_eq!(
            owners(&composition),
            [
                (P2, Owner::App),
                ("weather-instance-network", lib("weather"))
            ]
        );
        assert_eq!(composition.libraries(), ["weather"]);
    }

    #[test]
    fn a_second_copy_of_a_librarys_import_merged_into_the_apps_is_refused() {
        // The attack: the library imports instance-network twice; a tool labelled one copy
        // and merged the other into the app's import.
        let error = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))"#
            ),
            &format!(
                "{}{}",
                library("$w", "$wnet", "$net", "$net"),
                app("$net", "$net", "$net")
            ),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "import \"{P2}\" reaches both the app and library \"weather\", so neither could hold it alone: {FIX}"
            )
        );
    }

    #[test]
    fn an_unlabelled_0_3_import_reaching_only_a_library_is_the_librarys() {
        let composition = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))
                (import "wasi:sockets/types@0.3.0" (instance $types))"#
            ),
            &format!(
                "{}{}",
                library("$w", "$wnet", "$types", "$types"),
                app("$net", "$net", "$net")
            ),
        )
        .unwrap();
        assert_eq!(
            owners(&composition),
            [
                (P2, Owner::App),
                ("weather-instance-network", lib("weather")),
                ("wasi:sockets/types@0.3.0", lib("weather")),
            ]
        );
    }

    /// The refusal names the library as the composition does (its `component-name` section),
    /// else by its place.
    #[test]
    fn a_library_with_no_label_that_receives_an_authority_import_is_refused_by_its_names() {
        for (id, named) in [
            ("$weather", r#"instance "weather" (of component "lib")"#),
            (
                "",
                r#"the composition's instantiation #1, of component "lib""#,
            ),
        ] {
            let error = compose(
                &format!(r#"(import "{P2}" (instance $net)) (import "x" (instance $x))"#),
                &format!(
                    "{}{}",
                    library(id, "$net", "$x", "$x"),
                    app("$x", "$x", "$x")
                ),
            )
            .unwrap_err();
            assert!(
                error.to_string().starts_with(&format!(
                    "import \"{P2}\" reaches {named}, which is neither the app"
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn a_component_given_two_libraries_labels_is_refused() {
        let error = compose(
            &format!(
                r#"(import "a-instance-network" (implements "{P2}") (instance $a))
                (import "b-tcp-create-socket"
                    (implements "wasi:sockets/tcp-create-socket@0.2.6") (instance $b))"#
            ),
            &format!(
                "{}{}",
                library("$w", "$a", "$b", "$b"),
                app("$a", "$a", "$a")
            ),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("receives the labelled imports of two libraries, \"a\" and \"b\""),
            "{error}"
        );
    }

    #[test]
    fn a_library_instantiated_twice_holds_one_grant() {
        let composition = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))
                (import "wasi:sockets/udp-create-socket@0.2.6" (instance $udp))"#
            ),
            &format!(
                "{}{}{}",
                library("$w1", "$wnet", "$wnet", "$wnet"),
                library("$w2", "$wnet", "$udp", "$wnet"),
                app("$net", "$net", "$net")
            ),
        )
        .unwrap();
        assert_eq!(
            owners(&composition),
            [
                (P2, Owner::App),
                ("weather-instance-network", lib("weather")),
                ("wasi:sockets/udp-create-socket@0.2.6", lib("weather")),
            ]
        );
    }

    #[test]
    fn the_pre_opens_reaching_a_library_are_refused() {
        let error = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))
                (import "capnet:sockets/preopens@0.1.0" (instance $pre))"#
            ),
            &format!(
                "{}{}",
                library("$w", "$wnet", "$pre", "$pre"),
                app("$net", "$net", "$net")
            ),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "import \"capnet:sockets/preopens@0.1.0\" reaches library \"weather\": the pre-opened listeners are the app's; a library must not import capnet:sockets/preopens"
        );
    }

    #[test]
    fn a_component_of_its_own_code_holds_its_imports_as_the_app() {
        let wasm = wat::parse_str(format!(
            r#"(component
                (import "{P2}" (instance $n (export "instance-network" (func (result u32)))))
                (core module $m (import "n" "f" (func (result i32))))
                (alias export $n "instance-network" (func $f))
                (core func $lowered (canon lower (func $f)))
                (core instance $bag (export "f" (func $lowered)))
                (core instance (instantiate $m (with "n" (instance $bag))))
            )"#
        ))
        .unwrap();
        let composition = Composition::read(&wasm).unwrap();
        assert_eq!(owners(&composition), [(P2, Owner::App)]);
        assert!(composition.libraries().is_empty());
    }

    #[test]
    fn an_import_implementing_an_authority_interface_under_another_label_is_refused_by_name() {
        let wasm = wat::parse_str(
            r#"(component
                (import "weather" (implements "wasi:sockets/types@0.3.0") (instance))
            )"#,
        )
        .unwrap();
        assert_eq!(
            Composition::read(&wasm).unwrap_err().to_string(),
            "import \"weather\" implements wasi:sockets/types@0.3.0: label it LIBRARY-types, as in weather-types"
        );
    }

    /// An app that is itself a composition: it hands the network it imports to a library of
    /// its own, and exports its inner app's export, which is that network again.
    const NESTED_APP: &str = r#"(component $app
        (import "net" (instance $n))
        (component $inner_lib (import "x" (instance)))
        (component $inner_app (import "x" (instance $x)) (export "out" (instance $x)))
        (instance (instantiate $inner_lib (with "x" (instance $n))))
        (instance $a (instantiate $inner_app (with "x" (instance $n))))
        (alias export $a "out" (instance $out))
        (export "out" (instance $out)))"#;

    #[test]
    fn a_library_nested_inside_the_app_is_refused() {
        // The app is itself a composition that hands the app's network to a library of its
        // own: that library would hold the app's grant.
        let wat = format!(
            r#"(component
                (import "{P2}" (instance $net))
                {NESTED_APP}
                (instance $app_i (instantiate $app (with "net" (instance $net))))
                (alias export $app_i "out" (instance $out))
                (export "out" (instance $out))
            )"#
        );
        let error = Composition::read(&wat::parse_str(&wat).unwrap()).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "import \"{P2}\" reaches a component nested inside the app that is not part of the app's exports"
            )),
            "{error}"
        );
    }

    #[test]
    fn an_app_made_of_parts_it_exports_holds_its_imports() {
        let wat = format!(
            r#"(component
                (import "{P2}" (instance $net))
                (component $app
                    (import "net" (instance $n))
                    (component $part (import "x" (instance $x)) (export "out" (instance $x)))
                    (instance $a (instantiate $part (with "x" (instance $n))))
                    (alias export $a "out" (instance $out))
                    (export "out" (instance $out)))
                (instance $app_i (instantiate $app (with "net" (instance $net))))
                (alias export $app_i "out" (instance $out))
                (export "out" (instance $out))
            )"#
        );
        let composition = Composition::read(&wat::parse_str(&wat).unwrap()).unwrap();
        assert_eq!(owners(&composition), [(P2, Owner::App)]);
    }

    #[test]
    fn a_core_module_reads_as_no_composition() {
        let wasm = wat::parse_str("(module)").unwrap();
        assert_eq!(Composition::read(&wasm).unwrap(), Composition::default());
    }

    /// The app hands on the host's `instance-network` unchanged (its import "a" is its export
    /// "out", as `$app` of this module does), and the composer plugs that export into the
    /// library: a call of it would be a call of the app's import, served with the app's grant.
    #[test]
    fn an_apps_reexport_of_its_authority_import_reaching_a_library_is_refused() {
        let result = compose(
            &format!(
                r#"(import "{P2}" (instance $net))
                (import "weather-instance-network" (implements "{P2}") (instance $wnet))"#
            ),
            &format!(
                "{}{}",
                app("$net", "$net", "$net"),
                // The library's "b" is the app's export "out": the host's instance-network.
                library("$w", "$wnet", "$out", "$wnet"),
            ),
        );
        assert_eq!(
            result.unwrap_err().to_string(),
            format!(
                "import \"{P2}\" reaches both the app and library \"weather\", so neither could hold it alone: {FIX}"
            )
        );
    }

    /// Inside an app that is itself a composition, the inner app hands on the network it is
    /// given, and an inner component that is not part of the app's exports is instantiated
    /// with that export.
    #[test]
    fn a_library_nested_in_the_app_fed_by_the_inner_apps_reexport_is_refused() {
        let wat = format!(
            r#"(component
                (import "{P2}" (instance $net))
                (component $app
                    (import "net" (instance $n))
                    (component $inner_lib (import "x" (instance)))
                    (component $inner_app (import "x" (instance $x)) (export "out" (instance $x)))
                    (instance $a (instantiate $inner_app (with "x" (instance $n))))
                    (alias export $a "out" (instance $out))
                    (instance (instantiate $inner_lib (with "x" (instance $out))))
                    (export "out" (instance $out)))
                (instance $app_i (instantiate $app (with "net" (instance $net))))
                (alias export $app_i "out" (instance $out))
                (export "out" (instance $out))
            )"#
        );
        let result = Composition::read(&wat::parse_str(&wat).unwrap());
        let refusal = result.unwrap_err().to_string();
        assert!(
            refusal.starts_with(&format!(
                "import \"{P2}\" reaches a component nested inside the app that is not part of the app's exports"
            )),
            "{refusal}"
        );
    }

    /// The app's component is not defined inside the composition but taken from another
    /// instance's export (`alias export $pkg "app" (component ...)`), so a library nested in
    /// it (the case `a_library_nested_inside_the_app_is_refused` refuses) cannot be seen.
    #[test]
    fn a_library_nested_in_an_app_taken_from_an_instance_export_is_refused() {
        let wat = format!(
            r#"(component
                (import "{P2}" (instance $net))
                (component $pkg
                    {NESTED_APP}
                    (export "app" (component $app)))
                (instance $pkg_i (instantiate $pkg))
                (alias export $pkg_i "app" (component $app_c))
                (instance $app_i (instantiate $app_c (with "net" (instance $net))))
                (alias export $app_i "out" (instance $out))
                (export "out" (instance $out))
            )"#
        );
        let result = Composition::read(&wat::parse_str(&wat).unwrap());
        let refusal = result.unwrap_err().to_string();
        assert!(
            refusal.starts_with(&format!("import \"{P2}\" reaches "))
                && refusal.contains(
                    "whose component is not defined inside the composition, so capnet cannot see whether a library inside it would hold the app's grant"
                ),
            "{refusal}"
        );
    }

    /// A composition with no labels that exports something of the library's beside the app's:
    /// the merged `instance-network` reaches two parts that could each be the app.
    #[test]
    fn a_merged_import_reaching_a_library_whose_export_the_composition_exports_is_refused() {
        let result = compose(
            &format!(r#"(import "{P2}" (instance $net))"#),
            &format!(
                r#"{}{}
                (alias export $w "x" (instance $wx))
                (export "weather-api" (instance $wx))"#,
                app("$net", "$net", "$net"),
                // A library exporting "x" (its import "a"): the harness's $lib exports nothing,
                // so it is instantiated from a component of its own here.
                r#"(component $lib2 (import "a" (instance $a)) (export "x" (instance $a)))
                (instance $w (instantiate $lib2 (with "a" (instance $net))))"#,
            ),
        );
        let refusal = result.unwrap_err().to_string();
        assert!(
            refusal.starts_with(&format!("import \"{P2}\" reaches both "))
                && refusal.contains(
                    "and the composition exports something of each, so capnet cannot tell which is the app"
                ),
            "{refusal}"
        );
    }
}
