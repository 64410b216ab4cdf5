//! `wasi:io/streams` `input-stream.read`, `input-stream.blocking-read` and
//! `output-stream.write` for the streams of capnet's TCP connections: bytes move between the
//! socket and guest memory with no host buffer between. Every other stream (stdin, files, a
//! stream under a `bytes-per-second` rate) is served by `wasmtime-wasi-io` as before.
//!
//! A `write` takes its list as a [`WasmList`], a view of guest memory, and sends from there;
//! only what the kernel cannot take at once is copied, for the drain task that sends it.
//!
//! wasmtime lowers a host function's result after the function returns, through the result's
//! `Lower` implementation, which may call the guest's `cabi_realloc` and write its memory.
//! [`ReadList`] is a `list<u8>` whose lowering allocates the list and `recv`s into it. The
//! list must hold exactly the bytes it says (the guest frees it by its length, and frees an
//! empty one not at all), so how many bytes a read delivers is settled before the guest
//! allocates: a read that finds few bytes queued takes them into the store's scratch buffer
//! and copies them, one that finds many (`ioctl(FIONREAD)`) takes exactly those straight into
//! guest memory. No `realloc` is asked to shrink a list, which some guests' allocators refuse.
//!
//! The implementations of `ComponentType` and `Lower` are wasmtime's documented-hidden
//! lowering API; this module is the crate's only `unsafe`, and what it promises is said
//! beside each.

#![allow(unsafe_code)]

use crate::ctx::{CapnetCtxView, CapnetView};
use crate::socket::stream::{ReadPlan, ReadSide, SMALL_READ, WriteSide};
use bytes::Bytes;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Linker, Lower, Resource, WasmList};
use wasmtime::{StoreContextMut, ValRaw};
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    self as wit, Host as _, HostInputStream, HostOutputStream,
};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

/// The reading and writing sides of the store's TCP streams by resource index, and the
/// scratch buffer small reads land in.
pub(crate) struct Streams {
    readers: BySlot<ReadSide>,
    writers: BySlot<WriteSide>,
    scratch: Arc<Scratch>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            readers: BySlot(Vec::new()),
            writers: BySlot(Vec::new()),
            scratch: Arc::new(Scratch(Mutex::new(vec![0; SMALL_READ].into_boxed_slice()))),
        }
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

impl Streams {
    /// Notes that the input stream at table index `input` reads through `reader`, and the
    /// output stream at `output` writes through `writer`.
    pub(crate) fn insert(
        &mut self,
        (input, reader): (u32, Weak<ReadSide>),
        (output, writer): (u32, Weak<WriteSide>),
    ) {
        self.readers.insert(input, reader);
        self.writers.insert(output, writer);
    }
}

/// Sides by table index. A `Weak` upgrades only while its reader or writer lives, which is
/// while the table holds it at that index: a reused index whose stream is gone upgrades to
/// nothing.
struct BySlot<S>(Vec<Weak<S>>);

impl<S> BySlot<S> {
    fn insert(&mut self, rep: u32, side: Weak<S>) {
        let Ok(index) = usize::try_from(rep) else {
            return;
        };
        if index >= self.0.len() {
            self.0.resize_with(index + 1, Weak::new);
        }
        self.0[index] = side;
    }

    fn find(&self, rep: u32) -> Option<Arc<S>> {
        self.0.get(usize::try_from(rep).ok()?)?.upgrade()
    }
}

/// One store's buffer for small reads: filled by a `read` and copied into the guest's list as
/// that call's result is lowered, before any other call of the store can run.
pub(crate) struct Scratch(Mutex<Box<[u8]>>);

impl Scratch {
    fn lock(&self) -> MutexGuard<'_, Box<[u8]>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bytes of one `read`, as the `list<u8>` the guest receives.
enum ReadList {
    /// Bytes a host stream already holds.
    Bytes(Vec<u8>),
    /// The first `len` bytes of the store's scratch buffer.
    Small { scratch: Arc<Scratch>, len: usize },
    /// `len` bytes queued on the socket, `recv`d into the list as it is lowered.
    Direct { side: Arc<ReadSide>, len: usize },
}

impl ReadList {
    fn len(&self) -> usize {
        match self {
            ReadList::Bytes(bytes) => bytes.len(),
            ReadList::Small { len, .. } | ReadList::Direct { len, .. } => *len,
        }
    }

    /// Allocates the list in the guest and fills it: where it is and how long.
    fn lower_bytes<U>(&self, cx: &mut LowerContext<'_, U>) -> wasmtime::Result<(usize, usize)> {
        let len = self.len();
        // As wasmtime lowers a `list<u8>`: one call of the guest's allocator, align 1, which
        // checks that `ptr..ptr + len` lies in memory.
        let ptr = cx.realloc(0, 0, 1, len)?;
        let list = &mut cx.as_slice_mut()[ptr..][..len];
        match self {
            ReadList::Bytes(bytes) => list.copy_from_slice(bytes),
            ReadList::Small { scratch, len } => list.copy_from_slice(&scratch.lock()[..*len]),
            ReadList::Direct { side, len } => {
                let got = side.recv_direct(list);
                if got < *len {
                    // The kernel handed out fewer bytes than it said it held (it never has):
                    // the stream is closed for the next read, and this list says what came.
                    // A list emptied this way keeps its allocation: the guest frees none.
                    let ptr = if got == 0 {
                        ptr
                    } else {
                        cx.realloc(ptr, *len, 1, got)?
                    };
                    return Ok((ptr, got));
                }
            }
        }
        Ok((ptr, len))
    }
}

// SAFETY: `ReadList` lowers as a `list<u8>`, which `typecheck` requires the import to be: a
// pointer pair of canonical ABI size 8, align 4, two flat values.
unsafe impl ComponentType for ReadList {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: both lowerings write the pointer pair of a list the guest's allocator returned for
// exactly its length (or longer, in the branch the kernel never takes), filled before it is
// written; `LowerContext::realloc` checked that it lies in memory.
unsafe impl Lower for ReadList {
    fn linear_lower_to_flat<U>(
        &self,
        cx: &mut LowerContext<'_, U>,
        _ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.lower_bytes(cx)?;
        // As wasmtime's own lists: 64-bit values, of which a 32-bit memory reads the low half.
        dst.write([
            ValRaw::i64(i64::try_from(ptr)?),
            ValRaw::i64(i64::try_from(len)?),
        ]);
        Ok(())
    }

