//! The policy benchmark: median nanoseconds per decision for 10, 1,000 and
//! 100,000 rules, IPv4, IPv6 and host-name targets, allow and deny paths,
//! with a naive linear matcher beside each figure; then compile time and
//! memory for 100,000 rules.
//!
//! ```sh
//! cargo run --release -p capnet-policy --example bench
//! ```
//!
//! Not a timed test: it prints figures; nothing fails when they are slow.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use capnet_policy::{Policy, Rule, Use, Verdict};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    V4,
    V6,
    Name,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::V4 => "ipv4",
            Kind::V6 => "ipv6",
            Kind::Name => "hostname",
        }
    }
}

/// One query: an address, or a name for a DNS-pinned connect.
#[derive(Clone)]
enum Query {
    Addr(SocketAddr),
    Name(String, u16),
}

/// A policy of `n` rules of `kind` (nine allow for every deny) and queries
/// that land on an allow rule and queries that match nothing (deny path).
fn workload(kind: Kind, n: usize, rng: &mut Rng) -> (Policy, Vec<Query>, Vec<Query>) {
    let mut builder = Policy::builder();
    let mut allow_queries = Vec::new();
    let mut deny_queries = Vec::new();
    for i in 0..n {
        let verdict = if i % 10 == 9 {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        let port = 1024 + rng.below(60_000) as u16;
        let (target, query) = match kind {
            Kind::V4 => {
                // 10.0.0.0/8 space, prefixes /16../32, so rules nest and overlap.
                let len = 16 + rng.below(17) as u32;
                let bits = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
                let net = bits & (u32::MAX << (32 - len));
                let host = net | (rng.next() as u32 & !(u32::MAX << (32 - len)));
                (
                    format!("{}/{len}:{port}", Ipv4Addr::from_bits(net)),
                    Query::Addr(SocketAddr::new(IpAddr::V4(Ipv4Addr::from_bits(host)), port)),
                )
            }
            Kind::V6 => {
                // 2001:db8::/32 space, prefixes /40../128: as for IPv4, 256
                // distinct shortest networks that the longer ones nest under.
                let len = 40 + rng.below(89) as u32;
                let bits = (0x2001_0db8u128 << 96)
                    | (u128::from(rng.next()) << 32)
                    | u128::from(rng.next() as u32);
                let mask = u128::MAX << (128 - len);
                let net = bits & mask;
                let host = net | (u128::from(rng.next()) & !mask);
                (
                    format!("[{}/{len}]:{port}", Ipv6Addr::from_bits(net)),
                    Query::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from_bits(host)), port)),
                )
            }
            Kind::Name => {
                if i % 2 == 0 {
                    let name = format!("host{i}.svc{}.example.com", rng.below(1000));
                    (format!("{name}:{port}"), Query::Name(name, port))
                } else {
                    let suffix = format!("zone{i}.example.net");
                    (
                        format!("*.{suffix}:{port}"),
                        Query::Name(format!("api.{suffix}"), port),
                    )
                }
            }
        };
        builder = builder
            .rule(verdict, "connect", &target)
            .expect("a valid rule");
        if verdict == Verdict::Allow {
            allow_queries.push(query);
        }
    }
    let policy = builder.build();
    // Keep only queries the policy really allows (a deny rule may cover one).
    allow_queries.retain(|q| decide(&policy, q).is_allowed());
    // A timed pass takes the first queries: shuffled, they are a uniform
    // sample of the whole rule set, not its first rules.
    for i in (1..allow_queries.len()).rev() {
        allow_queries.swap(i, rng.below(i as u64 + 1) as usize);
    }
    while deny_queries.len() < 4096 {
        let q = match kind {
            Kind::V4 => Query::Addr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from_bits(
                    0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff),
                )),
                1024 + rng.below(60_000) as u16,
            )),
            // Anywhere in the rules' /32, like the allow queries (not all in
            // its first /64, which would be one hot interval).
            Kind::V6 => Query::Addr(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from_bits(
                    (0x2001_0db8u128 << 96)
                        | (u128::from(rng.next()) << 32)
                        | u128::from(rng.next() as u32),
                )),
                1024 + rng.below(60_000) as u16,
            )),
            Kind::Name => Query::Name(
                format!(
                    "host{}.nowhere{}.example.org",
                    rng.below(1 << 20),
                    rng.below(100)
                ),
                443,
            ),
        };
        if !decide(&policy, &q).is_allowed() {
            deny_queries.push(q);
        }
    }
    (policy, allow_queries, deny_queries)
}

fn decide<'p>(policy: &'p Policy, q: &Query) -> capnet_policy::Decision<'p> {
    match q {
        Query::Addr(a) => policy.decide(Use::TcpConnect, *a),
        Query::Name(n, port) => policy.decide_host(Use::TcpConnect, n, *port),
    }
}

