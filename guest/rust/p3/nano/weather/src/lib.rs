//! The weather library of the 0.3 nano-process example: a TCP client on `wasi:sockets@0.3.0`,
//! nothing capnet-specific in it.
//!
//! Composed into an app with its `types` and `ip-name-lookup` imports kept apart under labels
//! of its own (guest/rust/p3/nano/compose.toml), every socket it creates and every name it looks
//! up is decided by the library's grant, not the app's.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "weather-library",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use bindings::exports::capnet::p3_guests::weather::Guest;

struct Weather;

impl Guest for Weather {
    async fn fetch(addr: String) -> Result<String, String> {
        p3_net::fetch(&addr).await
    }
}

bindings::export!(Weather with_types_in bindings);
