//! Uses (the socket operations a rule governs), verdicts, and the word table
//! that turns a rule's USE word into uses.

use std::fmt;
use std::str::FromStr;

/// One socket operation a guest can attempt; every check names exactly one.
///
/// The names mirror `wasi:sockets` and are spelled in kebab-case in policy
/// files, CLI flags and log fields (`tcp-connect`, `udp-send`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Use {
    /// Bind a TCP socket to a local address.
    TcpBind,
    /// Start listening on a bound TCP socket (the local address is checked).
    TcpListen,
    /// Accept a connection on a listening socket (the peer address is checked).
    TcpAccept,
    /// Connect a TCP socket to a remote address.
    TcpConnect,
    /// Bind a UDP socket to a local address.
    UdpBind,
    /// Send a UDP datagram to a remote address.
    UdpSend,
    /// Receive a UDP datagram from a remote address.
    UdpReceive,
    /// Resolve a host name (`wasi:sockets/ip-name-lookup`).
    Lookup,
}

impl Use {
    /// Every use, in declaration order, for tables and exhaustive tests.
    pub const ALL: [Use; 8] = [
        Use::TcpBind,
        Use::TcpListen,
        Use::TcpAccept,
        Use::TcpConnect,
        Use::UdpBind,
        Use::UdpSend,
        Use::UdpReceive,
        Use::Lookup,
    ];

    /// The kebab-case word for this use, as written in files and flags.
    pub const fn as_str(self) -> &'static str {
        match self {
            Use::TcpBind => "tcp-bind",
            Use::TcpListen => "tcp-listen",
            Use::TcpAccept => "tcp-accept",
            Use::TcpConnect => "tcp-connect",
            Use::UdpBind => "udp-bind",
            Use::UdpSend => "udp-send",
            Use::UdpReceive => "udp-receive",
            Use::Lookup => "lookup",
        }
    }

    /// A dense index (0..8), for per-use tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Use::from_str`]: the word is not one of the eight uses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown use \"{0}\" (valid: {list})", list = Use::ALL.map(Use::as_str).join(", "))]
pub struct ParseUseError(pub String);

impl FromStr for Use {
    type Err = ParseUseError;

    /// Parses exactly one use word (`tcp-connect`, ...); group words such as
    /// `connect` are not uses, they are expanded by the policy builder.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Use::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| ParseUseError(s.to_owned()))
    }
}

/// A set of uses, held as a bit set so a rule can name several at once.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct UseSet(u8);

impl UseSet {
    /// The empty set.
    pub const EMPTY: UseSet = UseSet(0);

    /// A set holding exactly the given uses.
    pub const fn of(uses: &[Use]) -> UseSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < uses.len() {
            bits |= 1 << uses[i] as u8;
            i += 1;
        }
        UseSet(bits)
    }

    /// Whether `use_` is in the set.
    pub const fn contains(self, use_: Use) -> bool {
        self.0 & (1 << use_ as u8) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The uses in the set, in [`Use::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Use> {
        Use::ALL.into_iter().filter(move |u| self.contains(*u))
    }
}

impl fmt::Debug for UseSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Shows the uses joined by `+`, e.g. `tcp-bind+tcp-listen`.
impl fmt::Display for UseSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(u.as_str())?;
        }
        Ok(())
    }
}

impl FromIterator<Use> for UseSet {
    fn from_iter<I: IntoIterator<Item = Use>>(iter: I) -> Self {
        UseSet(iter.into_iter().fold(0, |bits, u| bits | 1 << u as u8))
    }
}

/// What a rule says about the uses it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The use may go ahead.
    Allow,
    /// The use is refused (`access-denied`); deny rules win over allow rules.
    Deny,
}

impl Verdict {
    /// The lowercase word, `allow` or `deny`, as used for the file's tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which target one part of a word's expansion applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum On {
    /// The target (and ports) written in the rule.
    Target,
    /// Any peer on any port, whatever the rule's target (`listen` grants
    /// accepting connections from anyone on the listener it allows).
    AnyPeer,
}

/// One part of what a USE word means for one verdict: these uses, on this target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    pub uses: UseSet,
    pub on: On,
}

/// One row of the word table.
struct Word {
    word: &'static str,
    allow: &'static [Part],
    deny: &'static [Part],
}

const fn on_target(uses: &[Use]) -> Part {
    Part {
        uses: UseSet::of(uses),
        on: On::Target,
    }
}

/// A single-use word: the same meaning for allow and deny.
macro_rules! single {
    ($use_:expr) => {
        Word {
            word: $use_.as_str(),
            allow: &[on_target(&[$use_])],
            deny: &[on_target(&[$use_])],
        }
    };
}

/// Every USE word a rule may start with. To add a group (`udp`, `all`, ...)
/// add a row; the error message for unknown words lists them from here.
const WORDS: &[Word] = &[
    single!(Use::TcpBind),
    single!(Use::TcpListen),
    single!(Use::TcpAccept),
    single!(Use::TcpConnect),
    single!(Use::UdpBind),
    single!(Use::UdpSend),
    single!(Use::UdpReceive),
    single!(Use::Lookup),
    Word {
        word: "connect",
        allow: &[on_target(&[Use::TcpConnect])],
        deny: &[on_target(&[Use::TcpConnect])],
    },
    Word {
        word: "bind",
        allow: &[on_target(&[Use::TcpBind])],
        deny: &[on_target(&[Use::TcpBind])],
    },
    Word {
        word: "listen",
        // Allowing a listener is useless unless it may accept: grant
        // accepting from any peer along with binding and listening.
        allow: &[
            on_target(&[Use::TcpBind, Use::TcpListen]),
            Part {
                uses: UseSet::of(&[Use::TcpAccept]),
                on: On::AnyPeer,
            },
        ],
        // Denying a listener must not deny accepts on other listeners.
        deny: &[on_target(&[Use::TcpBind, Use::TcpListen])],
    },
    Word {
        word: "accept",
        allow: &[on_target(&[Use::TcpAccept])],
        deny: &[on_target(&[Use::TcpAccept])],
    },
    Word {
        word: "udp",
        allow: &[on_target(&[Use::UdpBind, Use::UdpSend, Use::UdpReceive])],
        deny: &[on_target(&[Use::UdpBind, Use::UdpSend, Use::UdpReceive])],
    },
    Word {
        word: "all",
        allow: &[on_target(&Use::ALL)],
        deny: &[on_target(&Use::ALL)],
    },
];

/// What `word` means for `verdict`, or `None` for an unknown word.
pub(crate) fn expand(word: &str, verdict: Verdict) -> Option<&'static [Part]> {
    WORDS
        .iter()
        .find(|w| w.word == word)
        .map(|w| match verdict {
            Verdict::Allow => w.allow,
            Verdict::Deny => w.deny,
        })
}

/// Every accepted USE word (uses first, then groups), for help and errors.
pub fn words() -> impl Iterator<Item = &'static str> {
    WORDS.iter().map(|w| w.word)
}

/// The union of all uses `word` names for `verdict`.
pub(crate) fn all_uses(parts: &[Part]) -> UseSet {
    parts.iter().flat_map(|p| p.uses.iter()).collect()
}
