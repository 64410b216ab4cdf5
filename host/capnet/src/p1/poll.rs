//! `poll_oneoff` over capnet's sockets: what tokio's and mio's reactor on `wasm32-wasip1`
//! waits in, and what `std` never calls for a socket.
//!
//! A poll that names a socket descriptor is served here, with its clocks; one that names
//! none (a sleep, stdin) goes to `wasmtime-wasi` unchanged. A poll that waits on a socket and
//! on one of `wasmtime-wasi`'s descriptors at once is not served: each such subscription's
//! event says `ENOTSUP` at once.

use super::abi::{self, EVENT_SIZE, Fail, SUBSCRIPTION_SIZE};
use super::descriptors::Descriptors;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime_wasi::p1::types::Errno;

/// `eventtype`: the subscription's tag and the event's type.
const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
/// `subclockflags::subscription_clock_abstime`.
const ABSTIME: u16 = 1;

/// One subscription, read from guest memory.
pub(crate) struct Subscription {
    userdata: u64,
    tag: u8,
    /// The descriptor of an `fd_read` or `fd_write` subscription.
    fd: i32,
    /// When a clock subscription fires.
    deadline: Option<Instant>,
    /// The error a subscription fails with before any wait (a clock capnet does not serve, a
    /// descriptor that is not a socket).
    error: Option<Errno>,
    /// Set once it has happened: the event's error, if it has one.
    outcome: Option<Result<(), Errno>>,
}

/// Whether any of the `count` subscriptions at `subs` is for one of `sockets`: whether
/// capnet serves this poll.
pub(crate) fn names_a_socket(
    memory: &[u8],
    sockets: &Descriptors,
    subs: i32,
    count: i32,
) -> Result<bool, Fail> {
    let base = abi::addr(subs);
    for i in 0..abi::addr(count) {
        let at = base + i * SUBSCRIPTION_SIZE;
        let tag = abi::bytes(memory, at + 8, 1)?[0];
        if (tag == FD_READ || tag == FD_WRITE)
            && sockets.owns(abi::read_u32(memory, at + 16)? as i32)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `poll_oneoff(in, out, nsubscriptions, nevents)` for a poll that names a socket: waits until
/// a subscription happens, then writes an event for each that has, and their number.
/// `clock_now(id)` reads the guest's clock `id` (0 realtime, 1 monotonic) in nanoseconds, for
/// an absolute timeout. `scratch` is kept between calls, so a poll allocates nothing.
#[expect(
    clippy::too_many_arguments,
    reason = "the ABI's four arguments and three contexts"
)]
pub(crate) async fn poll_oneoff(
    sockets: &mut Descriptors,
    scratch: &mut Vec<Subscription>,
    memory: &mut [u8],
    clock_now: impl Fn(u32) -> Option<u64>,
    subs: i32,
    events: i32,
    count: i32,
    nevents: i32,
) -> Result<(), Fail> {
    let count = abi::addr(count);
    if count == 0 {
        return Err(Errno::Inval.into());
    }
    scratch.clear();
    let base = abi::addr(subs);
    let now = Instant::now();
    for i in 0..count {
        let at = base + i * SUBSCRIPTION_SIZE;
        let userdata = abi::read_u64(memory, at)?;
        let tag = abi::bytes(memory, at + 8, 1)?[0];
        let mut sub = Subscription {
            userdata,
            tag,
            fd: 0,
            deadline: None,
            error: None,
            outcome: None,
        };
        match tag {
            CLOCK => {
                let id = abi::read_u32(memory, at + 16)?;
                let timeout = abi::read_u64(memory, at + 24)?;
                let flags = abi::read_u16(memory, at + 40)?;
                let wait = if flags & ABSTIME != 0 {
                    clock_now(id).map(|clock| timeout.saturating_sub(clock))
                } else if id <= 1 {
                    Some(timeout)
                } else {
                    None
                };
                match wait {
                    Some(nanos) => sub.deadline = Some(now + Duration::from_nanos(nanos)),
                    None => sub.error = Some(Errno::Inval),
                }
            }
            FD_READ | FD_WRITE => {
                sub.fd = abi::read_u32(memory, at + 16)? as i32;
                if !sockets.owns(sub.fd) {
                    sub.error = Some(Errno::Notsup);
                }
            }
            _ => sub.error = Some(Errno::Inval),
        }
        scratch.push(sub);
    }
    let deadline = scratch.iter().filter_map(|s| s.deadline).min();
    let mut timer = std::pin::pin!(deadline.map(tokio::time::sleep_until));
    poll_fn(|cx| {
        let timed_out = match timer.as_mut().as_pin_mut() {
            Some(sleep) => sleep.poll(cx).is_ready(),
            None => false,
        };
        let now = Instant::now();
        let mut any = false;
        for sub in scratch.iter_mut() {
            let happened = match (sub.error, sub.tag) {
                (Some(errno), _) => Poll::Ready(Err(errno)),
                (None, CLOCK) => match sub.deadline {
                    Some(at) if timed_out || at <= now => Poll::Ready(Ok(())),
                    _ => Poll::Pending,
                },
                (None, tag) => match sockets.get(sub.fd) {
                    Ok(socket) if tag == FD_READ => socket.poll_readable(cx),
                    Ok(socket) => socket.poll_writable(cx),
                    Err(_) => Poll::Ready(Err(Errno::Badf)),
                },
            };
            if let Poll::Ready(outcome) = happened {
                sub.outcome = Some(outcome);
                any = true;
            }
        }
        if any { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    let mut written = 0;
    for sub in scratch.iter() {
        let Some(outcome) = sub.outcome else { continue };
        let at = abi::addr(events) + written * EVENT_SIZE;
        abi::bytes_mut(memory, at, EVENT_SIZE)?.fill(0);
        abi::write_le(memory, at, sub.userdata, 8)?;
        if let Err(errno) = outcome {
            abi::write_le(memory, at + 8, u64::from(u16::from(errno)), 2)?;
        }
        abi::write_le(memory, at + 10, u64::from(sub.tag), 1)?;
        if outcome.is_ok() && sub.tag == FD_READ {
            // Bytes are there (or the end): at least one, which is all mio and wasi-libc ask.
            abi::write_le(memory, at + 16, 1, 8)?;
        }
        written += 1;
    }
    abi::write_u32(memory, abi::addr(nevents), written as u32)?;
    Ok(())
}
