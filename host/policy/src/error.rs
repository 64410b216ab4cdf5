//! Load errors: where a bad rule is, which rule, and what is wrong with it.

use std::fmt;

/// Why a policy could not be loaded: one line naming the place (file, line
/// and column, or the CLI flag), the rule as written, and what to write
/// instead, e.g.
/// `policy.toml:7:12: rule "connect 10.0.0.0/8:9000-80": port range start is above its end (write 80-9000)`.
#[derive(Debug, thiserror::Error)]
pub struct PolicyError {
    place: Place,
    rule: Option<String>,
    kind: ErrorKind,
}

/// Where an error was found; private so its shape can grow.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A position in a file, 1-based.
    At {
        origin: String,
        line: u32,
        column: u32,
    },
    /// A whole file (it could not be read).
    File { origin: String },
    /// A CLI flag, by its spelling.
    Flag { flag: String },
    /// [`crate::PolicyBuilder::rule`]: no place but the rule itself.
    Builder,
}

impl PolicyError {
    pub(crate) fn new(place: Place, rule: Option<String>, kind: ErrorKind) -> Self {
        PolicyError { place, rule, kind }
    }

    /// What is wrong, without place or rule, for callers that match on it.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The rule as written (`USE TARGET`), when the error is about one rule.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// The file name or flag spelling the error came from, if any.
    pub fn origin(&self) -> Option<&str> {
        match &self.place {
            Place::At { origin, .. } | Place::File { origin } => Some(origin),
            Place::Flag { flag } => Some(flag),
            Place::Builder => None,
        }
    }

    /// The 1-based line and column in the file, when the error has one.
    pub fn line_column(&self) -> Option<(u32, u32)> {
        match self.place {
            Place::At { line, column, .. } => Some((line, column)),
            _ => None,
        }
    }
}

/// One line: control characters of the rule or the message (a policy string may hold a
/// newline, a NUL or a terminal escape) are written escaped, as `\n`, `\u{0}`, `\u{1b}`.
impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let f = &mut Escaped(f);
        match &self.place {
            Place::At {
                origin,
                line,
                column,
            } => write!(f, "{origin}:{line}:{column}: ")?,
            Place::File { origin } => write!(f, "{origin}: ")?,
            Place::Flag { flag } => write!(f, "{flag}: ")?,
            Place::Builder => {}
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule \"{rule}\": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// Writes what it is given with control characters escaped (`\n`, `\t`, `\u{1b}`), so text
/// taken from a policy cannot break a message into lines or drive the terminal.
pub(crate) struct Escaped<'a, W: fmt::Write>(pub &'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for part in s.split_inclusive(char::is_control) {
            match part.char_indices().last() {
                Some((i, c)) if c.is_control() => {
                    self.0.write_str(&part[..i])?;
                    write!(self.0, "{}", c.escape_default())?;
                }
                _ => self.0.write_str(part)?,
            }
        }
        Ok(())
    }
}

