//! Rules compiled into lookup tables, so a decision costs a few array probes
//! whatever the number of rules.
//!
//! Per use and per verdict there is one [`Table`]. For IPv4 and IPv6 apart,
//! the prefixes of every rule are flattened into a sorted array of disjoint
//! address intervals ([`Flat`]): each interval points at one port map that
//! already says, for every port, which rule the longest matching prefix
//! gives (a longer prefix that does not cover the port falls back to a
//! shorter one). A check is one binary search over interval starts and one
//! over a handful of port segments: `O(log n)`, no hashing. For names, an
//! exact map and a suffix map probed once per label of the queried name,
//! both with a fast non-cryptographic hasher. `any` is prefix length 0 in
//! both families, and the name table's catch-all.
//!
//! Unspecified and multicast addresses match only rules at least as long as
//! their family's minimum (`0.0.0.0/32`, `224.0.0.0/4`, `::/128`,
//! `ff00::/8`): those prefixes are "cut" nodes that inherit nothing from the
//! shorter prefixes around them.
//!
//! When several rules match, the most specific is reported: the longest
//! prefix, then the narrowest port range, then the earliest rule; for names,
//! an exact name, then the longest suffix, then `any`, each the earliest.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::{Rule, Target, Use, Verdict};

/// The index of a rule in the policy's rule list.
pub(crate) type RuleIndex = u32;

/// Sentinel for "no rule" in a port map.
const NONE: RuleIndex = RuleIndex::MAX;

/// Every use's tables.
#[derive(Default)]
pub(crate) struct Compiled {
    per_use: [Tables; Use::ALL.len()],
}

/// The deny and allow tables of one use.
#[derive(Default)]
struct Tables {
    deny: Table,
    allow: Table,
}

/// The rules of one use and one verdict, compiled.
#[derive(Default)]
pub(crate) struct Table {
    v4: Flat<u32>,
    v6: Flat<u128>,
    exact: NameMap,
    suffix: NameMap,
    any_name: Option<RuleIndex>,
    /// Port segments of every port map of this table, pooled.
    ports: Pool,
    /// Whether no rule at all is in this table (a check skips it).
    empty: bool,
}

type NameMap = HashMap<Box<str>, Cell, BuildHasherDefault<FastHasher>>;

/// A small, fast, non-cryptographic hasher (splitmix64 steps). Policies
/// are written by operators, not attackers, and a check must be quick.
#[derive(Default)]
struct FastHasher(u64);

impl FastHasher {
    fn mix(&mut self, word: u64) {
        let mut z = (self.0 ^ word).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

impl Hasher for FastHasher {
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

    fn write_u8(&mut self, n: u8) {
        self.mix(n.into());
    }
}

/// One port map in a [`Pool`], and where to look when it has no rule for
/// a port: the map of the next shorter prefix (`parent`), or [`NONE`].
/// A map of one segment is held inline: `len == 0` and `offset` is its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    offset: u32,
    len: u32,
    parent: u32,
}

/// Port maps stored back to back: for each, sorted segment starts (the
/// first is 0) and the rule of each segment (or [`NONE`]); and every
/// prefix's cell, for the `parent` links.
#[derive(Default)]
struct Pool {
    starts: Vec<u16>,
    rules: Vec<RuleIndex>,
    cells: Vec<Cell>,
}

impl Pool {
    fn push(&mut self, map: &PortMap, parent: u32) -> Cell {
        if map.starts.len() == 1 {
            return Cell {
                offset: map.rules[0],
                len: 0,
                parent,
            };
        }
        let offset = u32::try_from(self.starts.len()).expect("fewer than 2^32 port segments");
        self.starts.extend_from_slice(&map.starts);
        self.rules.extend_from_slice(&map.rules);
        Cell {
            offset,
            len: map.starts.len() as u32,
            parent,
        }
    }

