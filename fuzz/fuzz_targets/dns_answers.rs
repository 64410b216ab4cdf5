//! The DNS rebinding defence: which answers of a lookup capnet drops. An answer in loopback,
//! private, link-local, metadata or unspecified space, in any spelling, is refused unless an
//! allow rule names the address or the policy inherits the network.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use capnet_fuzz::input::{PolicySpec, ip};
use libfuzzer_sys::fuzz_target;

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let spec = PolicySpec::arbitrary(u)?;
    let policy = spec.build();
    let n = u.int_in_range(1..=16usize)?;
    for _ in 0..n {
        let answer = ip(u)?;
        capnet_fuzz::check_dns_answer(&policy, answer);
        if let Some((_, library)) = policy.libraries().next() {
            capnet_fuzz::check_dns_answer(library, answer);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
