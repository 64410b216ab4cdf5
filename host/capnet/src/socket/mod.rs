//! The socket core: state machines over tokio, with their own error codes and `std::net`
//! addresses. Nothing here is generated from WIT, so one core serves every front end
//! (`crate::p2` today, a `wasi:sockets@0.3.0` one next); each front converts.

pub mod addr;
pub mod error;
pub mod lookup;
mod options;
pub mod stream;
pub mod tcp;
pub mod udp;

pub use error::ErrorCode;

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Polls once, for a non-blocking WIT call (`read`, `check-write`, `accept`, `finish-*`).
///
/// Runs outside tokio's cooperative budget: these probes never wait, so the budget's forced
/// `Pending` would only tell the guest "not ready" while the matching pollable says ready,
/// and a guest that polls and retries would spin without ever yielding.
pub(crate) fn poll_now<T>(f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let probe = std::pin::pin!(tokio::task::coop::unconstrained(std::future::poll_fn(f)));
    probe.poll(&mut Context::from_waker(Waker::noop()))
}