    #[inline]
    fn find(&self, mut cell: Cell, port: u16) -> Option<RuleIndex> {
        loop {
            let rule = if cell.len == 0 {
                cell.offset
            } else {
                let (lo, len) = (cell.offset as usize, cell.len as usize);
                let starts = &self.starts[lo..lo + len];
                let i = starts.partition_point(|&s| s <= port) - 1;
                self.rules[lo + i]
            };
            if rule != NONE {
                return Some(rule);
            }
            if cell.parent == NONE {
                return None;
            }
            cell = self.cells[cell.parent as usize];
        }
    }
}

/// For each port, which rule applies: sorted segment starts (the first is
/// always 0) and the rule of each segment ([`NONE`] for no rule).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PortMap {
    starts: Vec<u16>,
    rules: Vec<RuleIndex>,
}

impl PortMap {
    fn empty() -> PortMap {
        PortMap {
            starts: vec![0],
            rules: vec![NONE],
        }
    }

    /// Builds a map from `(lo, hi, rule)` entries: where several cover a
    /// port, the narrowest range wins, then the lowest rule index.
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

        // Sweep the cut points, keeping the ranges open at each in a heap
        // ordered by (width, rule): its top is the winner there.
        let mut active = BinaryHeap::new();
        let mut next = 0;
        let mut map = PortMap {
            starts: Vec::new(),
            rules: Vec::new(),
        };
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
            map.push(cut as u16, best);
        }
        map
    }

    fn push(&mut self, start: u16, rule: RuleIndex) {
        if self.rules.last() != Some(&rule) {
            self.starts.push(start);
            self.rules.push(rule);
        }
    }

    fn find(&self, port: u16) -> Option<RuleIndex> {
        let i = self.starts.partition_point(|&s| s <= port) - 1;
        Some(self.rules[i]).filter(|&r| r != NONE)
    }

    /// `own` where it has a rule, else `parent`.
    fn overlay(own: &PortMap, parent: &PortMap) -> PortMap {
        let mut cuts: Vec<u16> = own.starts.iter().chain(&parent.starts).copied().collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut map = PortMap {
            starts: Vec::new(),
            rules: Vec::new(),
        };
        for cut in cuts {
            let rule = own.find(cut).or_else(|| parent.find(cut)).unwrap_or(NONE);
            map.push(cut, rule);
        }
        map
    }
}

/// An address family's key: `u32` for IPv4, `u128` for IPv6.
trait Key: Copy + Ord + Default {
    /// Bits in an address.
    const WIDTH: u32;
    fn from_wide(v: u128) -> Self;
}

impl Key for u32 {
    const WIDTH: u32 = 32;
    fn from_wide(v: u128) -> Self {
        v as u32
    }
}

impl Key for u128 {
    const WIDTH: u32 = 128;
    fn from_wide(v: u128) -> Self {
        v
    }
}

/// Interval starts per entry of [`Flat::index`].
const BLOCK: usize = 32;

/// A parent port map this small is copied into its children, so a check
/// finds its rule in one map; a larger one is linked to instead, which
/// keeps memory linear when many prefixes nest under one busy network.
const MERGE_LIMIT: usize = 16;

/// One family's prefixes, flattened: `starts[i]..starts[i + 1]` is an
/// interval whose addresses all match the same rules, `slots[i]` its ports.
/// `index` holds every [`BLOCK`]th start, small enough to stay in cache,
/// so a search touches one index and one block of `starts`.
struct Flat<K> {
    index: Vec<K>,
    starts: Vec<K>,
    slots: Vec<Cell>,
}