/// The naive matcher: scan every rule, deny first; what the tables replace.
fn naive(rules: &[Rule], q: &Query) -> bool {
    let covers = |r: &Rule| match q {
        Query::Addr(a) => r.covers(Use::TcpConnect, *a),
        Query::Name(n, port) => {
            r.uses.contains(Use::TcpConnect) && r.ports.allows(*port) && r.target.allows_name(n)
        }
    };
    for verdict in [Verdict::Deny, Verdict::Allow] {
        if rules.iter().any(|r| r.verdict == verdict && covers(r)) {
            return verdict == Verdict::Allow;
        }
    }
    false
}

/// Median nanoseconds per call of `f` over `queries`, from `samples` passes.
fn median_ns(queries: &[Query], samples: usize, mut f: impl FnMut(&Query) -> bool) -> f64 {
    let mut per_check: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for q in queries {
                black_box(f(black_box(q)));
            }
            start.elapsed().as_nanos() as f64 / queries.len() as f64
        })
        .collect();
    per_check.sort_by(f64::total_cmp);
    per_check[per_check.len() / 2]
}

/// Resident memory of this process, from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn cycle(queries: &[Query], n: usize) -> Vec<Query> {
    queries.iter().cycle().take(n).cloned().collect()
}

fn main() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    // `BENCH_ONLY=ipv4|ipv6|hostname` runs one kind, `BENCH_SIZES=10,1000` some sizes,
    // `BENCH_MEMORY=0` skips the compile and memory lines, `BENCH_NAIVE=0` the naive
    // matcher (for profiling).
    let only = std::env::var("BENCH_ONLY").ok();
    let skip_naive = std::env::var("BENCH_NAIVE").is_ok_and(|v| v == "0");
    println!(
        "capnet-policy: median ns per tcp-connect decision (naive = linear scan of every rule)"
    );
    println!();
    println!(
        "| {:>7} | {:<8} | {:<5} | {:>11} | {:>11} | {:>8} |",
        "rules", "target", "path", "compiled ns", "naive ns", "naive/compiled"
    );
    println!("|--------:|:---------|:------|------------:|------------:|---------------:|");
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 1_000, 100_000]);
    for &n in &sizes {
        for kind in [Kind::V4, Kind::V6, Kind::Name] {
            if only.as_deref().is_some_and(|o| o != kind.as_str()) {
                continue;
            }
            let (policy, allow, deny) = workload(kind, n, &mut rng);
            for (path, queries) in [("allow", &allow), ("deny", &deny)] {
                let fast_q = cycle(queries, 4096);
                let fast = median_ns(&fast_q, 201, |q| decide(&policy, q).is_allowed());
                // The naive scan is slow at 100,000 rules: fewer queries there.
                let naive_q = cycle(queries, (400_000 / n.max(1)).clamp(16, 4096));
                let slow = if skip_naive {
                    f64::NAN
                } else {
                    median_ns(&naive_q, 11, |q| naive(policy.rules(), q))
                };
                println!(
                    "| {n:>7} | {:<8} | {path:<5} | {fast:>11.1} | {slow:>11.1} | {:>13.0}x |",
                    kind.as_str(),
                    slow / fast
                );
            }
        }
    }

    if std::env::var("BENCH_MEMORY").is_ok_and(|v| v == "0") {
        return;
    }
    println!();
    for kind in [Kind::V4, Kind::V6, Kind::Name] {
        let mut rng = Rng(42);
        let before = rss_bytes();
        let start = Instant::now();
        let (policy, _, _) = workload(kind, 100_000, &mut rng);
        let load = start.elapsed();
        let rules = policy.rules().to_vec();
        let start = Instant::now();
        let rebuilt = rules.iter().fold(Policy::builder(), |b, r| {
            b.rule(r.verdict, "connect", &rule_text(r)).expect("valid")
        });
        let parse = start.elapsed();
        let start = Instant::now();
        let rebuilt = rebuilt.build();
        let compile = start.elapsed();
        let after = rss_bytes();
        let tables = rebuilt.table_bytes();
        drop(black_box(rebuilt));
        println!(
            "100,000 {} rules: parse {}, compile {} (whole workload {}), compiled tables {:.1} MiB ({} bytes per rule), resident memory of two policies with their rules and the queries {:.1} MiB",
            kind.as_str(),
            ms(parse),
            ms(compile),
            ms(load),
            tables as f64 / (1024.0 * 1024.0),
            tables / 100_000,
            (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0)
        );
        drop(policy);
    }
}

fn rule_text(r: &Rule) -> String {
    let target = match &r.target {
        capnet_policy::Target::Ip(net) if net.addr().is_ipv6() => format!("[{net}]"),
        t => t.to_string(),
    };
    format!("{target}:{}", r.ports)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
