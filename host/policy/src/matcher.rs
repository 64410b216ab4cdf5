//! Rules compiled into lookup tables, so a decision costs a few array probes
//! whatever the number of rules.
//!
//! Per use there is one table. For IPv4 and IPv6 apart, the prefixes of
//! every rule are flattened into a sorted array of disjoint address
//! intervals ([`Flat`]), deny and allow merged ([`Both`]): each interval
//! holds a deny cell and an allow cell, each a port map that already says,
//! for every port, which rule the longest matching prefix gives (a longer
//! prefix that does not cover the port falls back to a shorter one).
//!
//! Layout, chosen for cache misses at 100,000 rules:
//!
//! - Interval starts are searched by head ([`Key`]): all of an IPv4
//!   address, the top 64 bits of an IPv6 one. A sampled index of heads
//!   small enough to stay in cache, then one block of heads (two adjacent
//!   cache lines: the index is half what one line would make), then the
//!   interval's slot. IPv6 starts sharing a head (prefixes past /64) keep
//!   their low 64 bits beside their cells, and the run of them under a head
//!   is bounded from the head block already read. IPv6's index is too
//!   large to stay in cache, so a [`Radix`] table over the bits below the
//!   prefix most heads share first narrows the search to a few heads;
//!   keys outside that prefix, or in a crowded bucket, take the index.
//! - A port map of one rule on one range (most rules) is held inline in its
//!   16-byte [`Cell`]: a check reads no segment. Larger maps are pooled
//!   ([`Pool`]); a small parent map is copied into its children, a large
//!   one linked (`parent`), so memory stays linear. A pooled map's cell
//!   carries a bitmap of the port buckets its rules touch, so a port in
//!   none of them skips its segments: most checks then read no deny map.
//! - Names live in an open-addressing table per kind (exact, suffix) of
//!   8-byte slots, a hash tag beside an entry index ([`LabelMap`]): a probe
//!   decides most misses in that one slot, and only a tag match reads the
//!   stored name to compare it in full. One right-to-left pass over a
//!   queried name, eight bytes a step, hashes every suffix
//!   ([`suffix_hashes`]) and probes each as it comes, keeping the most
//!   specific hit per verdict; a mask of stored label counts skips
//!   suffixes no rule can match. `any` is prefix length 0 in both
//!   families, and the name table's catch-all.
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
use std::net::IpAddr;

use crate::{Rule, Target, Use, Verdict};

/// The index of a rule in the policy's rule list.
pub(crate) type RuleIndex = u32;

/// The deciding rule and its verdict. The verdict comes from the side
/// (deny or allow) the rule was found on, so a decision need not read the
/// rule itself: at 100,000 rules that read is one more cache miss.
pub(crate) type Found = (RuleIndex, Verdict);

/// Sentinel for "no rule" in a port map.
const NONE: RuleIndex = RuleIndex::MAX;

/// Every use's tables.
#[derive(Default)]
pub(crate) struct Compiled {
    per_use: [UseTable; Use::ALL.len()],
}

/// The rules of one use, compiled: addresses with deny and allow side by
/// side (one search answers both), names per verdict.
#[derive(Default)]
struct UseTable {
    /// Port segments of every port map of this use, pooled.
    pool: Pool,
    v4: Both<u32>,
    v6: Both<u128>,
    /// Deny and allow names side by side.
    names: Names,
}

/// Bytes a vector holds on the heap.
fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

impl UseTable {
    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.pool.segments)
            + vec_bytes(&self.pool.cells)
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
            + self.names.exact.heap_bytes()
            + self.names.suffix.heap_bytes()
    }
}

/// The host-name rules of one use: each stored name holds its deny cell
/// and its allow cell, so one probe serves both verdicts.
#[derive(Default)]
struct Names {
    exact: LabelMap,
    suffix: LabelMap,
    /// `any` of deny, then of allow.
    any: [Option<RuleIndex>; 2],
}

/// Names keyed by their reversed-label hash ([`suffix_hashes`]), so one pass
/// over a queried name yields the key of every suffix of it.
///
/// One open-addressing table, at most half full, of 8-byte slots: the top
/// half of a name's hash beside its entry's index. A probe reads one slot
/// (one cache line) and, nearly always, decides a miss there without
/// touching a stored name; only a matching hash leads to the entry and its
/// text, compared in full.
#[derive(Default)]
struct LabelMap {
    /// Bit `n` (n < 64) is set when a stored name has `n` labels (bit 63
    /// stands for 63 or more), so a lookup probes only suffixes that can hit.
    label_counts: u64,
    /// `hash >> 32 << 32 | entry index + 1`; 0 is empty. A power of two long.
    slots: Vec<u64>,
    entries: Vec<NameEntry>,
    /// Every stored name, back to back.
    text: String,
}