/// What is wrong with a policy, one variant per mistake; each message says
/// what to write instead where there is an obvious fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The policy file could not be read.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// The file is not valid TOML or does not have the policy's shape; the
    /// message is toml's own.
    #[error("{0}")]
    Toml(String),
    /// The USE word is not a use nor a group.
    #[error("unknown use \"{0}\" (valid: {list})", list = crate::uses::words().collect::<Vec<_>>().join(", "))]
    UnknownUse(String),
    /// The target is empty.
    #[error("empty target (write an address, a CIDR, a host name, *.suffix or any)")]
    EmptyTarget,
    /// A CIDR whose address has bits set past the prefix.
    #[error("{given} has host bits set (write {network})")]
    HostBits {
        /// The CIDR as written.
        given: String,
        /// The network it should be.
        network: String,
    },
    /// A prefix longer than the address family allows.
    #[error("prefix /{prefix} is too long for an {family} network (at most /{max})")]
    PrefixTooLong {
        /// The prefix as written.
        prefix: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// 32 or 128.
        max: u8,
    },
    /// The text after `/` is not a number.
    #[error("prefix \"{0}\" is not a number")]
    BadPrefix(String),
    /// The address before `/` is not an IP address.
    #[error("\"{0}\" is not a valid CIDR (write ADDRESS/PREFIX, as in 10.0.0.0/8)")]
    BadCidr(String),
    /// The text is not an IP address.
    #[error("\"{0}\" is not a valid IP address")]
    BadAddress(String),
    /// A bare (unbracketed) IPv6 target that does not parse; often an
    /// attempt to add ports without brackets.
    #[error(
        "\"{0}\" is not a valid IPv6 address or CIDR (to give ports, write [ADDRESS]:PORTS, as in [::1]:8080)"
    )]
    BadIpv6(String),
    /// A `[` with no `]`.
    #[error("missing ']' after \"{0}\"")]
    MissingBracket(String),
    /// Something other than `:PORTS` after `]`.
    #[error("unexpected \"{rest}\" after ']' (write [{inner}]:PORTS)")]
    AfterBracket {
        /// What follows the `]`.
        rest: String,
        /// What is inside the brackets.
        inner: String,
    },
    /// An IPv4 address in brackets.
    #[error("brackets are only for IPv6 addresses (write {0})")]
    BracketedIpv4(String),
    /// A `:` with nothing after it.
    #[error("missing port after ':' (write a port, a range a-b or *, or leave out the ':')")]
    EmptyPorts,
    /// A port that is not a number.
    #[error("port \"{0}\" is not a number (write a port, a range a-b or *)")]
    BadPort(String),
    /// A port above 65535.
    #[error("port {0} is above 65535")]
    PortTooLarge(String),
    /// A range `a-b` with `a > b`.
    #[error("port range start is above its end (write {lo}-{hi})")]
    ReversedPorts {
        /// The smaller port (the range's end as written).
        lo: u16,
        /// The larger port (the range's start as written).
        hi: u16,
    },
    /// An empty item in a `;`-separated port list (`80;;443`, `80;`).
    #[error("empty port in the list \"{0}\" (write ports joined by ';', as in 80;443;8000-8100)")]
    EmptyPortInList(String),
    /// A named set written with a prefix length (`loopback/8`).
    #[error("the named set {0} takes no prefix (write {0}, or a CIDR)")]
    SetWithPrefix(String),
    /// A host name or `*.suffix` target on a use other than `lookup`,
    /// `tcp-connect` or `udp-send`.
    #[error(
        "a host name is only a target for connect, tcp-connect, udp-send and lookup (write an IP, a CIDR or a named set such as loopback)"
    )]
    NameNeedsLookup,
    /// Ports on a `lookup` rule; a lookup has no port.
    #[error("lookup rules take no ports (write {0})")]
    PortsOnLookup(String),
    /// A `*` that is not a whole leading `*.` label.
    #[error("a wildcard is only allowed as a leading \"*.\" label, as in *.example.com")]
    Wildcard,
    /// A lone `*` as target.
    #[error("a bare \"*\" is not a target (write any)")]
    BareStar,
    /// A host name with a character outside letters, digits, `-` and `.`.
    #[error(
        "host name \"{name}\" has an invalid character {ch:?} (use letters, digits, '-' and '.')"
    )]
    NameChar {
        /// The name as written.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// A host name with an empty label (`a..b`, a leading `.`).
    #[error("host name \"{0}\" has an empty label")]
    EmptyLabel(String),
    /// A label over 63 characters.
    #[error("host name label \"{0}\" is longer than 63 characters")]
    LongLabel(String),
    /// A name over 253 characters.
    #[error("host name \"{0}\" is longer than 253 characters")]
    LongName(String),
    /// A label that starts or ends with `-`.
    #[error("host name label \"{0}\" starts or ends with '-'")]
    HyphenLabel(String),
    /// A library name that is not a kebab-case label.
    #[error(
        "library name \"{0}\" is not a kebab-case label (write lowercase words joined by '-', as in weather or metrics-client)"
    )]
    LibraryName(String),
    /// A `--library-allow`/`--library-deny` value not of the shape `NAME=USE LIST`.
    #[error("\"{0}\" is not NAME=USE LIST (write weather=connect 127.0.0.1:8080)")]
    LibraryFlag(String),
    /// A library table's `grant` that is not `"declared"`.
    #[error(
        "grant = \"{0}\": the one grant a library table takes is \"declared\" (the library gets what its component declares, within the app's rules)"
    )]
    Grant(String),
    /// A key of a `[limits]` table or `--limit` that names no limit.
    #[error("unknown limit \"{0}\" (valid: {list})", list = crate::Limit::ALL.map(crate::Limit::name).join(", "))]
    UnknownLimit(String),
    /// A limit's value out of range.
    #[error(
        "limit {limit} = {value} is out of range (write 1 to {max}; to forbid a use, write a deny rule)"
    )]
    LimitValue {
        /// The limit's name.
        limit: &'static str,
        /// The value as given.
        value: String,
        /// The largest value allowed.
        max: u64,
    },
    /// A limit's value in a file that is not a whole number.
    #[error(
        "limit {limit} = {value} is not a whole number (write one without units, as in {limit} = {example})"
    )]
    LimitNotANumber {
        /// The limit's name.
        limit: &'static str,
        /// The value as given.
        value: String,
        /// A value to show.
        example: u64,
    },
    /// A `--limit` or `--library-limit` value not of the shape `KEY=VALUE` or
    /// `NAME.KEY=VALUE`.
    #[error("\"{given}\" is not {shape} (write {example})")]
    LimitFlag {
        /// The value as given.
        given: String,
        /// The shape expected.
        shape: &'static str,
        /// An example of it.
        example: &'static str,
    },
    /// A dotted all-numeric top label: neither an IP address nor a host name
    /// (`10.0.0.300`).
    #[error("\"{0}\" is not a valid IP address or host name")]
    NotIpOrName(String),
}
