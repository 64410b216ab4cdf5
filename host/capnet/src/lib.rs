//! `wasi:sockets` for wasmtime components, with every network use checked against a
//! capability policy, deny by default.
//!
//! A component reaches the network only through what it was given: the `network` handle from
//! `instance-network` carries the instance's grant (its policy), and every bind,
//! listen, accept, connect and name lookup is decided by that grant before any system call.
//! Decisions are `tracing` events (target `capnet::policy`) naming the rule that decided.
//!
//! This crate implements, one module each, in the 0.2 front (`p2/`):
//! `wasi:sockets/network`, `instance-network`, `tcp`, `tcp-create-socket`, `udp`,
//! `udp-create-socket` and `ip-name-lookup` (all `@0.2.12`), and `capnet:sockets/preopens` and
//! `attenuate`. The 0.3 front (`p3/`) implements `wasi:sockets/types` and `ip-name-lookup`
//! `@0.3.0` on the same socket core ([`add_to_linker_p3`]). In a composed app, each import that
//! carries network authority is served with the grant of the library (or app) whose component
//! receives it, read from the component's structure ([`Composition`],
//! [`add_composition_to_linker`]).
//! `wasi:io` is `wasmtime-wasi-io`'s, so sockets, clocks and stdio share one `poll`.
//! The preview 1 front ([`p1`]) serves the socket functions of `wasi_snapshot_preview1` to core
//! modules, on listeners the runtime pre-opened, over the same core and grants.
//!
//! # Embedding
//! ```no_run
//! use capnet::{CapnetCtx, CapnetCtxView, CapnetView};
//! use capnet::policy::Policy;
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct Host { wasi: WasiCtx, capnet: CapnetCtx, table: ResourceTable }
//!
//! impl WasiView for Host {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//! impl CapnetView for Host {
//!     fn capnet(&mut self) -> CapnetCtxView<'_> {
//!         CapnetCtxView { ctx: &mut self.capnet, table: &mut self.table }
//!     }
//! }
//!
//! # fn main() -> wasmtime::Result<()> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! capnet::add_to_linker_with_wasi(&mut linker)?;
//! let policy = Policy::builder().rule(capnet::policy::Verdict::Allow, "connect", "127.0.0.1:8080")?.build();
//! let capnet = CapnetCtx::builder().policy(policy).build();
//! # let _ = capnet; Ok(())
//! # }
//! ```

mod composition;
mod ctx;
mod grant;
mod library;
mod limit;
pub mod needs;
pub mod p1;
mod p2;
mod p3;
mod rate;
mod revoke;
mod socket;
pub mod trappable;
mod wit_conv;

pub use capnet_policy as policy;
pub use composition::{Authority, AuthorityImport, Composition, CompositionError, Owner};
pub use ctx::{CapnetCtx, CapnetCtxBuilder, CapnetCtxView, CapnetView};
pub use grant::{Learned, LearnedTarget, PolicyHandle, Recorder, Revoker};
pub use library::{Library, add_composition_to_linker};
pub use p2::bindings::sockets::network::ErrorCode;
pub use p2::error::{SocketError, SocketResult, code_name};
pub use p2::network::Network;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;

/// The [`HasData`] marker that routes capnet's host functions to [`CapnetCtxView`].
pub struct Capnet;

impl HasData for Capnet {
    type Data<'a> = CapnetCtxView<'a>;
}