impl<K> Default for Flat<K> {
    fn default() -> Self {
        Flat {
            index: Vec::new(),
            starts: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// One prefix while flattening.
struct Node {
    lo: u128,
    hi: u128,
    /// The rules written for exactly this prefix.
    own: Option<PortMap>,
    /// A special-address boundary: inherits nothing from shorter prefixes.
    cut: bool,
}

/// An open prefix while flattening: its last address, the port map stored
/// for it, its cell, and the cell's index in the pool.
type Open = (u128, PortMap, Cell, u32);

impl<K: Key> Flat<K> {
    #[inline]
    fn find(&self, pool: &Pool, bits: K, port: u16) -> Option<RuleIndex> {
        if self.starts.is_empty() {
            return None;
        }
        let j = self.index.partition_point(|&s| s <= bits) - 1;
        let lo = j * BLOCK;
        let hi = (lo + BLOCK).min(self.starts.len());
        let i = lo + self.starts[lo..hi].partition_point(|&s| s <= bits) - 1;
        pool.find(self.slots[i], port)
    }

    /// Flattens `(prefix length, network bits) -> port entries` with the
    /// family's `cuts` (special prefixes), storing port maps in `pool`.
    fn build(staged: Staged, cuts: &[(u128, u8)], pool: &mut Pool) -> Flat<K> {
        if staged.is_empty() {
            return Flat::default();
        }
        let width = K::WIDTH;
        let top = u128::MAX >> (128 - width);
        let span = |lo: u128, len: u8| -> (u128, u128) {
            let size_mask = if u32::from(len) >= width {
                0
            } else {
                top >> u32::from(len)
            };
            (lo, lo | size_mask)
        };
        let mut nodes: BTreeMap<(u128, u8), Node> = BTreeMap::new();
        for ((len, lo), entries) in staged {
            let (lo, hi) = span(lo, len);
            nodes.insert(
                (lo, len),
                Node {
                    lo,
                    hi,
                    own: Some(PortMap::build(entries)),
                    cut: false,
                },
            );
        }
        for &(lo, len) in cuts {
            let (lo, hi) = span(lo, len);
            nodes
                .entry((lo, len))
                .or_insert(Node {
                    lo,
                    hi,
                    own: None,
                    cut: true,
                })
                .cut = true;
        }

        let mut flat = Flat::default();
        let none = pool.push(&PortMap::empty(), NONE);
        // The open prefixes, outermost first.
        let mut stack: Vec<Open> = Vec::new();
        // The next address not yet given an interval; None past the end.
        let mut cur: Option<u128> = Some(0);
        let emit = |flat: &mut Flat<K>, start: u128, cell: Cell| {
            if flat.slots.last() != Some(&cell) {
                flat.starts.push(K::from_wide(start));
                flat.slots.push(cell);
            }
        };
        let close = |flat: &mut Flat<K>, stack: &mut Vec<Open>, cur: &mut Option<u128>| {
            let (hi, _, cell, _) = stack.pop().expect("an open prefix");
            if let Some(c) = *cur
                && c <= hi
            {
                emit(flat, c, cell);
                *cur = (hi < top).then(|| hi + 1);
            }
        };
        for node in nodes.into_values() {
            while stack.last().is_some_and(|(hi, ..)| *hi < node.lo) {
                close(&mut flat, &mut stack, &mut cur);
            }
            if let Some(c) = cur
                && c < node.lo
            {
                emit(
                    &mut flat,
                    c,
                    stack.last().map_or(none, |(_, _, cell, _)| *cell),
                );
                cur = Some(node.lo);
            }
            let own = node.own.unwrap_or_else(PortMap::empty);
            let (map, parent) = match stack.last() {
                Some((_, pmap, pcell, pid)) if !node.cut => {
                    if pcell.parent == NONE && pmap.starts.len() <= MERGE_LIMIT {
                        (PortMap::overlay(&own, pmap), NONE)
                    } else {
                        (own, *pid)
                    }
                }
                _ => (own, NONE),
            };
            let cell = pool.push(&map, parent);
            let id = u32::try_from(pool.cells.len()).expect("fewer than 2^32 prefixes");
            pool.cells.push(cell);
            stack.push((node.hi, map, cell, id));
        }
        while !stack.is_empty() {
            close(&mut flat, &mut stack, &mut cur);
        }
        if let Some(c) = cur {
            emit(&mut flat, c, none);
        }
        flat.starts.shrink_to_fit();
        flat.slots.shrink_to_fit();
        flat.index = flat.starts.iter().step_by(BLOCK).copied().collect();
        flat
    }
}

impl Table {
    /// Whether the table holds no rule.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// The best rule for a normalised address and port.
    #[inline]
    pub(crate) fn find_ip(&self, ip: IpAddr, port: u16) -> Option<RuleIndex> {
        match ip {
            IpAddr::V4(a) => self.v4.find(&self.ports, a.to_bits(), port),
            IpAddr::V6(a) => self.v6.find(&self.ports, a.to_bits(), port),
        }
    }

    /// The best rule for a normalised host name (lowercase, no trailing dot)
    /// and port: exact, then the longest suffix, then `any`.
    pub(crate) fn find_name(&self, name: &str, port: u16) -> Option<RuleIndex> {
        if !self.exact.is_empty()
            && let Some(&slice) = self.exact.get(name)
            && let Some(r) = self.ports.find(slice, port)
        {
            return Some(r);
        }
        if !self.suffix.is_empty() {
            let mut rest = name;
            while let Some((_, tail)) = rest.split_once('.') {
                if let Some(&cell) = self.suffix.get(tail)
                    && let Some(r) = self.ports.find(cell, port)
                {
                    return Some(r);
                }
                rest = tail;
            }
        }
        self.any_name
    }
}

/// `(lo, hi, rule)` port entries of one prefix or name.
type PortEntries = Vec<(u16, u16, RuleIndex)>;

/// `(prefix length, network bits) -> entries`, before flattening.
type Staged = HashMap<(u8, u128), PortEntries>;

/// One table's rules gathered by prefix and name, before flattening.
#[derive(Default)]
struct Staging {
    v4: Staged,
    v6: Staged,
    exact: HashMap<String, PortEntries>,
    suffix: HashMap<String, PortEntries>,
    any_name: Option<RuleIndex>,
    count: usize,
}

/// Special prefixes of IPv4: only rules at least this long match there.
const V4_CUTS: [(u128, u8); 2] = [(0, 32), (0xe000_0000, 4)];
/// Special prefixes of IPv6.
const V6_CUTS: [(u128, u8); 2] = [(0, 128), (0xff << 120, 8)];

impl Staging {
    fn add(&mut self, rule: &Rule, index: RuleIndex) {
        self.count += 1;
        let entry = (rule.ports.lo(), rule.ports.hi(), index);
        match &rule.target {
            Target::Ip(net) => self.add_net(*net, entry),
            Target::Set(set) => {
                for net in set.nets() {
                    self.add_net(*net, entry);
                }
            }
            Target::Any => {
                self.v4.entry((0, 0)).or_default().push(entry);
                self.v6.entry((0, 0)).or_default().push(entry);
                if rule.ports.is_any() {
                    self.any_name.get_or_insert(index);
                }
            }
            Target::Name(n) => self.exact.entry(n.clone()).or_default().push(entry),
            Target::Suffix(s) => self.suffix.entry(s.clone()).or_default().push(entry),
        }
    }

    fn add_net(&mut self, net: crate::IpNet, entry: (u16, u16, RuleIndex)) {
        match net.addr() {
            IpAddr::V4(a) => self
                .v4
                .entry((net.prefix(), a.to_bits().into()))
                .or_default()
                .push(entry),
            IpAddr::V6(a) => self
                .v6
                .entry((net.prefix(), a.to_bits()))
                .or_default()
                .push(entry),
        }
    }

    fn finish(self) -> Table {
        let mut ports = Pool::default();
        let v4 = Flat::build(self.v4, &V4_CUTS, &mut ports);
        let v6 = Flat::build(self.v6, &V6_CUTS, &mut ports);
        let mut names = |staged: HashMap<String, PortEntries>| -> NameMap {
            staged
                .into_iter()
                .map(|(name, entries)| (name.into(), ports.push(&PortMap::build(entries), NONE)))
                .collect()
        };
        let exact = names(self.exact);
        let suffix = names(self.suffix);
        ports.starts.shrink_to_fit();
        ports.rules.shrink_to_fit();
        ports.cells.shrink_to_fit();
        Table {
            v4,
            v6,
            exact,
            suffix,
            any_name: self.any_name,
            ports,
            empty: self.count == 0,
        }
    }
}

impl Compiled {
    /// Compiles `rules`; a rule's index is its position in the slice.
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

    /// The table of `use_` for `verdict`.
    #[inline]
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

    #[test]
    fn overlay_falls_back_to_the_parent_where_the_own_map_has_no_rule() {
        let own = PortMap::build(vec![(80, 80, 5)]);
        let parent = PortMap::build(vec![(0, 65535, 1)]);
        let map = PortMap::overlay(&own, &parent);
        assert_eq!(map.find(79), Some(1));
        assert_eq!(map.find(80), Some(5));
        assert_eq!(map.find(81), Some(1));
    }
}
