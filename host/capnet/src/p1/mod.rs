//! WASI preview 1 modules with capnet's sockets: the `wasi_snapshot_preview1` socket
//! functions over the same core, grants and decision logs as the component fronts.
//!
//! A preview 1 module has no bind, listen or connect: it serves on listeners the runtime
//! pre-opened, numbered from descriptor 3 (what `wasmtime run --tcplisten` hands it and
//! `TcpListener::from_raw_fd(3)` takes). capnet defines, over `wasmtime-wasi`'s preview 1
//! (`wasmtime_wasi::p1`, which serves args, environment, stdio, clocks, random and files and
//! answers `ENOTSOCK` to every socket call), the functions a server calls on a socket:
//! `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`, and for a socket descriptor
//! `fd_read`, `fd_write`, `fd_close`, `fd_fdstat_get`, `fd_fdstat_set_flags`,
//! `fd_filestat_get`, `fd_renumber` and `poll_oneoff`. Each serves capnet's descriptors
//! ([`descriptors`]) and hands every other call to `wasmtime-wasi` as it came.
//!
//! Every accept is the core's: each peer is decided by `tcp-accept` (a pre-opened listener
//! allows any peer no deny rule names), limits and rates apply, a refused peer is closed and
//! logged and never handed to the module.

mod abi;
mod descriptors;
mod poll;

use crate::ctx::CapnetCtx;
use crate::socket::tcp::TcpSocket;
use abi::{Fail, returned};
use descriptors::{Descriptors, Listener, Socket, Stream};
use std::net::Shutdown;
use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{Errno, Fdflags, Filetype, Rights};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as wasi;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as _;

/// The import module every preview 1 function lives in.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// capnet's state for one preview 1 module: its socket descriptors.
pub struct P1Ctx {
    sockets: Descriptors,
    /// Kept between `poll_oneoff` calls, so a poll allocates nothing.
    subscriptions: Vec<poll::Subscription>,
    /// The instance's context, whose grant decides every accept.
    _ctx: CapnetCtx,
}

impl P1Ctx {
    /// The module's sockets: every listener `ctx` pre-opened, at descriptors 3, 4, ... in the
    /// order they were pre-opened, each accepting under the instance's root grant.
    ///
    /// # Errors
    /// When a pre-opened listener cannot be registered with the runtime.
    pub fn new(mut ctx: CapnetCtx) -> std::io::Result<Self> {
        let mut sockets = Descriptors::default();
        let grant = ctx.root.clone();
        for (listener, addr) in ctx.preopens.take_all() {
            let socket = TcpSocket::preopened(listener, addr, grant.clone())?;
            let listener = Listener::new(socket).map_err(std::io::Error::other)?;
            sockets.push(Socket::Listener(Box::new(listener)));
        }
        Ok(Self {
            sockets,
            subscriptions: Vec::new(),
            _ctx: ctx,
        })
    }

    /// Whether the module holds any socket (a pre-opened listener, or a connection).
    pub fn has_sockets(&self) -> bool {
        !self.sockets.is_empty()
    }
}

/// What capnet's preview 1 functions borrow from the store.
pub struct P1CtxView<'a> {
    /// `wasmtime-wasi`'s preview 1 state: stdio, files, clocks, everything but sockets.
    pub wasi: &'a mut WasiP1Ctx,
    /// capnet's sockets.
    pub capnet: &'a mut P1Ctx,
}

/// Implemented by a store's data to run preview 1 modules with capnet's sockets.
pub trait P1View: Send {
    /// Borrows both contexts.
    fn p1(&mut self) -> P1CtxView<'_>;
}

/// The imports of `module` that are not `wasi_snapshot_preview1`'s, as `module::field`:
/// what capnet does not serve (wasi-threads, WASIX, an `env` memory, ...).
pub fn unserved_imports(module: &wasmtime::Module) -> Vec<String> {
    module
        .imports()
        .filter(|import| import.module() != MODULE)
        .map(|import| format!("{}::{}", import.module(), import.name()))
        .collect()
}

/// Whether `module` is a WASI preview 1 module: it imports from `wasi_snapshot_preview1`.
pub fn is_preview1(module: &wasmtime::Module) -> bool {
    module.imports().any(|import| import.module() == MODULE)
}

/// Adds `wasmtime-wasi`'s preview 1 to `linker`, with capnet's socket functions in front of
/// it.
///
/// # Errors
/// When a function is already defined in `linker`.
pub fn add_to_linker<T: P1View + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, |t| t.p1().wasi)?;
    linker.allow_shadowing(true);
    let shadowed = define(linker);
    linker.allow_shadowing(false);
    shadowed
}

/// The guest's memory and the store's data, for one call.
fn memory<'a, T: 'static>(
    caller: &'a mut Caller<'_, T>,
) -> wasmtime::Result<(&'a mut [u8], &'a mut T)> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory.data_and_store_mut(caller)),
        _ => wasmtime::bail!(
            "a preview 1 module calling {MODULE} must export its (unshared) memory as `memory`"
        ),
    }
}