/// Adds capnet's `wasi:sockets@0.2.12` and `capnet:sockets` to `linker`. A composed app's
/// libraries' imports are added per component by [`add_composition_to_linker`].
///
/// `wasi:io` must be in the linker too, served from the same resource table that
/// [`CapnetView::capnet`] returns; [`add_to_linker_with_wasi`] does all of it. With `wasi:io`
/// from elsewhere, [`add_socket_streams_to_linker`] after it moves the sockets' bytes with one
/// copy fewer.
///
/// # Errors
/// When an interface is already defined in `linker`.
pub fn add_to_linker<T: CapnetView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use p2::bindings::{self, sockets};
    let options = sockets::network::LinkOptions::default();
    let mut options = options;
    options.network_error_code(true);
    sockets::network::add_to_linker::<T, Capnet>(linker, &options, T::capnet)?;
    sockets::instance_network::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    sockets::tcp::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    sockets::tcp_create_socket::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    sockets::udp::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    sockets::udp_create_socket::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    sockets::ip_name_lookup::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    bindings::preopens::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    bindings::attenuate::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    Ok(())
}

/// Adds capnet's `wasi:sockets@0.3.0` (`types`, `ip-name-lookup`) to `linker`: the same core,
/// checks and decision logs as the 0.2 interfaces, every call decided by the instance's root
/// grant (0.3 has no `network` handle; a composed app's libraries' own imports are added by
/// [`add_composition_to_linker`]). The engine needs `wasm_component_model_async`.
///
/// # Errors
/// When an interface is already defined in `linker`.
pub fn add_to_linker_p3<T: CapnetView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    p3::bindings::sockets::types::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    p3::bindings::sockets::ip_name_lookup::add_to_linker::<T, Capnet>(linker, T::capnet)?;
    Ok(())
}

/// A complete WASI 0.3 world with capnet's sockets: `wasi:cli`, `wasi:clocks`,
/// `wasi:filesystem` and `wasi:random` 0.3 from `wasmtime-wasi` (never its sockets), and
/// [`add_to_linker_p3`]. Add it beside [`add_to_linker_with_wasi`] to run components of
/// either generation, or both at once.
///
/// # Errors
/// When an interface is already defined in `linker`.
pub fn add_to_linker_with_wasi_p3<T: CapnetView + WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p3::cli::add_to_linker(linker)?;
    wasmtime_wasi::p3::clocks::add_to_linker(linker)?;
    wasmtime_wasi::p3::filesystem::add_to_linker(linker)?;
    wasmtime_wasi::p3::random::add_to_linker(linker)?;
    add_to_linker_p3(linker)
}

/// A complete WASI 0.2 world with capnet's sockets: `wasi:io`, `wasi:cli`, `wasi:clocks`,
/// `wasi:filesystem` and `wasi:random` from `wasmtime-wasi` (never its sockets), and
/// [`add_to_linker`].
///
/// [`WasiView::ctx`] and [`CapnetView::capnet`] must return the same resource table.
///
/// # Errors
/// When an interface is already defined in `linker`.
pub fn add_to_linker_with_wasi<T: CapnetView + WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
    use wasmtime_wasi_io::bindings::wasi::io;

    let l = linker;
    io::error::add_to_linker::<T, Io>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, Io>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, Io>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    add_socket_streams_to_linker(l)?;
    add_to_linker(l)
}

/// Serves `wasi:io/streams@0.2.12`'s `input-stream.read`, `input-stream.blocking-read` and
/// `output-stream.write` again in `linker`, which already holds `wasi:io` (from `wasmtime-wasi`
/// or `wasmtime-wasi-io`) on the table [`CapnetView::capnet`] returns: a read of one of
/// capnet's sockets then lowers the bytes from the socket straight into the guest's list, and a
/// write sends from guest memory, with every policy limit and rate as before; every other
/// stream is served by `wasmtime-wasi-io` as it was. [`add_to_linker_with_wasi`] calls it; an
/// embedder that adds `wasi:io` itself and [`add_to_linker`] calls it after `wasi:io` (before
/// it, `wasi:io` would find these functions defined already). It leaves the linker's shadowing
/// off.
///
/// # Errors
/// When wasmtime refuses a definition.
pub fn add_socket_streams_to_linker<T: CapnetView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let streams = p2::streams::add_to_linker(linker);
    linker.allow_shadowing(false);
    streams
}

/// Routes `wasi:io` to the shared resource table.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}
