//! capnet's own WIT under `wit/` must stay ABI-identical to the standard
//! `wasi:io`, `wasi:sockets` and `wasi:clocks/monotonic-clock` 0.2.12, and
//! `wasi:sockets` and `wasi:clocks/types` 0.3.0, that wasmtime-wasi ships, so
//! that guests built against either link against both.
//!
//! The doc comments are ours and differ on purpose; everything else is
//! compared: interfaces, type names and shapes, function names, parameter
//! names and types, results, and `@since` / `@unstable` gates. Types are
//! rendered into canonical strings (named types as
//! `wasi:io/streams@0.2.12#input-stream`, resolved through `use` to where
//! they are defined) so two separately parsed `Resolve`s can be compared. A
//! drift fails with one line per difference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use wasmtime::error::Context;
use wasmtime::{Result, bail, format_err as anyhow};
use wit_parser::{
    Function, FunctionKind, Handle, InterfaceId, PackageId, Resolve, Stability, Type, TypeDefKind,
    TypeId, TypeOwner, WorldItem, WorldKey,
};

/// The workspace root, one level above this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Parses a WIT directory (root files plus `deps/`) with every feature gate
/// enabled, so `@unstable` items are compared rather than filtered out.
fn parse_wit_dir(dir: &Path) -> Result<(Resolve, PackageId)> {
    let mut resolve = Resolve {
        all_features: true,
        ..Resolve::default()
    };
    let (pkg, _) = resolve
        .push_dir(dir)
        .map_err(|e| anyhow!("parsing WIT in {}: {e:?}", dir.display()))?;
    Ok((resolve, pkg))
}

/// capnet's own WIT.
fn ours() -> Result<Resolve> {
    Ok(parse_wit_dir(&workspace_root().join("wit"))?.0)
}

/// capnet's own text of `wasi:sockets@0.3.0`, a root of its own (`wit/p3`) so that the 0.2
/// bindings never see two versions of one package.
fn ours_0_3() -> Result<Resolve> {
    Ok(parse_wit_dir(&workspace_root().join("wit/p3"))?.0)
}

/// The standard 0.2 WIT shipped inside the wasmtime-wasi crate this workspace
/// builds against.
fn theirs() -> Result<Resolve> {
    Ok(parse_wit_dir(&wasmtime_wasi_dir()?.join("src/p2/wit"))?.0)
}

/// The standard 0.3 WIT shipped inside the same crate.
fn theirs_0_3() -> Result<Resolve> {
    Ok(parse_wit_dir(&wasmtime_wasi_dir()?.join("src/p3/wit"))?.0)
}

/// Where the wasmtime-wasi crate this workspace builds against is, found through
/// `cargo metadata`.
fn wasmtime_wasi_dir() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("running `{cargo} metadata`"))?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing `cargo metadata` output")?;
    let manifests: Vec<&str> = metadata["packages"]
        .as_array()
        .context("`cargo metadata` has no packages array")?
        .iter()
        .filter(|p| p["name"] == "wasmtime-wasi")
        .filter_map(|p| p["manifest_path"].as_str())
        .collect();
    let [manifest] = manifests[..] else {
        bail!("expected exactly one wasmtime-wasi package in the workspace, found {manifests:?}");
    };
    Ok(Path::new(manifest)
        .parent()
        .context("wasmtime-wasi manifest path has no parent")?
        .to_path_buf())
}

/// `wasi:io/streams@0.2.12`-style name of an interface.
fn interface_name(resolve: &Resolve, id: InterfaceId) -> String {
    resolve
        .id_of(id)
        .unwrap_or_else(|| format!("<anonymous interface {}>", id.index()))
}

/// Follows `use` and `type a = b` aliases to the named type they stand for.
fn definition(resolve: &Resolve, mut id: TypeId) -> TypeId {
    while let TypeDefKind::Type(Type::Id(next)) = resolve.types[id].kind {
        if resolve.types[next].name.is_none() {
            break;
        }
        id = next;
    }
    id
}

/// Canonical text of a type: named types by owner and name, anonymous
/// types by structure.
fn render_type(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => render_type_id(resolve, *id),
    }
}

