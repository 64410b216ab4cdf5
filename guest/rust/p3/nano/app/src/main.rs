//! `p3-nano-app STEP...`: the app of the 0.3 nano-process example. Each STEP is one fetch, run
//! in order and reported on one stdout line:
//!
//! - `weather=ADDR`: the weather library fetches from ADDR (IP:PORT or NAME:PORT);
//! - `app=ADDR`: the app fetches from ADDR itself, with the same code.
//!
//! A line reads `STEP: ok REPLY` or `STEP: error STEP: CODE` with the WIT error code. Composed
//! (guest/rust/p3/nano/compose.toml), the library's sockets and lookups are decided by its own
//! grant and the app's by the app's. Exits 0 when every step ran, whatever they returned; the
//! program is the component's `wasi:cli/run@0.3.0`.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "nano-app",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use bindings::capnet::p3_guests::weather;
use std::io::Write;

struct App;

impl bindings::exports::wasi::cli::run::Guest for App {
    async fn run() -> Result<(), ()> {
        let mut out = std::io::stdout();
        for step in std::env::args().skip(1) {
            let outcome = match step.split_once('=') {
                Some(("weather", addr)) => weather::fetch(addr.to_owned()).await,
                Some(("app", addr)) => p3_net::fetch(addr).await,
                _ => {
                    eprintln!("error: step {step:?} is not (weather|app)=ADDR");
                    return Err(());
                }
            };
            let line = match outcome {
                Ok(reply) => format!("{step}: ok {}", reply.trim_end()),
                Err(error) => format!("{step}: error {error}"),
            };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        Ok(())
    }
}

bindings::export!(App with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