/// A stored name: where its text is in [`LabelMap::text`], and its deny
/// and allow port maps.
struct NameEntry {
    start: u32,
    len: u32,
    cells: [Cell; 2],
}

/// Where a probe for a name ended.
enum Probe {
    Found(usize),
    Empty(usize),
}

impl LabelMap {
    /// Sets the cell of `name` for verdict `slot` (0 deny, 1 allow); the
    /// other verdict's cell stays `none` until set.
    fn insert(&mut self, name: &str, slot: usize, cell: Cell, none: Cell) {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = mix(label_hash_of(name));
        match self.probe(hash, name) {
            Probe::Found(entry) => self.entries[entry].cells[slot] = cell,
            Probe::Empty(at) => {
                let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 names");
                let start = u32::try_from(self.text.len()).expect("under 4 GiB of names");
                self.text.push_str(name);
                let mut cells = [none, none];
                cells[slot] = cell;
                self.entries.push(NameEntry {
                    start,
                    len: name.len() as u32,
                    cells,
                });
                self.slots[at] = hash >> 32 << 32 | u64::from(index + 1);
                self.label_counts |= 1 << (name.split('.').count().min(63));
            }
        }
    }

    /// Doubles the table (at least 16 slots) and places every entry again.
    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).max(16);
        self.slots = vec![0; slots];
        for index in 0..self.entries.len() {
            let hash = mix(label_hash_of(self.name(index)));
            let mut at = hash as usize & (slots - 1);
            while self.slots[at] != 0 {
                at = (at + 1) & (slots - 1);
            }
            self.slots[at] = hash >> 32 << 32 | (index as u64 + 1);
        }
    }

    #[inline]
    fn name(&self, entry: usize) -> &str {
        let NameEntry { start, len, .. } = self.entries[entry];
        &self.text[start as usize..(start + len) as usize]
    }

    /// Linear probing from the slot the low bits of `hash` (mixed) pick.
    #[inline]
    fn probe(&self, hash: u64, name: &str) -> Probe {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Probe::Empty(at);
            }
            if slot >> 32 == hash >> 32 {
                let entry = (slot as u32 - 1) as usize;
                if self.name(entry) == name {
                    return Probe::Found(entry);
                }
            }
            at = (at + 1) & mask;
        }
    }

    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.slots) + vec_bytes(&self.entries) + self.text.capacity()
    }

    /// Whether a stored name may have `labels` labels.
    #[inline]
    fn has_labels(&self, labels: usize) -> bool {
        self.label_counts & (1 << labels.min(63)) != 0
    }

    /// The cells of `name`, whose [`suffix_hashes`] hash is `hash`.
    #[inline]
    fn get(&self, hash: u64, name: &str) -> Option<[Cell; 2]> {
        if self.slots.is_empty() {
            return None;
        }
        match self.probe(mix(hash), name) {
            Probe::Found(entry) => Some(self.entries[entry].cells),
            Probe::Empty(_) => None,
        }
    }
}

/// One multiply-xorshift step, so the table's slot (low bits) and the
/// stored tag (high bits) both depend on every bit of a name hash, whose
/// last step is a multiply (weak low bits).
#[inline]
fn mix(hash: u64) -> u64 {
    let h = (hash ^ hash >> 32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ h >> 29
}

const SEED: u64 = 0x243f_6a88_85a3_08d3;

/// Hashes the labels of `name` right to left, calling `each(start of the
/// suffix, its hash)` after each label: every suffix's hash in one pass.
#[inline(always)]
fn suffix_hashes(name: &[u8], mut each: impl FnMut(usize, u64)) {
    let mut hash = SEED;
    let mut end = name.len();
    loop {
        let start = last_dot(name, end).map_or(0, |i| i + 1);
        hash = label_hash(hash, name, start, end);
        each(start, hash);
        if start == 0 {
            return;
        }
        end = start - 1;
    }
}

/// Where the last `.` of `name[..end]` is: eight bytes a step, right to
/// left, each word tested for dots at once (a byte loop cost more than
/// the rest of the hashing).
#[inline(always)]
fn last_dot(name: &[u8], end: usize) -> Option<usize> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // The top bit of each byte of `w` that is a dot: exact, no carry
    // crosses a byte (each sum is at most 0xfe).
    let dots = |w: u64| {
        let x = w ^ 0x2e2e_2e2e_2e2e_2e2e;
        !(((x & LOW7) + LOW7) | x) & !LOW7
    };
    let highest = |base: usize, mask: u64| base + (63 - mask.leading_zeros() as usize) / 8;
    let mut end = end;
    while end >= 8 {
        let mask = dots(u64::from_le_bytes(
            name[end - 8..end].try_into().expect("8 bytes"),
        ));
        if mask != 0 {
            return Some(highest(end - 8, mask));
        }
        end -= 8;
    }
    if name.len() >= 8 {
        // The first word, bytes at or past `end` masked off.
        let word = u64::from_le_bytes(name[..8].try_into().expect("8 bytes"));
        let mask = dots(word) & (1u64 << (8 * end)).wrapping_sub(1);
        (mask != 0).then(|| highest(0, mask))
    } else {
        name[..end].iter().rposition(|&b| b == b'.')
    }
}