fn render_type_id(resolve: &Resolve, id: TypeId) -> String {
    let id = definition(resolve, id);
    let def = &resolve.types[id];
    match (&def.name, def.owner) {
        (Some(name), TypeOwner::Interface(owner)) => {
            format!("{}#{name}", interface_name(resolve, owner))
        }
        (Some(name), TypeOwner::World(world)) => {
            format!("world {}#{name}", resolve.worlds[world].name)
        }
        (Some(name), TypeOwner::None) => format!("#{name}"),
        (None, _) => render_structure(resolve, &def.kind),
    }
}

fn render_opt(resolve: &Resolve, ty: Option<&Type>) -> String {
    ty.map_or_else(|| "_".to_string(), |t| render_type(resolve, t))
}

fn render_list<'a>(resolve: &Resolve, types: impl IntoIterator<Item = &'a Type>) -> String {
    types
        .into_iter()
        .map(|t| render_type(resolve, t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Canonical text of a type definition's body.
fn render_structure(resolve: &Resolve, kind: &TypeDefKind) -> String {
    match kind {
        TypeDefKind::Record(r) => {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, render_type(resolve, &f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        TypeDefKind::Resource => "resource".into(),
        TypeDefKind::Handle(Handle::Own(r)) => format!("own<{}>", render_type_id(resolve, *r)),
        TypeDefKind::Handle(Handle::Borrow(r)) => {
            format!("borrow<{}>", render_type_id(resolve, *r))
        }
        TypeDefKind::Flags(f) => {
            let flags: Vec<&str> = f.flags.iter().map(|f| f.name.as_str()).collect();
            format!("flags {{ {} }}", flags.join(", "))
        }
        TypeDefKind::Tuple(t) => format!("tuple<{}>", render_list(resolve, &t.types)),
        TypeDefKind::Variant(v) => {
            let cases: Vec<String> = v
                .cases
                .iter()
                .map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, render_type(resolve, ty)),
                    None => c.name.clone(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            format!("enum {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Option(t) => format!("option<{}>", render_type(resolve, t)),
        TypeDefKind::Result(r) => format!(
            "result<{}, {}>",
            render_opt(resolve, r.ok.as_ref()),
            render_opt(resolve, r.err.as_ref())
        ),
        TypeDefKind::List(t) => format!("list<{}>", render_type(resolve, t)),
        TypeDefKind::Map(k, v) => {
            format!(
                "map<{}, {}>",
                render_type(resolve, k),
                render_type(resolve, v)
            )
        }
        TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", render_type(resolve, t)),
        TypeDefKind::Future(t) => format!("future<{}>", render_opt(resolve, t.as_ref())),
        TypeDefKind::Stream(t) => format!("stream<{}>", render_opt(resolve, t.as_ref())),
        TypeDefKind::Type(t) => format!("type = {}", render_type(resolve, t)),
        TypeDefKind::Unknown => "<unknown>".into(),
    }
}

/// The gate as it is written in WIT.
fn render_stability(stability: &Stability) -> String {
    match stability {
        Stability::Unknown => "(no gate)".into(),
        Stability::Stable { since, deprecated } => match deprecated {
            Some(d) => format!("@since(version = {since}) @deprecated(version = {d})"),
            None => format!("@since(version = {since})"),
        },
        Stability::Unstable {
            feature,
            deprecated,
        } => match deprecated {
            Some(d) => format!("@unstable(feature = {feature}) @deprecated(version = {d})"),
            None => format!("@unstable(feature = {feature})"),
        },
    }
}

fn render_kind(resolve: &Resolve, kind: &FunctionKind) -> String {
    match kind {
        FunctionKind::Freestanding => "freestanding".into(),
        FunctionKind::AsyncFreestanding => "async freestanding".into(),
        FunctionKind::Method(r) => format!("method of {}", render_type_id(resolve, *r)),
        FunctionKind::AsyncMethod(r) => format!("async method of {}", render_type_id(resolve, *r)),
        FunctionKind::Static(r) => format!("static of {}", render_type_id(resolve, *r)),
        FunctionKind::AsyncStatic(r) => format!("async static of {}", render_type_id(resolve, *r)),
        FunctionKind::Constructor(r) => format!("constructor of {}", render_type_id(resolve, *r)),
    }
}

/// A type as the comparison sees it.
#[derive(Debug)]
struct TypeSummary {
    shape: String,
    gate: String,
}

/// A function as the comparison sees it.
#[derive(Debug)]
struct FunctionSummary {
    kind: String,
    params: String,
    result: String,
    gate: String,
}

impl FunctionSummary {
    fn new(resolve: &Resolve, f: &Function) -> Self {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, render_type(resolve, &p.ty)))
            .collect();
        Self {
            kind: render_kind(resolve, &f.kind),
            params: format!("({})", params.join(", ")),
            result: render_opt(resolve, f.result.as_ref()),
            gate: render_stability(&f.stability),
        }
    }
}

/// An interface as the comparison sees it.
#[derive(Debug)]
struct InterfaceSummary {
    gate: String,
    types: BTreeMap<String, TypeSummary>,
    functions: BTreeMap<String, FunctionSummary>,
}

impl InterfaceSummary {
    fn new(resolve: &Resolve, id: InterfaceId) -> Self {
        let iface = &resolve.interfaces[id];
        let types = iface
            .types
            .iter()
            .map(|(name, &ty)| {
                let def = &resolve.types[ty];
                let summary = TypeSummary {
                    shape: render_structure(resolve, &def.kind),
                    gate: render_stability(&def.stability),
                };
                (name.clone(), summary)
            })
            .collect();
        let functions = iface
            .functions
            .iter()
            .map(|(name, f)| (name.clone(), FunctionSummary::new(resolve, f)))
            .collect();
        Self {
            gate: render_stability(&iface.stability),
            types,
            functions,
        }
    }
}

/// Names present on one side only, as difference lines.
fn one_sided<'a, V>(
    what: &str,
    prefix: &str,
    ours: &'a BTreeMap<String, V>,
    theirs: &'a BTreeMap<String, V>,
    diffs: &mut Vec<String>,
) -> Vec<(&'a String, &'a V, &'a V)> {
    for name in ours.keys().filter(|n| !theirs.contains_key(*n)) {
        diffs.push(format!("{prefix}: {what} {name}: only in ours"));
    }
    for name in theirs.keys().filter(|n| !ours.contains_key(*n)) {
        diffs.push(format!("{prefix}: {what} {name}: only in the standard"));
    }
    ours.iter()
        .filter_map(|(name, o)| theirs.get(name).map(|t| (name, o, t)))
        .collect()
}

/// Pushes `<prefix>: <aspect> differ(s): ours X theirs Y` when X != Y.
fn compare_field(prefix: &str, aspect: &str, ours: &str, theirs: &str, diffs: &mut Vec<String>) {
    if ours != theirs {
        diffs.push(format!("{prefix}: {aspect}: ours {ours} theirs {theirs}"));
    }
}

/// Every difference between one interface on our side and on theirs.
fn diff_interface(name: &str, ours: &InterfaceSummary, theirs: &InterfaceSummary) -> Vec<String> {
    let mut diffs = Vec::new();
    compare_field(name, "gate differs", &ours.gate, &theirs.gate, &mut diffs);
    for (ty, o, t) in one_sided("type", name, &ours.types, &theirs.types, &mut diffs) {
        let prefix = format!("{name}: type {ty}");
        compare_field(&prefix, "shape differs", &o.shape, &t.shape, &mut diffs);
        compare_field(&prefix, "gate differs", &o.gate, &t.gate, &mut diffs);
    }
    for (func, o, t) in one_sided(
        "function",
        name,
        &ours.functions,
        &theirs.functions,
        &mut diffs,
    ) {
        let prefix = format!("{name}: function {func}");
        compare_field(&prefix, "kind differs", &o.kind, &t.kind, &mut diffs);
        compare_field(&prefix, "params differ", &o.params, &t.params, &mut diffs);
        compare_field(&prefix, "result differs", &o.result, &t.result, &mut diffs);
        compare_field(&prefix, "gate differs", &o.gate, &t.gate, &mut diffs);
    }
    diffs
}

/// The package called `name` (`wasi:io@0.2.12`) in `resolve`.
fn package(resolve: &Resolve, name: &str) -> Result<PackageId> {
    resolve
        .package_names
        .iter()
        .find(|(n, _)| n.to_string() == name)
        .map(|(_, &id)| id)
        .ok_or_else(|| anyhow!("package {name} not found"))
}

/// Summaries of every interface of package `name`, keyed by full name.
fn package_interfaces(resolve: &Resolve, name: &str) -> Result<BTreeMap<String, InterfaceSummary>> {
    let pkg = package(resolve, name)?;
    Ok(resolve.packages[pkg]
        .interfaces
        .values()
        .map(|&id| {
            (
                interface_name(resolve, id),
                InterfaceSummary::new(resolve, id),
            )
        })
        .collect())
}

/// Every difference between package `name` on both sides, restricted to
/// `only` interfaces (full names) when given.
fn diff_package(
    name: &str,
    only: Option<&[&str]>,
    ours: &Resolve,
    theirs: &Resolve,
) -> Result<Vec<String>> {
    let keep = |map: BTreeMap<String, InterfaceSummary>| -> BTreeMap<String, InterfaceSummary> {
        map.into_iter()
            .filter(|(n, _)| only.is_none_or(|o| o.contains(&n.as_str())))
            .collect()
    };
    let o = keep(package_interfaces(ours, name).context("in our WIT")?);
    let t = keep(package_interfaces(theirs, name).context("in the standard WIT")?);
    if t.is_empty() {
        bail!("the standard {name} has none of the interfaces compared; is the path right?");
    }
    let mut diffs = Vec::new();
    for (iface, oi, ti) in one_sided("interface", name, &o, &t, &mut diffs) {
        diffs.extend(diff_interface(iface, oi, ti));
    }
    Ok(diffs)
}

/// Fails with every difference, one per line.
fn assert_no_diffs(what: &str, diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{what}: our WIT drifted from the standard in {} place(s):\n  {}",
        diffs.len(),
        diffs.join("\n  ")
    );
}

#[test]
fn our_wasi_io_matches_the_standard_signature_for_signature() -> Result<()> {
    let diffs = diff_package("wasi:io@0.2.12", None, &ours()?, &theirs()?)?;
    assert_no_diffs("wasi:io@0.2.12", &diffs);
    Ok(())
}

#[test]
fn our_wasi_sockets_matches_the_standard_signature_for_signature() -> Result<()> {
    let diffs = diff_package("wasi:sockets@0.2.12", None, &ours()?, &theirs()?)?;
    assert_no_diffs("wasi:sockets@0.2.12", &diffs);
    Ok(())
}

#[test]
fn our_wasi_sockets_0_3_matches_the_standard_signature_for_signature() -> Result<()> {
    let diffs = diff_package("wasi:sockets@0.3.0", None, &ours_0_3()?, &theirs_0_3()?)?;
    assert_no_diffs("wasi:sockets@0.3.0", &diffs);
    Ok(())
}

#[test]
fn our_clock_types_0_3_match_the_standard_signature_for_signature() -> Result<()> {
    let only = ["wasi:clocks/types@0.3.0"];
    let diffs = diff_package(
        "wasi:clocks@0.3.0",
        Some(&only),
        &ours_0_3()?,
        &theirs_0_3()?,
    )?;
    assert_no_diffs("wasi:clocks/types@0.3.0", &diffs);
    Ok(())
}

#[test]
fn our_monotonic_clock_matches_the_standard_signature_for_signature() -> Result<()> {
    let ours = ours()?;
    let only = ["wasi:clocks/monotonic-clock@0.2.12"];
    let diffs = diff_package("wasi:clocks@0.2.12", Some(&only), &ours, &theirs()?)?;
    assert_no_diffs("wasi:clocks/monotonic-clock@0.2.12", &diffs);
    let clocks = &ours.packages[package(&ours, "wasi:clocks@0.2.12")?];
    let carried: Vec<&String> = clocks.interfaces.keys().collect();
    assert_eq!(
        carried,
        ["monotonic-clock"],
        "capnet carries only monotonic-clock of wasi:clocks"
    );
    Ok(())
}

#[test]
fn our_stdin_matches_the_standard_signature_for_signature() -> Result<()> {
    let ours = ours()?;
    let only = ["wasi:cli/stdin@0.2.12"];
    let diffs = diff_package("wasi:cli@0.2.12", Some(&only), &ours, &theirs()?)?;
    assert_no_diffs("wasi:cli/stdin@0.2.12", &diffs);
    let cli = &ours.packages[package(&ours, "wasi:cli@0.2.12")?];
    let carried: Vec<&String> = cli.interfaces.keys().collect();
    assert_eq!(carried, ["stdin"], "capnet carries only stdin of wasi:cli");
    Ok(())
}

/// The comparison itself must notice a change: a parameter type swapped in
/// an otherwise identical copy is reported by name.
#[test]
fn a_changed_parameter_type_is_reported_by_function_and_param() -> Result<()> {
    let theirs = theirs()?;
    let mut changed = theirs.clone();
    let pkg = package(&changed, "wasi:sockets@0.2.12")?;
    let tcp = changed.packages[pkg].interfaces["tcp"];
    let set_count = changed.interfaces[tcp]
        .functions
        .get_mut("[method]tcp-socket.set-keep-alive-count")
        .context("set-keep-alive-count not found")?;
    set_count.params[1].ty = Type::U64;
    let diffs = diff_package("wasi:sockets@0.2.12", None, &changed, &theirs)?;
    assert_eq!(
        diffs,
        [
            "wasi:sockets/tcp@0.2.12: function [method]tcp-socket.set-keep-alive-count: \
             params differ: ours (self: borrow<wasi:sockets/tcp@0.2.12#tcp-socket>, value: u64) \
             theirs (self: borrow<wasi:sockets/tcp@0.2.12#tcp-socket>, value: u32)"
        ]
    );
    Ok(())
}

#[test]
fn capnet_host_world_imports_the_seven_sockets_interfaces_preopens_and_attenuate() -> Result<()> {
    let (resolve, pkg) = parse_wit_dir(&workspace_root().join("wit"))?;
    assert_eq!(
        resolve.packages[pkg].name.to_string(),
        "capnet:sockets@0.1.0"
    );
    let expected_direct: BTreeSet<&str> = [
        "wasi:sockets/network@0.2.12",
        "wasi:sockets/instance-network@0.2.12",
        "wasi:sockets/tcp@0.2.12",
        "wasi:sockets/tcp-create-socket@0.2.12",
        "wasi:sockets/udp@0.2.12",
        "wasi:sockets/udp-create-socket@0.2.12",
        "wasi:sockets/ip-name-lookup@0.2.12",
        "capnet:sockets/preopens@0.1.0",
        "capnet:sockets/attenuate@0.1.0",
    ]
    .into();
    // What those interfaces `use`, which a world imports along with them.
    let expected_implied: BTreeSet<&str> = [
        "wasi:io/error@0.2.12",
        "wasi:io/poll@0.2.12",
        "wasi:io/streams@0.2.12",
        "wasi:clocks/monotonic-clock@0.2.12",
    ]
    .into();
    let expected: BTreeSet<&str> = expected_direct.union(&expected_implied).copied().collect();

    for world_name in ["host", "guest"] {
        let world = &resolve.worlds[resolve.packages[pkg].worlds[world_name]];
        let mut imports = BTreeSet::new();
        for (key, item) in &world.imports {
            match (key, item) {
                (WorldKey::Interface(_), WorldItem::Interface { id, .. }) => {
                    imports.insert(interface_name(&resolve, *id));
                }
                (key, _) => panic!(
                    "world {world_name} imports {} which is not a whole interface",
                    resolve.name_world_key(key)
                ),
            }
        }
        let imports: BTreeSet<&str> = imports.iter().map(String::as_str).collect();
        let mut expected = expected.clone();
        if world_name == "guest" {
            // Guests also poll stdin beside their sockets.
            expected.insert("wasi:cli/stdin@0.2.12");
        }
        assert_eq!(imports, expected, "imports of world {world_name}");
        assert!(
            world.exports.is_empty(),
            "world {world_name} exports nothing"
        );
    }
    Ok(())
}
