//! The `wasi:sockets@0.3.0` front end: the bindings, one module per WIT interface holding only
//! trait code, and the conversions between the generated types and the socket core's.
//!
//! 0.3 has no `network` handle: a socket is decided by the grant of the import that created it
//! (the instance's root grant, or a library's through its named import, [`named`]), with the
//! same policy and checks as the 0.2 front, before the system call.

pub(crate) mod bindings;
pub(crate) mod conv;
pub(crate) mod error;
pub(crate) mod ip_name_lookup;
pub(crate) mod named;
pub(crate) mod tcp;
pub(crate) mod udp;
