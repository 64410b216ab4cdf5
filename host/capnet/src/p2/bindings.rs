//! Bindings generated from `wit/`: `wasi:sockets@0.2.12` and `capnet:sockets`, and the named
//! imports of `instance-network`, `tcp-create-socket` and `udp-create-socket` that carry a
//! library's grant.
//!
//! `wasi:io` maps to `wasmtime-wasi-io`'s resources and `wasi:clocks` to `wasmtime-wasi`'s, so
//! one `poll` waits on sockets, clocks and stdio together. `error-code` is trappable: a guest
//! sees codes, host faults trap.

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "capnet:sockets/host",
        imports: { default: trappable },
        require_store_data_send: true,
        with: {
            "wasi:io/poll": wasmtime_wasi_io::bindings::wasi::io::poll,
            "wasi:io/streams": wasmtime_wasi_io::bindings::wasi::io::streams,
            "wasi:io/error": wasmtime_wasi_io::bindings::wasi::io::error,
            "wasi:clocks/monotonic-clock": wasmtime_wasi::p2::bindings::clocks::monotonic_clock,
            "wasi:sockets/network.network": crate::p2::network::Network,
            "wasi:sockets/tcp.tcp-socket": crate::socket::tcp::TcpSocket,
            "wasi:sockets/udp.udp-socket": crate::socket::udp::UdpSocket,
            "wasi:sockets/udp.incoming-datagram-stream": crate::socket::udp::IncomingDatagramStream,
            "wasi:sockets/udp.outgoing-datagram-stream": crate::socket::udp::OutgoingDatagramStream,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": crate::socket::lookup::ResolveAddressStream,
            "capnet:sockets/attenuate.revoker": crate::grant::Revoker,
        },
        // A library's own imports of the interfaces that carry authority (see
        // `crate::composition`): the import decides whose grant serves the call.
        named_imports: {
            "wasi:sockets/instance-network": crate::library::Library,
            "wasi:sockets/tcp-create-socket": crate::library::Library,
            "wasi:sockets/udp-create-socket": crate::library::Library,
        },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => crate::p2::error::SocketError,
        },
    });
}

pub use generated::capnet::sockets::{attenuate, preopens};
pub use generated::named_imports;
pub use generated::wasi::sockets;
