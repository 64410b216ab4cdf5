//! A policy file, as text: every error names its line (and rule), every policy that loads
//! renders back to itself and decides its probes as the linear reference does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        capnet_fuzz::check_toml(text);
    }
});