/// Folds the label `name[start..end]` into a running name hash: one
/// multiply per 8 bytes (FxHash-style), cheap enough to hash every suffix
/// of a name per check.
#[inline(always)]
fn label_hash(hash: u64, name: &[u8], start: usize, end: usize) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let label = &name[start..end];
    let mut h = hash;
    let mut chunks = label.chunks_exact(8);
    for chunk in &mut chunks {
        h = step(h, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let tail = chunks.remainder();
    // The last bytes as a little-endian word, zero above: where eight
    // bytes end at the label's end, one load shifted down, else assembled
    // byte by byte (a variable-length copy would call memmove). The length
    // goes into the top byte, so labels never run together.
    let word = if end >= 8 {
        let last = u64::from_le_bytes(name[end - 8..end].try_into().expect("8 bytes"));
        last.checked_shr(64 - 8 * tail.len() as u32).unwrap_or(0)
    } else {
        tail.iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b))
    };
    step(h, word | (label.len() as u64) << 56)
}

/// The reversed-label hash of a whole name, as [`suffix_hashes`] ends.
fn label_hash_of(name: &str) -> u64 {
    let mut whole = SEED;
    suffix_hashes(name.as_bytes(), |_, hash| whole = hash);
    whole
}

/// One port map in a [`Pool`], and where to look when it has no rule for
/// a port: the map of the next shorter prefix (`parent`), or [`NONE`].
///
/// A map with one rule on one port range (most rules name one port or
/// range, or none) is held inline, so a check reads no segment: `len ==
/// 0`, `offset` is the rule (or [`NONE`]) and `ports` its range, `lo | hi
/// << 16`. A pooled map's `ports` is a bitmap of the [`PORT_BUCKETS`]
/// port ranges its rules touch: a port in an untouched one has no rule
/// there, and the check reads no segment (most often on a deny map, a
/// few ports of a network).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    offset: u32,
    len: u32,
    parent: u32,
    ports: u32,
}

/// A pooled map's bitmap splits the ports into 32 buckets of 2,048.
const PORT_BUCKETS: u32 = 32;

/// The bit of `port`'s bucket in a pooled map's bitmap.
#[inline]
fn port_bucket(port: u16) -> u32 {
    1 << (u32::from(port) >> (16 - PORT_BUCKETS.trailing_zeros()))
}

impl Cell {
    /// The rule of an inline cell at `port`, or [`NONE`].
    #[inline]
    fn inline_rule(self, port: u16) -> RuleIndex {
        let (lo, hi) = (self.ports as u16, (self.ports >> 16) as u16);
        if lo <= port && port <= hi {
            self.offset
        } else {
            NONE
        }
    }
}

/// Port maps stored back to back: for each, sorted segment starts (the
/// first is 0) and the rule of each segment (or [`NONE`]); and every
/// prefix's cell, for the `parent` links.
#[derive(Default)]
struct Pool {
    /// `(segment start, rule)`, interleaved so a small map is one cache line.
    segments: Vec<(u16, RuleIndex)>,
    cells: Vec<Cell>,
}

impl Pool {
    fn push(&mut self, map: &PortMap, parent: u32) -> Cell {
        let mut ruled = map.rules.iter().enumerate().filter(|&(_, &r)| r != NONE);
        match (ruled.next(), ruled.next()) {
            (None, _) => {
                return Cell {
                    offset: NONE,
                    len: 0,
                    parent,
                    ports: 0,
                };
            }
            (Some((i, &rule)), None) => {
                let hi = map.starts.get(i + 1).map_or(u16::MAX, |&next| next - 1);
                return Cell {
                    offset: rule,
                    len: 0,
                    parent,
                    ports: u32::from(map.starts[i]) | u32::from(hi) << 16,
                };
            }
            _ => {}
        }
        let offset = u32::try_from(self.segments.len()).expect("fewer than 2^32 port segments");
        self.segments
            .extend(map.starts.iter().copied().zip(map.rules.iter().copied()));
        let mut buckets = 0;
        for (i, (&start, &rule)) in map.starts.iter().zip(&map.rules).enumerate() {
            if rule != NONE {
                let end = map.starts.get(i + 1).map_or(u16::MAX, |&next| next - 1);
                let (first, last) = (port_bucket(start), port_bucket(end));
                // Every bit from `first` to `last`.
                buckets |= (last - first) | last;
            }
        }
        Cell {
            offset,
            len: map.starts.len() as u32,
            parent,
            ports: buckets,
        }
    }

