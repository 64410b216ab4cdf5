//! Rules and where each one came from.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::{PortRange, Target, Use, UseSet, Verdict};

/// One compiled rule: a verdict on some uses of a target's ports.
///
/// A rule written with a group word may expand to several rules that share
/// one [`Source`]: `listen 127.0.0.1:8080` (allow) is `tcp-bind+tcp-listen`
/// on `127.0.0.1:8080` and `tcp-accept` from any peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The uses the rule governs.
    pub uses: UseSet,
    /// What the rule is about.
    pub target: Target,
    /// The ports it covers ([`PortRange::ANY`] when none were written).
    pub ports: PortRange,
    /// Where it was written, so a decision can name it.
    pub source: Source,
}

impl Rule {
    /// Whether this rule alone matches `use_` on `addr`, ignoring its verdict
    /// and every other rule; a reference for tests and diagnostics, not the
    /// matching path.
    pub fn covers(&self, use_: Use, addr: SocketAddr) -> bool {
        self.uses.contains(use_)
            && self.ports.allows(addr.port())
            && self.target.allows_ip(addr.ip())
    }

    /// Whether this rule alone matches `use_` on the host name `name`.
    pub fn covers_name(&self, use_: Use, name: &str) -> bool {
        self.uses.contains(use_) && self.ports.is_any() && self.target.allows_name(name)
    }
}

/// Shows the rule's source: `rule policy.toml:3:5 "connect 127.0.0.1:8080"`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// Where a rule was written, and its text there, so decisions and logs can
/// point at the line that allowed or denied a use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file position, flag or API call.
    pub origin: Origin,
    /// The rule as written: `USE TARGET` for files and the API, the one
    /// target for a flag (the flag names the use).
    pub text: String,
}

/// The kind of place a rule came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A policy file; line and column (1-based) of the target string.
    File {
        /// The file name as given to the builder.
        path: Arc<str>,
        /// 1-based line.
        line: u32,
        /// 1-based column, in characters.
        column: u32,
    },
    /// A CLI flag such as `--allow-connect`.
    Flag(Arc<str>),
    /// [`crate::PolicyBuilder::rule`], for embedders and tests.
    Builder,
}

/// `rule policy.toml:3:5 "connect 127.0.0.1:8080"`,
/// `flag --allow-listen "127.0.0.1:8080"` or `rule "connect 127.0.0.1:8080"`; control
/// characters of the text (a port list may hold a newline) are written escaped.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let f = &mut crate::error::Escaped(f);
        match &self.origin {
            Origin::File { path, line, column } => {
                write!(f, "rule {path}:{line}:{column} \"{}\"", self.text)
            }
            Origin::Flag(flag) => write!(f, "flag {flag} \"{}\"", self.text),
            Origin::Builder => write!(f, "rule \"{}\"", self.text),
        }
    }
}
