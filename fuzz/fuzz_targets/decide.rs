//! The compiled matcher against a linear scan of the rules: the same verdict, a covering rule
//! as specific as any, IPv6 spellings of IPv4 decided as IPv4, names as the rule language
//! says; for policies of up to 24 rules clustered around a few addresses and names.
#![no_main]

use capnet_fuzz::input::PolicySpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|spec: PolicySpec| {
    let policy = spec.build();
    let probes = capnet_fuzz::probes(&policy, &spec.extra);
    capnet_fuzz::check_policy(&policy, &probes);
});
