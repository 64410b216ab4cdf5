//! `p3-lookup NAME`, for `wasi:sockets@0.3.0`: resolves NAME and prints each address on a
//! line of its own, or `error: lookup NAME: CODE` with the WIT error code, exiting 1.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "command",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use p3_net::wasi::sockets::ip_name_lookup::resolve_addresses;
use p3_net::{from_wit_ip, lookup_code_name};

struct Lookup;

impl bindings::exports::wasi::cli::run::Guest for Lookup {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [name] = &args[..] else {
            eprintln!("error: expected NAME\nusage: p3-lookup NAME");
            return Err(());
        };
        match resolve_addresses(name.clone()).await {
            Ok(addresses) => {
                for address in addresses {
                    println!("{}", from_wit_ip(address));
                }
                Ok(())
            }
            Err(code) => {
                eprintln!("error: lookup {name}: {}", lookup_code_name(&code));
                Err(())
            }
        }
    }
}

bindings::export!(Lookup with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
