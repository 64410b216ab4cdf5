//! `nano-app STEP...`: the app of the nano-process example. Each STEP is one network use, run
//! in order, each reported on one stdout line:
//!
//! - `weather=ADDR`: the weather library fetches from ADDR (TCP);
//! - `metrics=ADDR`: the metrics library sends one datagram to ADDR (UDP);
//! - `app=ADDR`: the app itself fetches from ADDR, as the weather library would.
//!
//! A line reads `STEP: ok REPLY` or `STEP: error KIND: MESSAGE`. Run as a composition (see
//! guest/rust/nano/README.md), each library uses its own grant and the app its own. Exits 0
//! when every step ran, whatever they returned; 2 on a bad command line.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "app" });
}

use bindings::capnet::example::{metrics, weather};

fn main() -> ExitCode {
    let mut out = std::io::stdout();
    for step in std::env::args().skip(1) {
        let Some((who, addr)) = step.split_once('=') else {
            eprintln!(
                "error: step {step:?} is not WHO=ADDR\nusage: nano-app (weather|metrics|app)=ADDR..."
            );
            return ExitCode::from(2);
        };
        let outcome = match who {
            "weather" => weather::fetch(addr),
            "metrics" => metrics::send(addr, "requests 1").map(|()| String::from("sent")),
            "app" => fetch(addr),
            _ => {
                eprintln!(
                    "error: unknown step {who:?}\nusage: nano-app (weather|metrics|app)=ADDR..."
                );
                return ExitCode::from(2);
            }
        };
        let line = match outcome {
            Ok(reply) => format!("{step}: ok {}", reply.trim_end()),
            Err(error) => format!("{step}: error {error}"),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}

/// The app's own fetch, the same code as the weather library's.
fn fetch(addr: &str) -> Result<String, String> {
    let failed = |e: std::io::Error| format!("{:?}: {e}", e.kind());
    let mut stream = TcpStream::connect(addr).map_err(failed)?;
    stream.write_all(b"weather?\n").map_err(failed)?;
    stream.shutdown(Shutdown::Write).map_err(failed)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(failed)?;
    Ok(reply)
}
