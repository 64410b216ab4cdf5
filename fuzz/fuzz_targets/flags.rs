//! CLI rules: `--allow-WORD LIST` / `--deny-WORD LIST`, `--library-allow NAME=USE LIST`, and
//! a rule as one string (`capnet:sockets/attenuate`). Errors name the flag; what loads
//! round-trips and decides as the reference does.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use capnet_fuzz::input::RuleSpec;
use capnet_policy::Verdict;
use libfuzzer_sys::fuzz_target;

/// A LIST: entries of rules joined by ',' (with spaces, empty items), or raw text.
fn list(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        return String::arbitrary(u);
    }
    let n = u.int_in_range(1..=4usize)?;
    let mut items = Vec::new();
    for _ in 0..n {
        let rule = RuleSpec::arbitrary(u)?;
        let pad = *u.choose(&["", " ", "\t"])?;
        items.push(format!("{pad}{}{pad}", rule.entry));
    }
    Ok(items.join(","))
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let rule = RuleSpec::arbitrary(u)?;
    let list = list(u)?;
    let policy = match u.int_in_range(0..=2u8)? {
        0 => capnet_fuzz::check_flag(rule.verdict, &rule.word, &list),
        1 => {
            let name = *u.choose(&["weather", "metrics-client", "", "Bad", "a-", "x1"])?;
            let spec = if u.ratio(1, 8)? {
                String::arbitrary(u)?
            } else {
                format!("{name}={} {list}", rule.word)
            };
            let verdict = if u.arbitrary()? {
                Verdict::Deny
            } else {
                Verdict::Allow
            };
            capnet_fuzz::check_library_flag(verdict, &spec)
        }
        _ => {
            let text = format!("{} {}", rule.word, rule.entry);
            capnet_fuzz::check_rule_text(rule.verdict, &text)
        }
    };
    if let Some(policy) = policy {
        let probes = capnet_fuzz::probes(&policy, &[]);
        capnet_fuzz::check_policy(&policy, &probes);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