    /// The segments of a pooled cell (`len > 0`).
    #[inline]
    fn segments(&self, cell: Cell) -> &[(u16, RuleIndex)] {
        let (lo, len) = (cell.offset as usize, cell.len as usize);
        &self.segments[lo..lo + len]
    }

    #[inline]
    fn find(&self, mut cell: Cell, port: u16) -> Option<RuleIndex> {
        loop {
            let rule = if cell.len == 0 {
                cell.inline_rule(port)
            } else if cell.ports & port_bucket(port) == 0 {
                NONE
            } else {
                let segments = self.segments(cell);
                let i = segments.partition_point(|&(s, _)| s <= port) - 1;
                segments[i].1
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

    /// The rule of the lowest port `cell` (with its parents) has a rule
    /// for. Segments never repeat a rule, so a map's first rule is in its
    /// first two segments; along the chain the lowest start wins, the most
    /// specific map on a tie (at that port it overrides its parents).
    fn lowest(&self, mut cell: Cell) -> Option<RuleIndex> {
        let mut best: Option<(u16, RuleIndex)> = None;
        loop {
            let first = if cell.len == 0 {
                (cell.offset != NONE).then_some((cell.ports as u16, cell.offset))
            } else {
                self.segments(cell)[..2]
                    .iter()
                    .copied()
                    .find(|&(_, rule)| rule != NONE)
            };
            if let Some((start, rule)) = first
                && best.is_none_or(|(b, _)| start < b)
            {
                best = Some((start, rule));
            }
            if cell.parent == NONE {
                return best.map(|(_, rule)| rule);
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
///
/// Interval starts are searched by their head: all of an IPv4 address,
/// the top 64 bits of an IPv6 one, so a search compares machine words and
/// a block of [`Key::FAN`] heads is two adjacent cache lines. IPv6 starts
/// that share a head (prefixes longer than /64) are then told apart by
/// their tail, kept beside each interval's cells.
trait Key: Copy + Ord + Default {
    /// Bits in an address.
    const WIDTH: u32;
    /// Heads per search block: two cache lines of them. One line per
    /// block measured slower at 100,000 rules: the index, twice as large,
    /// no longer stays in cache.
    const FAN: usize;
    /// Whether a start has bits past its head.
    const HAS_TAIL: bool;
    /// Whether a [`Radix`] table starts the search: IPv6's index is too
    /// large to stay in cache, IPv4's is not.
    const RADIX: bool;
    type Head: Copy + Ord + Default + Into<u64>;
    /// The bits past the head: `()` for IPv4.
    type Tail: Copy + Ord + Default;
    /// Where a head's run of starts begins: `()` for IPv4, one start a head.
    type Run: Copy + Default;
    /// A tail above every other.
    const TAIL_MAX: Self::Tail;
    fn from_wide(v: u128) -> Self;
    fn head(self) -> Self::Head;
    fn tail(self) -> Self::Tail;
    fn run(first: usize) -> Self::Run;
    fn first(run: Self::Run) -> usize;
}

impl Key for u32 {
    const WIDTH: u32 = 32;
    const FAN: usize = 32;
    const HAS_TAIL: bool = false;
    const RADIX: bool = false;
    type Head = u32;
    type Tail = ();
    type Run = ();
    const TAIL_MAX: () = ();
    fn from_wide(v: u128) -> Self {
        v as u32
    }
    #[inline]
    fn head(self) -> u32 {
        self
    }
    #[inline]
    fn tail(self) {}
    #[inline]
    fn run(_: usize) {}
    #[inline]
    fn first((): ()) -> usize {
        0
    }
}

impl Key for u128 {
    const WIDTH: u32 = 128;
    const FAN: usize = 8;
    const HAS_TAIL: bool = true;
    const RADIX: bool = true;
    type Head = u64;
    type Tail = u64;
    type Run = u32;
    const TAIL_MAX: u64 = u64::MAX;
    fn from_wide(v: u128) -> Self {
        v
    }
    #[inline]
    fn head(self) -> u64 {
        (self >> 64) as u64
    }
    #[inline]
    fn tail(self) -> u64 {
        self as u64
    }
    #[inline]
    fn run(first: usize) -> u32 {
        u32::try_from(first).expect("fewer than 2^32 intervals")
    }
    #[inline]
    fn first(run: u32) -> usize {
        run as usize
    }
}

/// A parent port map this small is copied into its children, so a check
/// finds its rule in one map; a larger one is linked to instead, which
/// keeps memory linear when many prefixes nest under one busy network.
const MERGE_LIMIT: usize = 64;

/// One family's prefixes of one verdict, flattened: `starts[i]..starts[i + 1]`
/// is an interval whose addresses all match the same rules, `slots[i]` its
/// ports. [`Both`] merges the deny and allow ones.
struct Flat<K> {
    starts: Vec<K>,
    slots: Vec<Cell>,
}

impl<K> Default for Flat<K> {
    fn default() -> Self {
        Flat {
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
                    if pmap.starts.len() <= MERGE_LIMIT {
                        // Copy the parent's map and share its link: a chain
                        // only ever passes through large maps.
                        (PortMap::overlay(&own, pmap), pcell.parent)
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
        flat
    }
}

/// Deny and allow prefixes of one family merged into one interval array:
/// `slots[i]` holds the deny cell and the allow cell of interval `i`.
///
/// A search reads `index` (every [`Key::FAN`]th distinct head, small
/// enough to stay in cache), then one block of `heads` (two cache lines),
/// then the slot; for IPv6 the few slots under that head, whose tails pick
/// the interval. For IPv6 `radix` mostly stands in for the index and the
/// block: one table entry, then the few heads of its bucket.
struct Both<K: Key> {
    /// For IPv6 ([`Key::RADIX`]), narrows most searches to a few heads.
    radix: Radix,
    index: Vec<K::Head>,
    /// The distinct heads of the interval starts, ascending, and where
    /// each one's run of slots begins (it ends where the next one's does).
    heads: Vec<(K::Head, K::Run)>,
    slots: Vec<Slot<K>>,
}

/// One interval: its start's tail, its deny cell and its allow cell.
struct Slot<K: Key> {
    tail: K::Tail,
    cells: [Cell; 2],
}

impl<K: Key> Default for Both<K> {
    fn default() -> Self {
        Both {
            radix: Radix::default(),
            index: Vec::new(),
            heads: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl<K: Key> Both<K> {
    /// Merges the deny and allow interval arrays (an empty one matches
    /// nothing, `none`).
    fn merge(deny: Flat<K>, allow: Flat<K>, none: Cell) -> Both<K> {
        if deny.starts.is_empty() && allow.starts.is_empty() {
            return Both::default();
        }
        let whole = || Flat {
            starts: vec![K::default()],
            slots: vec![none],
        };
        let d = if deny.starts.is_empty() {
            whole()
        } else {
            deny
        };
        let a = if allow.starts.is_empty() {
            whole()
        } else {
            allow
        };
        let mut starts = Vec::new();
        let mut slots = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            let start = d.starts[i].max(a.starts[j]);
            let slot = [d.slots[i], a.slots[j]];
            if slots.last() != Some(&slot) {
                starts.push(start);
                slots.push(slot);
            }
            match (d.starts.get(i + 1), a.starts.get(j + 1)) {
                (None, None) => break,
                (Some(_), None) => i += 1,
                (None, Some(_)) => j += 1,
                (Some(x), Some(y)) => {
                    if x <= y {
                        i += 1;
                    }
                    if y <= x {
                        j += 1;
                    }
                }
            }
        }
        let mut both = Both::default();
        for (i, (start, cells)) in starts.iter().zip(slots).enumerate() {
            if both.heads.last().map(|&(h, _)| h) != Some(start.head()) {
                both.heads.push((start.head(), K::run(i)));
            }
            both.slots.push(Slot {
                tail: start.tail(),
                cells,
            });
        }
        both.index = both.heads.iter().step_by(K::FAN).map(|&(h, _)| h).collect();
        if K::RADIX {
            let heads: Vec<u64> = both
                .heads
                .iter()
                .map(|&(h, _)| Into::<u64>::into(h))
                .collect();
            both.radix = Radix::build(&heads);
        }
        both.heads.shrink_to_fit();
        both.slots.shrink_to_fit();
        both
    }

    fn heap_bytes(&self) -> usize {
        vec_bytes(&self.radix.table)
            + vec_bytes(&self.index)
            + vec_bytes(&self.heads)
            + vec_bytes(&self.slots)
    }

    /// The deny and allow cells of the interval holding `bits`.
    #[inline]
    fn slot(&self, bits: K) -> Option<[Cell; 2]> {
        if self.heads.is_empty() {
            return None;
        }
        // The first head is 0: every search finds a head at or below.
        let head = bits.head();
        // The heads to search, the first of them at or below `head`: those
        // the radix table gives, else one block the index picks.
        let (lo, hi) = match K::RADIX.then(|| self.radix.range(head.into())).flatten() {
            Some(range) => range,
            None => {
                let j = self.index.partition_point(|&h| h <= head) - 1;
                let lo = j * K::FAN;
                (lo, (lo + K::FAN).min(self.heads.len()))
            }
        };
        let h = lo + self.heads[lo..hi].partition_point(|&(x, _)| x <= head) - 1;
        let i = if K::HAS_TAIL {
            let first = K::first(self.heads[h].1);
            let end = self
                .heads
                .get(h + 1)
                .map_or(self.slots.len(), |&(_, run)| K::first(run));
            // Under a lower head every start is below the key; under its
            // own head, those with a tail at or below. None (the key is
            // below the run) leaves the last start of the run before; the
            // first run starts at tail 0 and never comes out empty.
            let tail = if self.heads[h].0 < head {
                K::TAIL_MAX
            } else {
                bits.tail()
            };
            first + self.slots[first..end].partition_point(|s| s.tail <= tail) - 1
        } else {
            h
        };
        Some(self.slots[i].cells)
    }

    #[inline]
    fn find(&self, pool: &Pool, bits: K, port: u16) -> Option<Found> {
        let [deny, allow] = self.slot(bits)?;
        match pool.find(deny, port) {
            Some(rule) => Some((rule, Verdict::Deny)),
            None => pool.find(allow, port).map(|rule| (rule, Verdict::Allow)),
        }
    }

    /// The allow rule deciding the lowest port any allow rule covers `bits`
    /// on, deny rules aside.
    fn lowest_allow(&self, pool: &Pool, bits: K) -> Option<RuleIndex> {
        let [_, allow] = self.slot(bits)?;
        pool.lowest(allow)
    }
}

/// A radix table over 64-bit heads: the bits just below the prefix most
/// heads share (that of the heads an eighth and seven eighths of the way
/// along, so a few outliers such as the head 0 do not empty it) pick a
/// bucket, which gives the heads under it. A search then reads one table
/// entry and a few heads, where the index costs a dozen dependent probes.
/// Keys outside the prefix, or in a bucket of more than [`Radix::WIDE`]
/// heads, take the index.
#[derive(Default)]
struct Radix {
    /// The shared prefix, right-aligned (0 when `prefix_len` is 0).
    prefix: u64,
    prefix_len: u32,
    /// Bits indexed past the prefix; the table is empty when too few
    /// heads make it worth it.
    bits: u32,
    /// `table[b]`: how many heads lie below bucket `b`; `2^bits + 1` long.
    table: Vec<u32>,
}

impl Radix {
    /// Buckets hold about this many heads on average.
    const LOAD: usize = 2;
    /// At most `2^MAX_BITS` buckets.
    const MAX_BITS: u32 = 16;
    /// A bucket of more heads than this is searched through the index.
    const WIDE: usize = 16;

    /// The table over `heads` (sorted, distinct).
    fn build(heads: &[u64]) -> Radix {
        let buckets = heads.len() / Self::LOAD;
        if buckets < 2 {
            return Radix::default();
        }
        let bits = buckets.ilog2().min(Self::MAX_BITS);
        let (a, b) = (heads[heads.len() / 8], heads[heads.len() * 7 / 8]);
        let prefix_len = (a ^ b).leading_zeros().min(64 - bits);
        let prefix = a.checked_shr(64 - prefix_len).unwrap_or(0);
        // Where bucket `b` starts; `2^bits` is the end of the prefix.
        let base = u128::from(prefix) << (64 - prefix_len);
        let start = |b: u128| base + (b << (64 - prefix_len - bits));
        let table = (0..=1u128 << bits)
            .map(|b| heads.partition_point(|&h| u128::from(h) < start(b)) as u32)
            .collect();
        Radix {
            prefix,
            prefix_len,
            bits,
            table,
        }
    }

    /// The heads `lo..hi` to search for the last one at or below `head`,
    /// `heads[lo]` among those at or below; None to search the index.
    #[inline]
    fn range(&self, head: u64) -> Option<(usize, usize)> {
        if self.table.is_empty()
            || head.checked_shr(64 - self.prefix_len).unwrap_or(0) != self.prefix
        {
            return None;
        }
        let b = (head << self.prefix_len >> (64 - self.bits)) as usize;
        // The last head below the bucket is at or below `head`; where none
        // is, the bucket starts at 0, and so does the first head.
        let lo = (self.table[b] as usize).saturating_sub(1);
        let hi = self.table[b + 1] as usize;
        (hi - lo <= Self::WIDE).then_some((lo, hi))
    }
}

impl Names {
    /// Deny first, then allow; each exact, then the longest suffix, then
    /// `any`. The suffixes are probed as one pass hashes them, shortest
    /// first, the whole name (exact) last: a later hit overrides an
    /// earlier one, so each verdict ends with its most specific rule for
    /// the port, and nothing is stored between hashing and probing.
    #[inline]
    fn find(&self, pool: &Pool, name: &str, port: u16) -> Option<Found> {
        let mut best = [None; 2];
        let mut labels = 0;
        suffix_hashes(name.as_bytes(), |start, hash| {
            labels += 1;
            // A suffix rule covers names below it, never itself.
            let map = if start == 0 {
                &self.exact
            } else {
                &self.suffix
            };
            if !map.has_labels(labels) {
                return;
            }
            if let Some(cells) = map.get(hash, &name[start..]) {
                for (best, cell) in best.iter_mut().zip(cells) {
                    if let Some(rule) = pool.find(cell, port) {
                        *best = Some(rule);
                    }
                }
            }
        });
        match best[0].or(self.any[0]) {
            Some(rule) => Some((rule, Verdict::Deny)),
            None => best[1].or(self.any[1]).map(|rule| (rule, Verdict::Allow)),
        }
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

    /// Flattens the prefixes into `pool`; adds the names to `names` as
    /// verdict `slot`.
    fn finish(
        self,
        pool: &mut Pool,
        names: &mut Names,
        slot: usize,
        none: Cell,
    ) -> (Flat<u32>, Flat<u128>) {
        let v4 = Flat::build(self.v4, &V4_CUTS, pool);
        let v6 = Flat::build(self.v6, &V6_CUTS, pool);
        names.any[slot] = self.any_name;
        for (staged, map) in [
            (self.exact, &mut names.exact),
            (self.suffix, &mut names.suffix),
        ] {
            for (name, entries) in staged {
                let cell = pool.push(&PortMap::build(entries), NONE);
                map.insert(&name, slot, cell, none);
            }
        }
        (v4, v6)
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
        for (table, [deny, allow]) in compiled.per_use.iter_mut().zip(staging) {
            let mut pool = Pool::default();
            let none = pool.push(&PortMap::empty(), NONE);
            let mut names = Names::default();
            let (d4, d6) = deny.finish(&mut pool, &mut names, 0, none);
            let (a4, a6) = allow.finish(&mut pool, &mut names, 1, none);
            pool.segments.shrink_to_fit();
            pool.cells.shrink_to_fit();
            *table = UseTable {
                v4: Both::merge(d4, a4, none),
                v6: Both::merge(d6, a6, none),
                names,
                pool,
            };
        }
        compiled
    }

    /// Heap bytes of every table (not the rules they index).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.per_use.iter().map(UseTable::heap_bytes).sum()
    }

    /// The deciding rule for `use_` on a normalised address and port: the
    /// best deny rule, else the best allow rule.
    #[inline]
    pub(crate) fn find_ip(&self, use_: Use, ip: IpAddr, port: u16) -> Option<Found> {
        let table = &self.per_use[use_.index()];
        match ip {
            IpAddr::V4(a) => table.v4.find(&table.pool, a.to_bits(), port),
            IpAddr::V6(a) => table.v6.find(&table.pool, a.to_bits(), port),
        }
    }

    /// The allow rule of `use_` deciding the lowest port on which allow
    /// rules cover a normalised address, deny rules aside.
    pub(crate) fn lowest_allow_ip(&self, use_: Use, ip: IpAddr) -> Option<RuleIndex> {
        let table = &self.per_use[use_.index()];
        match ip {
            IpAddr::V4(a) => table.v4.lowest_allow(&table.pool, a.to_bits()),
            IpAddr::V6(a) => table.v6.lowest_allow(&table.pool, a.to_bits()),
        }
    }

    /// The deciding rule for `use_` on a normalised host name and port:
    /// deny first, each verdict exact, then the longest suffix, then `any`.
    #[inline]
    pub(crate) fn find_name(&self, use_: Use, name: &str, port: u16) -> Option<Found> {
        let table = &self.per_use[use_.index()];
        table.names.find(&table.pool, name, port)
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

    /// `count` sorted distinct starts from 0, drawn by `next`, as a
    /// [`Both`] whose allow cell of interval `i` has rule `i`.
    fn intervals<K: Key>(count: usize, mut next: impl FnMut() -> K) -> (Vec<K>, Both<K>) {
        let mut starts = vec![K::default()];
        starts.extend((1..count).map(|_| next()));
        starts.sort_unstable();
        starts.dedup();
        let cell = |rule| Cell {
            offset: rule,
            len: 0,
            parent: NONE,
            ports: 0xffff_0000,
        };
        let flat = Flat {
            slots: (0..starts.len() as u32).map(cell).collect(),
            starts: starts.clone(),
        };
        (starts, Both::merge(Flat::default(), flat, cell(NONE)))
    }

    /// The interval holding `key`, by linear scan.
    fn linear<K: Key>(starts: &[K], key: K) -> u32 {
        (starts.iter().rposition(|&s| s <= key).expect("starts at 0")) as u32
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn search_tree_finds_the_interval_of_every_key_like_a_linear_scan() {
        let mut rng = 0x1234_5678_9abc_def0;
        for count in [1, 2, 15, 16, 17, 255, 256, 257, 5000, 20_000] {
            let (starts, both) = intervals(count, || xorshift(&mut rng) as u32);
            let mut keys: Vec<u32> = starts
                .iter()
                .flat_map(|&s| [s, s.wrapping_sub(1), s.saturating_add(1)])
                .collect();
            keys.extend([0, u32::MAX]);
            keys.extend((0..1000).map(|_| xorshift(&mut rng) as u32));
            for key in keys {
                let found = both.slot(key).expect("intervals")[1].offset;
                assert_eq!(found, linear(&starts, key), "{count} starts, key {key:#x}");
            }
        }
    }

    #[test]
    fn search_tree_tells_ipv6_starts_with_one_head_apart_by_their_tails() {
        let mut rng = 0x0fed_cba9_8765_4321;
        for count in [3, 40, 1000, 20_000] {
            // Few heads, so long runs of starts share one.
            let (starts, both) = intervals(count, || {
                let head = xorshift(&mut rng) % 7;
                u128::from(head) << 64 | u128::from(xorshift(&mut rng))
            });
            let mut keys: Vec<u128> = starts
                .iter()
                .flat_map(|&s| [s, s.wrapping_sub(1), s.saturating_add(1)])
                .collect();
            keys.extend([0, u128::MAX, 7 << 64]);
            for key in keys {
                let found = both.slot(key).expect("intervals")[1].offset;
                assert_eq!(found, linear(&starts, key), "{count} starts, key {key:#x}");
            }
        }
    }

    #[test]
    fn radix_table_finds_the_interval_of_every_key_like_a_linear_scan() {
        let mut rng = 0x5a5a_1234_abcd_9876;
        // Heads under one /32 with a few outliers, under a prefix ending
        // in a 1 bit, clustered (wide buckets), sharing nothing, and one
        // repeated head (the longest prefix there is room for).
        let shapes: [fn(u64) -> u64; 5] = [
            |r| 0x2001_0db8 << 32 | r >> 32,
            |r| 0xc000_0000_0000_0000 | r >> 2,
            |r| 0x2001_0db8_0000_0000 | (r & 0xff) << 16 | r >> 58,
            |r| r,
            |_| 0x2001_0db8_0000_0001,
        ];
        for (shape, draw) in shapes.iter().enumerate() {
            for count in [10, 100, 5000, 50_000] {
                let (starts, both) = intervals(count, || {
                    let r = xorshift(&mut rng);
                    let head = if r.is_multiple_of(50) { r } else { draw(r) };
                    u128::from(head) << 64 | u128::from(xorshift(&mut rng) % 3)
                });
                // Past a few heads, the table is built and searched.
                assert_eq!(both.radix.table.is_empty(), both.heads.len() < 4);
                let mut keys: Vec<u128> = starts
                    .iter()
                    .flat_map(|&s| [s, s.wrapping_sub(1), s.saturating_add(1)])
                    .collect();
                keys.extend([0, u128::MAX]);
                keys.extend((0..2000).map(|_| {
                    let r = xorshift(&mut rng);
                    u128::from(draw(r)) << 64 | u128::from(r % 4)
                }));
                for key in keys {
                    let found = both.slot(key).expect("intervals")[1].offset;
                    assert_eq!(
                        found,
                        linear(&starts, key),
                        "shape {shape}, {count} starts, key {key:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn last_dot_finds_what_a_byte_scan_finds() {
        let mut rng = 0x5555_aaaa_1234_4321;
        for len in 0..40 {
            for _ in 0..50 {
                // Dots, bytes next to a dot's code and high bytes, which a
                // word-wide test must not take for dots.
                let name: Vec<u8> = (0..len)
                    .map(|_| b".-/a\xae\xff"[xorshift(&mut rng) as usize % 6])
                    .collect();
                for end in 0..=len {
                    let want = name[..end].iter().rposition(|&b| b == b'.');
                    assert_eq!(last_dot(&name, end), want, "{name:?} up to {end}");
                }
            }
        }
    }

    #[test]
    fn pooled_map_with_its_bucket_bitmap_finds_what_the_map_finds() {
        let mut rng = 0x0bad_cafe_dead_beef;
        let mut pool = Pool::default();
        for _ in 0..300 {
            let count = 2 + xorshift(&mut rng) as usize % 6;
            let entries = (0..count)
                .map(|rule| {
                    let lo = xorshift(&mut rng) as u16;
                    let width = [0, 1, 3000, 40_000][xorshift(&mut rng) as usize % 4];
                    (lo, lo.saturating_add(width), rule as RuleIndex)
                })
                .collect();
            let map = PortMap::build(entries);
            let cell = pool.push(&map, NONE);
            let edges = map.starts.iter().flat_map(|&s| [s, s.wrapping_sub(1)]);
            let ports = (0..64).map(|i| i * 1024 + 7).chain([0, u16::MAX]);
            for port in edges.chain(ports) {
                assert_eq!(pool.find(cell, port), map.find(port), "{map:?} at {port}");
            }
        }
    }

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
