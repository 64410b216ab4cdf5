//! Targets, networks and port ranges as text, and the address normaliser: what parses renders
//! to text that parses back to it; normalising is idempotent and folds exactly the IPv4-mapped
//! and IPv4-compatible spellings.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = <[u8; 16]>::try_from(data.get(..16).unwrap_or_default()) {
        capnet_fuzz::check_normalize(IpAddr::V6(Ipv6Addr::from(bytes)));
        let v4 = [bytes[12], bytes[13], bytes[14], bytes[15]];
        capnet_fuzz::check_normalize(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        capnet_fuzz::check_target_text(text);
    }
});
