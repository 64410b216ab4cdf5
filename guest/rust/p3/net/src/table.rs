//! The rows a 0.3 table guest prints: `STATE | CALL | RESULT`, one per call, for a host test
//! to compare with the codes the WIT docs give. The guest observes; the test expects.

use crate::code_name;
use crate::wasi::sockets::types::ErrorCode;
use std::fmt::Display;

/// Prints one row.
pub fn row(state: &str, call: &str, result: impl Display) {
    println!("{state} | {call} | {result}");
}

/// `ok`, or the code's WIT name.
pub fn code<T>(result: Result<T, ErrorCode>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(code) => code_name(&code),
    }
}

/// `ok VALUE`, or the code's WIT name.
pub fn value<T: Display>(result: Result<T, ErrorCode>) -> String {
    match result {
        Ok(value) => format!("ok {value}"),
        Err(code) => code_name(&code),
    }
}

/// A `duration` (nanoseconds) in whole seconds when it is some: `42s`.
pub fn seconds(nanos: u64) -> String {
    if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else {
        format!("{nanos}ns")
    }
}
