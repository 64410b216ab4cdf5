//! Compiled components kept in containerd's content store, so that only the first start of a
//! wasm image compiles.
//!
//! runwasi asks [`CapnetCompiler`] for a compiled form of each layer of a wasm image the first
//! time the image starts, stores it in containerd's content store, labels the original layer
//! with its digest under `runwasi.io/precompiled/capnet/<cache key>`, and from then on hands the
//! sandbox the compiled form in place of the layer. A root-fs image (a `.wasm` file) is not
//! precompiled: runwasi offers only layers.
//!
//! The compiled form of a component layer is an [`Artifact`]: a header, the component's
//! original bytes, and wasmtime's serialized component. The original bytes come along because
//! the sandbox reads the composition and the libraries' declared needs from them (each
//! library's grant depends on where its imports sit in the composition), and because they
//! are what the sandbox compiles when the compiled code does not fit its engine.

use capnet_cli::host::{self, Abi};
use containerd_shim_wasm::sandbox::context::WasmLayer;
use containerd_shim_wasm::shim::Compiler;
use std::hash::Hash;
use wasmtime::Engine;

/// The media types of the layers that hold a component: the OCI layout of WebAssembly
/// artifacts (`wkg oci push`) and runwasi's own.
pub const WASM_LAYERS: [&str; 2] = [
    "application/wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];

/// The media type of a policy layer: a policy file's TOML, which the shim reads in place of the
/// root file system's policy file.
pub const POLICY_LAYER: &str = "application/vnd.capnet.policy.v1+toml";

/// The layers the shim asks runwasi for: the component and the policy.
pub const LAYERS: [&str; 3] = [WASM_LAYERS[0], WASM_LAYERS[1], POLICY_LAYER];

/// What an [`Artifact`] starts with. The version changes with the layout after it.
const MAGIC: &[u8; 24] = b"capnet compiled code v1\n";

/// A compiled component layer: `MAGIC`, the engine's ABI (one byte, 2 or 3), the original
/// component's length (8 bytes, little endian), the original component, wasmtime's serialized
/// component.
#[derive(Debug, PartialEq, Eq)]
pub struct Artifact<'a> {
    /// The engine the code was compiled for.
    pub abi: Abi,
    /// The component as the image holds it.
    pub original: &'a [u8],
    /// What `Engine::precompile_component` made of it.
    pub compiled: &'a [u8],
}

impl<'a> Artifact<'a> {
    /// The artifact's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let abi = match self.abi {
            Abi::P2 => 2u8,
            Abi::P3 => 3,
        };
        let mut out =
            Vec::with_capacity(MAGIC.len() + 9 + self.original.len() + self.compiled.len());
        out.extend_from_slice(MAGIC);
        out.push(abi);
        out.extend_from_slice(&(self.original.len() as u64).to_le_bytes());
        out.extend_from_slice(self.original);
        out.extend_from_slice(self.compiled);
        out
    }

    /// Reads an artifact; `None` when `bytes` is not one this shim writes.
    pub fn read(bytes: &'a [u8]) -> Option<Artifact<'a>> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&abi, rest) = rest.split_first()?;
        let abi = match abi {
            2 => Abi::P2,
            3 => Abi::P3,
            _ => return None,
        };
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let (original, compiled) = rest.split_at_checked(len)?;
        Some(Artifact {
            abi,
            original,
            compiled,
        })
    }
}

/// Compiled code as runwasi hands it to the sandbox, from containerd's content store: an
/// [`Artifact`] that [`CapnetCompiler`] wrote. Only an `unsafe` promise makes one, because
/// wasmtime runs serialized code as it finds it.
#[derive(Clone, Copy, Debug)]
pub struct StoredCode<'a>(&'a [u8]);

impl<'a> StoredCode<'a> {
    /// Takes `bytes` for code the shim's compiler wrote.
    ///
    /// # Safety
    /// `bytes` must be what [`CapnetCompiler`] wrote, unchanged, or bytes that wasmtime refuses
    /// before running any of them (not compiled code at all, or code for another engine): the
    /// sandbox deserializes the compiled code they hold.
    #[allow(unsafe_code)]
    pub unsafe fn new(bytes: &'a [u8]) -> StoredCode<'a> {
        StoredCode(bytes)
    }

    /// The bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// Compiles component layers with the engines the sandbox runs them on.
#[derive(Clone)]
pub struct CapnetCompiler {
    p2: Engine,
    p3: Engine,
}

impl CapnetCompiler {
    /// The compiler, with an engine of each ABI as [`host::engine_for`] makes them.
    ///
    /// # Errors
    /// When wasmtime rejects the engines' configuration.
    pub fn new() -> wasmtime::Result<CapnetCompiler> {
        Ok(CapnetCompiler {
            p2: host::engine_for(Abi::P2, None)?,
            p3: host::engine_for(Abi::P3, None)?,
        })
    }

    /// `component` compiled as the sandbox would load it: for the 0.2 engine if it takes it,
    /// else for the 0.3 one.
    ///
    /// # Errors
    /// wasmtime's, when neither engine compiles it.
    pub fn compile_component(&self, component: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let (abi, compiled) = match self.p2.precompile_component(component) {
            Ok(compiled) => (Abi::P2, compiled),
            Err(_) => (Abi::P3, self.p3.precompile_component(component)?),
        };
        Ok(Artifact {
            abi,
            original: component,
            compiled: &compiled,
        }
        .to_bytes())
    }
}

impl Compiler for CapnetCompiler {
    /// Compiled code fits only the shim and the engines that made it: the key holds the shim's
    /// version (the artifact's layout, the engines' configuration in `capnet_cli::host`) and
    /// each engine's compatibility hash (wasmtime's version, its compilation settings, the
    /// CPU's features). A new key makes runwasi compile again, never load what does not fit.
    fn cache_key(&self) -> impl Hash {
        (
            env!("CARGO_PKG_VERSION"),
            MAGIC,
            self.p2.precompile_compatibility_hash(),
            self.p3.precompile_compatibility_hash(),
        )
    }

    /// Each component layer's [`Artifact`]. A policy layer's compiled form is itself: runwasi
    /// compiles again at every start while any layer it was given lacks a compiled form. A layer
    /// runwasi has already found compiled gets `None`, as does a component that does not compile,
    /// left for the sandbox to report in the container's log.
    async fn compile(&self, layers: &[WasmLayer]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        Ok(layers
            .iter()
            .map(|layer| {
                let media_type = layer.config.media_type().to_string();
                if layer.precompiled {
                    None
                } else if media_type == POLICY_LAYER {
                    Some(layer.layer.clone())
                } else {
                    self.compile_component(&layer.layer).ok()
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_reads_back_as_written_and_anything_else_is_refused() {
        let artifact = Artifact {
            abi: Abi::P3,
            original: b"\0asm component",
            compiled: b"\x7fELF code",
        };
        let bytes = artifact.to_bytes();
        assert_eq!(Artifact::read(&bytes), Some(artifact));
        for cut in 0..MAGIC.len() + 9 + 14 {
            assert_eq!(Artifact::read(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(Artifact::read(b"\0asm\x0d\0\x01\0"), None);
        let mut other_abi = bytes.clone();
        other_abi[MAGIC.len()] = 4;
        assert_eq!(Artifact::read(&other_abi), None);
    }
}
