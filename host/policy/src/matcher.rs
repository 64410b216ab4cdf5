//! Rules compiled into lookup tables, so a decision costs a few hash probes
//! whatever the number of rules.
//!
//! Per use and per verdict there is one [`Table`]: for IPv4 and IPv6 apart,
//! the distinct prefix lengths present (longest first), each a map from the
//! masked network bits to a [`PortMap`]; for names, an exact map and a
//! suffix map probed once per label of the queried name. `any` is prefix
//! length 0 in both families, and the name table's catch-all.
//!
//! When several rules match, the most specific is reported: the longest
//! prefix, then the narrowest port range, then the earliest rule; for names,
//! an exact name, then the longest suffix, then `any`, each the earliest.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use crate::ip::{mask_v4, mask_v6, min_prefix};
use crate::{Rule, Target, Use, Verdict};

/// The index of a rule in the policy's rule list.
pub(crate) type RuleIndex = u32;

/// Sentinel for "no rule" in a [`PortMap`].
const NONE: RuleIndex = RuleIndex::MAX;

/// Every use's tables.
#[derive(Default)]
pub(crate) struct Compiled {
    per_use: [Tables; Use::ALL.len()],
}

/// One use's deny and allow tables.
#[derive(Default)]
struct Tables {
    deny: Table,
    allow: Table,
}

/// The rules of one use and one verdict.
#[derive(Default)]
pub(crate) struct Table {
    v4: Prefixes<u32>,
    v6: Prefixes<u128>,
    exact: HashMap<String, RuleIndex>,
    suffix: HashMap<String, RuleIndex>,
    any_name: Option<RuleIndex>,
}

/// Prefix lengths present, longest first, each with its networks.
struct Prefixes<K> {
    levels: Vec<(u8, NetMap<K, PortMap>)>,
}

/// A map keyed by network bits, hashed with [`NetHasher`].
type NetMap<K, V> = HashMap<K, V, BuildHasherDefault<NetHasher>>;

/// A fast hasher for network bits (integers), a few multiplies per key
/// instead of SipHash's rounds. It mixes every input bit into the low bits
/// (the splitmix64 finaliser), since masked networks end in runs of zeros
/// that a plain multiplicative hash would leave in place and pile into one
/// bucket. Keys come from the policy's author, not from guests, so there
/// is no need for a keyed hash here.
#[derive(Default)]
struct NetHasher(u64);

impl NetHasher {
    fn mix(&mut self, word: u64) {
        let mut z = (self.0 ^ word).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

impl Hasher for NetHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(n.into());
    }

    fn write_u128(&mut self, n: u128) {
        self.mix(n as u64);
        self.mix((n >> 64) as u64);
    }
}

impl<K> Default for Prefixes<K> {
    fn default() -> Self {
        Prefixes { levels: Vec::new() }
    }
}

/// The port space of one network cut into segments, each holding the most
/// specific rule covering it; a lookup is one binary search.
struct PortMap {
    /// Segment starts, ascending, the first 0.
    starts: Vec<u16>,
    /// The rule of each segment, or [`NONE`].
    rules: Vec<RuleIndex>,
}

impl PortMap {
    /// Builds the segments from `(lo, hi, rule)` entries, which may overlap.
    fn build(mut entries: PortEntries) -> PortMap {
        let mut cuts: Vec<u32> = Vec::with_capacity(entries.len() * 2 + 1);
        cuts.push(0);
        for &(lo, hi, _) in &entries {
            cuts.push(lo.into());
            cuts.push(u32::from(hi) + 1);
        }
        cuts.sort_unstable();
        cuts.dedup();
        entries.sort_unstable_by_key(|&(lo, _, _)| lo);

        // Sweep the cuts; the heap holds the entries begun so far, best on
        // top (narrowest range, then earliest rule); ended ones are dropped
        // when they reach the top.
        let mut active = BinaryHeap::new();
        let mut next = 0;
        let mut starts = Vec::new();
        let mut rules = Vec::new();
        for &cut in cuts.iter().filter(|&&c| c <= u32::from(u16::MAX)) {
            while next < entries.len() && u32::from(entries[next].0) <= cut {
                let (lo, hi, rule) = entries[next];
                active.push(Reverse((hi - lo, rule, hi)));
                next += 1;
            }
            while active
                .peek()
                .is_some_and(|Reverse((_, _, hi))| u32::from(*hi) < cut)
            {
                active.pop();
            }
            let best = active.peek().map_or(NONE, |Reverse((_, rule, _))| *rule);
            if rules.last() != Some(&best) {
                starts.push(cut as u16);
                rules.push(best);
            }
        }
        PortMap { starts, rules }
    }

    /// The most specific rule covering `port`.
    fn find(&self, port: u16) -> Option<RuleIndex> {
        let i = self.starts.partition_point(|&s| s <= port) - 1;
        Some(self.rules[i]).filter(|&r| r != NONE)
    }
}

/// Network bits of one family: how to mask them.
trait Bits: Copy + Eq + Hash {
    fn masked(self, len: u8) -> Self;
}

impl Bits for u32 {
    fn masked(self, len: u8) -> Self {
        self & mask_v4(len)
    }
}

impl Bits for u128 {
    fn masked(self, len: u8) -> Self {
        self & mask_v6(len)
    }
}

impl<K: Bits> Prefixes<K> {
    /// The most specific rule on the longest matching prefix that covers
    /// `port`, considering only prefixes of at least `min` bits.
    fn find(&self, bits: K, port: u16, min: u8) -> Option<RuleIndex> {
        self.levels
            .iter()
            .take_while(|(len, _)| *len >= min)
            .find_map(|(len, nets)| nets.get(&bits.masked(*len))?.find(port))
    }