    fn linear_lower_to_memory<U>(
        &self,
        cx: &mut LowerContext<'_, U>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.lower_bytes(cx)?;
        *cx.get::<4>(offset) = u32::try_from(ptr)?.to_le_bytes();
        *cx.get::<4>(offset + 4) = u32::try_from(len)?.to_le_bytes();
        Ok(())
    }
}

/// Serves `[method]input-stream.read`, `[method]input-stream.blocking-read` and
/// `[method]output-stream.write` in `linker`, which must already hold the rest of
/// `wasi:io/streams@0.2.12` (this replaces those functions).
pub(crate) fn add_to_linker<T: CapnetView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    let mut streams = linker.instance("wasi:io/streams@0.2.12")?;
    streams.func_wrap(
        "[method]input-stream.read",
        |mut store, (stream, len): (Resource<DynInputStream>, u64)| {
            Ok((read(store.data_mut().capnet(), stream, len)?,))
        },
    )?;
    // A socket's `blocking-read` is its `read` until that finds bytes, the end or an error,
    // waiting on the stream's own readiness in between, as `wasmtime-wasi-io` waits; every
    // other stream keeps its own `blocking-read`.
    streams.func_wrap_async(
        "[method]input-stream.blocking-read",
        |mut store: StoreContextMut<'_, T>, (stream, len): (Resource<DynInputStream>, u64)| {
            Box::new(async move {
                let view = store.data_mut().capnet();
                if view.ctx.streams.readers.find(stream.rep()).is_none() {
                    return match HostInputStream::blocking_read(view.table, stream, len).await {
                        Ok(bytes) => Ok((Ok(ReadList::Bytes(bytes)),)),
                        Err(e) => Ok((Err(view.table.convert_stream_error(e)?),)),
                    };
                }
                loop {
                    let again = Resource::new_borrow(stream.rep());
                    match read(store.data_mut().capnet(), again, len)? {
                        Ok(list) if list.len() == 0 && len != 0 => {}
                        done => return Ok((done,)),
                    }
                    let table = store.data_mut().capnet().table;
                    table.get_mut(&stream)?.ready().await;
                }
            })
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.write",
        |mut store: StoreContextMut<'_, T>,
         (stream, list): (Resource<DynOutputStream>, WasmList<u8>)| {
            let side = store
                .data_mut()
                .capnet()
                .ctx
                .streams
                .writers
                .find(stream.rep());
            let written = match side.filter(|side| side.sends_direct()) {
                Some(side) => {
                    let bytes = list.as_le_slice(&store);
                    side.write(bytes, |sent| Bytes::copy_from_slice(&bytes[sent..]), None)
                }
                None => {
                    let bytes = list.as_le_slice(&store).to_vec();
                    HostOutputStream::write(store.data_mut().capnet().table, stream, bytes)
                }
            };
            let table = store.data_mut().capnet().table;
            Ok((match written {
                Ok(()) => Ok(()),
                Err(e) => Err(table.convert_stream_error(e)?),
            },))
        },
    )
}

type ReadResult = Result<ReadList, wit::StreamError>;

fn read(
    view: CapnetCtxView<'_>,
    stream: Resource<DynInputStream>,
    len: u64,
) -> wasmtime::Result<ReadResult> {
    let streams = &view.ctx.streams;
    if let Some(side) = streams.readers.find(stream.rep()) {
        let size = usize::try_from(len).unwrap_or(usize::MAX);
        let plan = side.plan_read(size, &mut streams.scratch.lock());
        let list = match plan {
            ReadPlan::Empty => ReadList::Bytes(Vec::new()),
            ReadPlan::Small(len) => ReadList::Small {
                scratch: streams.scratch.clone(),
                len,
            },
            ReadPlan::Direct(len) => ReadList::Direct { side, len },
            ReadPlan::Failed(e) => return view.table.convert_stream_error(e).map(Err),
            ReadPlan::Metered => return copied(view, stream, len),
        };
        return Ok(Ok(list));
    }
    copied(view, stream, len)
}

/// A read served by the stream's own `InputStream::read`, through a host buffer.
fn copied(
    view: CapnetCtxView<'_>,
    stream: Resource<DynInputStream>,
    len: u64,
) -> wasmtime::Result<ReadResult> {
    match HostInputStream::read(&mut *view.table, stream, len) {
        Ok(bytes) => Ok(Ok(ReadList::Bytes(bytes))),
        Err(e) => view.table.convert_stream_error(e).map(Err),
    }
}
