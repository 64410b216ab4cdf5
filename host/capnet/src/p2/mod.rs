//! The `wasi:sockets@0.2.12` front end, with the `capnet:sockets@0.1.0` extensions that use its
//! types: the bindings, one module per WIT interface holding only trait code, and the
//! conversions between the generated types and the socket core's.
//!
//! Interfaces: `wasi:sockets/network`, `instance-network` (and the libraries' named imports of
//! it), `tcp`, `tcp-create-socket`, `udp`, `udp-create-socket`, `ip-name-lookup`;
//! `capnet:sockets/preopens` and `attenuate`; and `input-stream.read` of `wasi:io/streams` for
//! the sockets' streams.

pub(crate) mod attenuate;
pub(crate) mod bindings;
pub(crate) mod conv;
pub(crate) mod error;
pub(crate) mod instance_network;
pub(crate) mod ip_name_lookup;
pub(crate) mod network;
pub(crate) mod preopens;
pub(crate) mod streams;
pub(crate) mod tcp;
pub(crate) mod tcp_create_socket;
pub(crate) mod udp;
pub(crate) mod udp_create_socket;