    fn from_staging(staging: Staged<K>) -> Self {
        let levels = staging
            .into_iter()
            .rev()
            .map(|(len, nets)| {
                let nets = nets
                    .into_iter()
                    .map(|(k, entries)| (k, PortMap::build(entries)))
                    .collect();
                (len, nets)
            })
            .collect();
        Prefixes { levels }
    }
}

impl Table {
    /// The most specific rule matching `ip` (normalised) on `port`.
    pub(crate) fn find_ip(&self, ip: IpAddr, port: u16) -> Option<RuleIndex> {
        let min = min_prefix(ip);
        match ip {
            IpAddr::V4(a) => self.v4.find(a.to_bits(), port, min),
            IpAddr::V6(a) => self.v6.find(a.to_bits(), port, min),
        }
    }

    /// The most specific rule matching `name` (lowercase, no trailing dot,
    /// not an IP literal).
    pub(crate) fn find_name(&self, name: &str) -> Option<RuleIndex> {
        if let Some(&r) = self.exact.get(name) {
            return Some(r);
        }
        if !self.suffix.is_empty() {
            let mut rest = name;
            while let Some((_, tail)) = rest.split_once('.') {
                if let Some(&r) = self.suffix.get(tail) {
                    return Some(r);
                }
                rest = tail;
            }
        }
        self.any_name
    }
}

/// `(lo, hi, rule)` entries of one network, as staged before compiling.
type PortEntries = Vec<(u16, u16, RuleIndex)>;

/// Staged networks of one family, by prefix length.
type Staged<K> = BTreeMap<u8, NetMap<K, PortEntries>>;

/// A table being filled: address entries grouped by prefix length.
#[derive(Default)]
struct Staging {
    v4: Staged<u32>,
    v6: Staged<u128>,
    exact: HashMap<String, RuleIndex>,
    suffix: HashMap<String, RuleIndex>,
    any_name: Option<RuleIndex>,
}

impl Staging {
    fn add(&mut self, rule: &Rule, index: RuleIndex) {
        let entry = (rule.ports.lo(), rule.ports.hi(), index);
        match &rule.target {
            Target::Ip(net) => match net.addr() {
                IpAddr::V4(a) => push(&mut self.v4, net.prefix(), a.to_bits(), entry),
                IpAddr::V6(a) => push(&mut self.v6, net.prefix(), a.to_bits(), entry),
            },
            Target::Any => {
                push(&mut self.v4, 0, 0, entry);
                push(&mut self.v6, 0, 0, entry);
                if rule.ports.is_any() {
                    self.any_name.get_or_insert(index);
                }
            }
            // Rules are added in order, so the first keeps the name.
            Target::Name(n) => {
                self.exact.entry(n.clone()).or_insert(index);
            }
            Target::Suffix(s) => {
                self.suffix.entry(s.clone()).or_insert(index);
            }
        }
    }

    fn finish(self) -> Table {
        Table {
            v4: Prefixes::from_staging(self.v4),
            v6: Prefixes::from_staging(self.v6),
            exact: self.exact,
            suffix: self.suffix,
            any_name: self.any_name,
        }
    }
}

fn push<K: Eq + Hash>(staging: &mut Staged<K>, len: u8, key: K, entry: (u16, u16, RuleIndex)) {
    staging
        .entry(len)
        .or_default()
        .entry(key)
        .or_default()
        .push(entry);
}

impl Compiled {
    /// Compiles `rules`; their indices are what lookups return.
    pub(crate) fn build(rules: &[Rule]) -> Compiled {
        let mut staging: [[Staging; 2]; Use::ALL.len()] = Default::default();
        for (index, rule) in rules.iter().enumerate() {
            let index = RuleIndex::try_from(index).expect("fewer than 2^32 - 1 rules");
            for use_ in rule.uses.iter() {
                staging[use_.index()][verdict_slot(rule.verdict)].add(rule, index);
            }
        }
        let mut compiled = Compiled::default();
        for (tables, [deny, allow]) in compiled.per_use.iter_mut().zip(staging) {
            tables.deny = deny.finish();
            tables.allow = allow.finish();
        }
        compiled
    }

    /// The table for `use_` and `verdict`.
    pub(crate) fn table(&self, use_: Use, verdict: Verdict) -> &Table {
        let tables = &self.per_use[use_.index()];
        match verdict {
            Verdict::Deny => &tables.deny,
            Verdict::Allow => &tables.allow,
        }
    }
}

fn verdict_slot(verdict: Verdict) -> usize {
    match verdict {
        Verdict::Deny => 0,
        Verdict::Allow => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_map_prefers_the_narrowest_range_then_the_earliest_rule() {
        let map = PortMap::build(vec![(0, 65535, 0), (80, 90, 1), (85, 85, 2), (80, 90, 3)]);
        assert_eq!(map.find(79), Some(0));
        assert_eq!(map.find(80), Some(1));
        assert_eq!(map.find(85), Some(2));
        assert_eq!(map.find(86), Some(1));
        assert_eq!(map.find(91), Some(0));
        assert_eq!(map.find(65535), Some(0));
    }

    #[test]
    fn port_map_has_gaps_between_disjoint_ranges() {
        let map = PortMap::build(vec![(10, 20, 0), (30, 40, 1), (65535, 65535, 2)]);
        assert_eq!(map.find(0), None);
        assert_eq!(map.find(20), Some(0));
        assert_eq!(map.find(21), None);
        assert_eq!(map.find(30), Some(1));
        assert_eq!(map.find(41), None);
        assert_eq!(map.find(65534), None);
        assert_eq!(map.find(65535), Some(2));
    }
}
