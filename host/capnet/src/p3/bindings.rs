//! Bindings generated from `wit/p3`: `wasi:sockets@0.3.0`.
//!
//! The socket resources are the core's own types, as in the 0.2 front; `error-code` is
//! trappable, so a guest sees codes and host faults trap.

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/p3",
        world: "wasi:sockets/imports",
        imports: {
            "wasi:sockets/types.[method]tcp-socket.listen": store | trappable,
            "wasi:sockets/types.[method]tcp-socket.send": store | trappable,
            "wasi:sockets/types.[method]tcp-socket.receive": store | trappable,
            default: trappable,
        },
        require_store_data_send: true,
        with: {
            "wasi:sockets/types.tcp-socket": crate::socket::tcp::TcpSocket,
            "wasi:sockets/types.udp-socket": crate::socket::udp::UdpSocket,
        },
        // A library's own `types` and `ip-name-lookup`, imported under labels of their own.
        named_imports: {
            "wasi:sockets/types": crate::library::Library,
            "wasi:sockets/ip-name-lookup": crate::library::Library,
        },
        trappable_error_type: {
            "wasi:sockets/types.error-code" => crate::p3::error::SocketError,
        },
    });
}

pub use generated::named_imports;
pub use generated::wasi::sockets;