/// Defines `$name` as capnet's when its first argument is one of the module's sockets and as
/// `wasmtime-wasi`'s otherwise (`async` or `sync` as `wasmtime-wasi` defines it); `$ours` is an async block over `$sockets: &mut Descriptors`
/// and `$mem: &mut [u8]` that returns `Result<(), Fail>`.
macro_rules! shadow {
    ($linker:ident, $how:tt $name:ident, ($fd:ident $(, $arg:ident)*), |$sockets:ident, $mem:ident| $ours:expr) => {
        $linker.func_wrap_async(
            MODULE,
            stringify!($name),
            |mut caller: Caller<'_, T>, ($fd, $($arg,)*): (i32, $(shadow!(@i32 $arg),)*)| {
                Box::new(async move {
                    let fuel = caller.as_context_mut().hostcall_fuel();
                    let (memory, data) = memory(&mut caller)?;
                    let view = data.p1();
                    if view.capnet.sockets.owns($fd) {
                        let $sockets = &mut view.capnet.sockets;
                        let $mem = memory;
                        let result: Result<(), Fail> = $ours.await;
                        return returned(result);
                    }
                    view.wasi.set_hostcall_fuel(fuel);
                    let mut memory = wiggle::GuestMemory::Unshared(memory);
                    shadow!(@call $how wasi::$name(view.wasi, &mut memory, $fd, $($arg),*))
                })
            },
        )?;
    };
    (@i32 $arg:ident) => { i32 };
    (@call async $call:expr) => { $call.await };
    (@call sync $call:expr) => { $call };
}

