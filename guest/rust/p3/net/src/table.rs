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

/// The four rows of one setting of `socket` in `state`: its value, a set to `good`, the value
/// read back, and a set to `bad`, which the docs refuse. TCP and UDP sockets share these
/// setters but no trait, hence a macro.
#[macro_export]
macro_rules! setting_rows {
    ($state:expr, $socket:expr, $name:literal, $get:ident, $set:ident, $good:expr, $bad:expr) => {{
        use $crate::table::{code, row, value};
        let (state, s) = ($state, $socket);
        row(state, concat!("get-", $name), code(s.$get()));
        row(
            state,
            &format!("set-{} {}", $name, $good),
            code(s.$set($good)),
        );
        row(state, concat!("get-", $name, " after set"), value(s.$get()));
        row(
            state,
            &format!("set-{} {}", $name, $bad),
            code(s.$set($bad)),
        );
    }};
}
