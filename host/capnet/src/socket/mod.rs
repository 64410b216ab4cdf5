//! Socket state machines over tokio, independent of any WIT version's bindings shape beyond
//! the shared error codes, so a `wasi:sockets@0.3.0` front end can reuse them.

pub mod addr;
pub mod lookup;
pub mod stream;
pub mod tcp;