fn define<T: P1View + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    shadow!(linker, sync sock_accept, (fd, flags, fd_out), |sockets, mem| async move {
        let nonblocking = flags as u16 & u16::from(Fdflags::NONBLOCK) != 0;
        let Socket::Listener(listener) = sockets.get(fd)? else {
            return Err(Errno::Inval.into());
        };
        let socket = listener.accept().await?;
        let new = sockets.push(Socket::Stream(Box::new(Stream::new(socket, nonblocking)?)));
        abi::write_u32(mem, abi::addr(fd_out), new)
    });
    shadow!(linker, async fd_read, (fd, iovs, iovs_len, nread), |sockets, mem| async move {
        let (ptr, len) = abi::first_buffer(mem, iovs, iovs_len)?;
        let stream = sockets.get(fd)?.stream()?;
        let n = stream.receive(abi::bytes_mut(mem, ptr, len)?, false).await?;
        abi::write_u32(mem, abi::addr(nread), n as u32)
    });
    shadow!(linker, sync sock_recv, (fd, iovs, iovs_len, flags, nread, oflags), |sockets, mem| async move {
        // riflags: recv_peek = 1, recv_waitall = 2.
        let peek = flags & 1 != 0;
        let (ptr, len) = abi::first_buffer(mem, iovs, iovs_len)?;
        let stream = sockets.get(fd)?.stream()?;
        let buf = abi::bytes_mut(mem, ptr, len)?;
        let mut n = stream.receive(buf, peek).await?;
        if flags & 2 != 0 && !peek {
            while n < len {
                let more = stream.receive(&mut abi::bytes_mut(mem, ptr, len)?[n..], false).await?;
                if more == 0 {
                    break;
                }
                n += more;
            }
        }
        abi::write_u32(mem, abi::addr(nread), n as u32)?;
        abi::write_le(mem, abi::addr(oflags), 0, 2)
    });
    shadow!(linker, async fd_write, (fd, iovs, iovs_len, nwritten), |sockets, mem| async move {
        let (ptr, len) = abi::first_buffer(mem, iovs, iovs_len)?;
        let stream = sockets.get(fd)?.stream()?;
        let n = stream.send(abi::bytes(mem, ptr, len)?).await?;
        abi::write_u32(mem, abi::addr(nwritten), n as u32)
    });
    shadow!(linker, sync sock_send, (fd, iovs, iovs_len, _flags, nwritten), |sockets, mem| async move {
        let (ptr, len) = abi::first_buffer(mem, iovs, iovs_len)?;
        let stream = sockets.get(fd)?.stream()?;
        let n = stream.send(abi::bytes(mem, ptr, len)?).await?;
        abi::write_u32(mem, abi::addr(nwritten), n as u32)
    });
    shadow!(linker, sync sock_shutdown, (fd, how), |sockets, _mem| async move {
        // sdflags: rd = 1, wr = 2.
        let how = match how & 3 {
            1 => Shutdown::Read,
            2 => Shutdown::Write,
            3 => Shutdown::Both,
            _ => return Err(Errno::Inval.into()),
        };
        sockets.get(fd)?.stream()?.shutdown(how)
    });
    shadow!(linker, async fd_close, (fd), |sockets, _mem| async move { sockets.close(fd) });
    shadow!(linker, async fd_fdstat_get, (fd, stat), |sockets, mem| async move {
        let socket = sockets.get(fd)?;
        let flags = match socket.nonblocking() {
            true => Fdflags::NONBLOCK,
            false => Fdflags::empty(),
        };
        let rights = socket_rights();
        let at = abi::addr(stat);
        abi::bytes_mut(mem, at, abi::FDSTAT_SIZE)?.fill(0);
        abi::write_le(mem, at, u64::from(u8::from(Filetype::SocketStream)), 1)?;
        abi::write_le(mem, at + 2, u64::from(u16::from(flags)), 2)?;
        abi::write_le(mem, at + 8, rights, 8)?;
        abi::write_le(mem, at + 16, rights, 8)
    });
    shadow!(linker, sync fd_fdstat_set_flags, (fd, flags), |sockets, _mem| async move {
        let nonblock = u16::from(Fdflags::NONBLOCK);
        if flags as u16 & !nonblock != 0 {
            return Err(Errno::Notsup.into());
        }
        sockets.get(fd)?.set_nonblocking(flags as u16 & nonblock != 0);
        Ok(())
    });
    shadow!(linker, async fd_filestat_get, (fd, stat), |sockets, mem| async move {
        sockets.get(fd)?;
        let at = abi::addr(stat);
        abi::bytes_mut(mem, at, abi::FILESTAT_SIZE)?.fill(0);
        abi::write_le(mem, at + 16, u64::from(u8::from(Filetype::SocketStream)), 1)
    });
    linker.func_wrap_async(
        MODULE,
        "fd_renumber",
        |mut caller: Caller<'_, T>, (from, to): (i32, i32)| {
            Box::new(async move {
                let fuel = caller.as_context_mut().hostcall_fuel();
                let (memory, data) = memory(&mut caller)?;
                let view = data.p1();
                let sockets = &mut view.capnet.sockets;
                match (sockets.owns(from), sockets.owns(to)) {
                    (true, _) => returned(sockets.renumber(from, to)),
                    // A socket and one of wasmtime-wasi's descriptors: two tables.
                    (false, true) => returned(Err(Errno::Badf.into())),
                    (false, false) => {
                        view.wasi.set_hostcall_fuel(fuel);
                        let mut memory = wiggle::GuestMemory::Unshared(memory);
                        wasi::fd_renumber(view.wasi, &mut memory, from, to).await
                    }
                }
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "poll_oneoff",
        |mut caller: Caller<'_, T>, (subs, events, count, nevents): (i32, i32, i32, i32)| {
            Box::new(async move {
                let fuel = caller.as_context_mut().hostcall_fuel();
                let (memory, data) = memory(&mut caller)?;
                let view = data.p1();
                let ctx = &mut *view.capnet;
                let ours = match poll::names_a_socket(memory, &ctx.sockets, subs, count) {
                    Ok(ours) => ours,
                    Err(fail) => return returned(Err(fail)),
                };
                if !ours {
                    view.wasi.set_hostcall_fuel(fuel);
                    let mut memory = wiggle::GuestMemory::Unshared(memory);
                    return wasi::poll_oneoff(view.wasi, &mut memory, subs, events, count, nevents)
                        .await;
                }
                let clocks = clock_readings(view.wasi);
                let result = poll::poll_oneoff(
                    &mut ctx.sockets,
                    &mut ctx.subscriptions,
                    memory,
                    |id| match id {
                        0 => clocks.0,
                        1 => clocks.1,
                        _ => None,
                    },
                    subs,
                    events,
                    count,
                    nevents,
                )
                .await;
                returned(result)
            })
        },
    )?;
    Ok(())
}

/// The guest's realtime and monotonic clocks now, in nanoseconds, as `clock_time_get` reads
/// them: what an absolute timeout is measured against.
fn clock_readings(wasi: &mut WasiP1Ctx) -> (Option<u64>, Option<u64>) {
    use wasmtime_wasi::clocks::WasiClocksView as _;
    use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
    let mut clocks = wasi.clocks();
    let wall = wall_clock::Host::now(&mut clocks).ok().and_then(|t| {
        t.seconds
            .checked_mul(1_000_000_000)?
            .checked_add(u64::from(t.nanoseconds))
    });
    let monotonic = monotonic_clock::Host::now(&mut clocks).ok();
    (wall, monotonic)
}

/// What a socket descriptor allows: reading, writing, polling, shutting down, accepting
/// (on a listener), non-blocking mode and a `filestat`.
fn socket_rights() -> u64 {
    u64::from(
        Rights::FD_READ
            | Rights::FD_WRITE
            | Rights::FD_FDSTAT_SET_FLAGS
            | Rights::FD_FILESTAT_GET
            | Rights::POLL_FD_READWRITE
            | Rights::SOCK_SHUTDOWN
            | Rights::SOCK_ACCEPT,
    )
}
