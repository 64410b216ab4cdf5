//! capnet's network policy: which socket operations a WebAssembly guest may
//! perform, decided deny-by-default against rules from a TOML file, CLI
//! flags or code. No runtime inside: no wasmtime, no tokio.
//!
//! A rule is `USE TARGET[:PORTS]` with a verdict:
//!
//! - USE is a [`Use`] (`tcp-connect`, `tcp-bind`, `tcp-listen`, `tcp-accept`,
//!   `udp-bind`, `udp-send`, `udp-receive`, `lookup`) or a group word:
//!   `connect`, `bind`, `accept` (the TCP use); `listen`, which for allow
//!   grants `tcp-bind` and `tcp-listen` on the target and `tcp-accept` from
//!   any peer, and for deny covers `tcp-bind` and `tcp-listen` only; `udp`
//!   (`udp-bind`, `udp-send`, `udp-receive`); `all` (every use).
//! - TARGET is an IPv4 or IPv6 address or CIDR (`127.0.0.1`, `10.0.0.0/8`,
//!   `::1`, `[fd00::/8]`), a [`NamedSet`] (`loopback`, `private`,
//!   `link-local`, `metadata`, `public`), `any`, or for `tcp-connect`,
//!   `udp-send` and `lookup` a host name or `*.suffix`. A connect rule naming
//!   a host also allows its lookup; the runtime lets the connect reach the
//!   addresses that lookup returned ([`Policy::decide_host`]).
//! - PORTS is one port, a range `a-b`, `*`, or several joined by `;`
//!   (`80;443;8000-8100`); none means every port.
//!
//! Deny rules win over allow rules; with no matching rule the answer is deny
//! unless the policy was built with `inherit-network`. Rules compile into
//! per-use tables ([`PolicyBuilder::build`]): a decision is a binary search
//! over flattened prefix intervals, or a few hash probes for a name, even
//! with 100,000 rules, and it names the rule that decided it.
//!
//! ```
//! use capnet_policy::{Policy, Use};
//!
//! let policy = Policy::builder()
//!     .toml("policy.toml", r#"
//!         [allow]
//!         connect = ["127.0.0.1:8080"]
//!     "#)?
//!     .build();
//! let decision = policy.decide(Use::TcpConnect, "127.0.0.1:8080".parse()?);
//! assert!(decision.is_allowed());
//! assert_eq!(decision.to_string(), r#"rule policy.toml:3:20 "connect 127.0.0.1:8080""#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod file;
mod ip;
mod limits;
mod matcher;
mod policy;
mod ports;
mod rule;
mod sets;
mod target;
mod uses;

pub use error::{ErrorKind, PolicyError};
pub use ip::{IpNet, normalize};
pub use limits::{Limit, Limits};
pub use policy::{Decision, Pinned, Policy, PolicyBuilder, Reason, guarded_range};
pub use ports::PortRange;
pub use rule::{Origin, Rule, Source};
pub use sets::NamedSet;
pub use target::Target;
pub use uses::{ParseUseError, Use, UseSet, Verdict, words};
