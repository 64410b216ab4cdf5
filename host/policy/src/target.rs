//! Targets: what a rule is about (an address, a network, a host name, a
//! name suffix, or anything), and the `TARGET[:PORTS]` splitter.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::{ErrorKind, IpNet, NamedSet, PortRange};

/// What a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IP address or network (`127.0.0.1`, `10.0.0.0/8`, `[fd00::/8]`).
    Ip(IpNet),
    /// One host name, lowercase without a trailing dot (`example.com`). A
    /// single-label name spelled like a keyword is written with its dot
    /// (`private.`), and displayed so.
    Name(String),
    /// Every name strictly below a domain: `*.example.com` holds
    /// `"example.com"` and matches `a.example.com` but not `example.com`.
    Suffix(String),
    /// Every address (prefix length 0 in both families) and every name; it
    /// does not cover unspecified or multicast addresses.
    Any,
    /// A named set of addresses: `loopback`, `private`, `link-local`,
    /// `metadata` or `public`.
    Set(NamedSet),
}

impl Target {
    /// Parses a target without ports: `any`, an IPv4 address or CIDR, an
    /// IPv6 address or CIDR (bare or in brackets), a host name or
    /// `*.suffix`. Names are lowercased and lose a trailing dot.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind`] naming the first problem and what to write instead.
    pub fn parse(text: &str) -> Result<Target, ErrorKind> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix('[') {
            return match rest.strip_suffix(']') {
                Some(inner) => parse_bracketed(inner, inner),
                None => Err(ErrorKind::MissingBracket(text.to_owned())),
            };
        }
        parse_host(text)
    }

    /// Whether a rule on this target matches the address `ip` (normalised
    /// first); unspecified and multicast addresses need a rule that names
    /// them (see [`IpNet::allows`]).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        match self {
            Target::Ip(net) => net.allows(ip),
            Target::Any => crate::ip::min_prefix(crate::normalize(ip)) == 0,
            Target::Set(set) => set.contains(ip),
            Target::Name(_) | Target::Suffix(_) => false,
        }
    }

    /// Whether a rule on this target matches the host name `name`
    /// (compared lowercase, a trailing dot ignored). An IP literal as a name
    /// is matched as an address.
    pub fn allows_name(&self, name: &str) -> bool {
        let name = normalize_name(name);
        if let Some(ip) = ip_literal(&name) {
            return self.allows_ip(ip);
        }
        match self {
            Target::Name(n) => *n == name,
            Target::Suffix(s) => name
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Target::Any => true,
            Target::Ip(_) | Target::Set(_) => false,
        }
    }

    /// Whether the target is a host name or a name suffix (only `lookup`
    /// takes those for now).
    pub fn is_name(&self) -> bool {
        matches!(self, Target::Name(_) | Target::Suffix(_))
    }
}

/// `any`, `10.0.0.0/8`, `example.com`, `*.example.com`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(net) => net.fmt(f),
            // A name that is also a keyword (`any`, `private`) keeps the trailing dot it
            // was written with, so the text parses back to the name, not the keyword.
            Target::Name(n) if is_keyword(n) => write!(f, "{n}."),
            Target::Name(n) => f.write_str(n),
            Target::Suffix(s) => write!(f, "*.{s}"),
            Target::Any => f.write_str("any"),
            Target::Set(set) => set.fmt(f),
        }
    }
}

/// Whether `name` is spelled like `any` or a named set: as a target it must be written
/// with a trailing dot (`private.`) to mean the host.
fn is_keyword(name: &str) -> bool {
    name.eq_ignore_ascii_case("any") || NamedSet::from_word(name).is_some()
}

/// A query name as tables store names: lowercase, no trailing dot.
pub(crate) fn normalize_name(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    // Folded without stopping early, so the scan is vectorised.
    if name
        .bytes()
        .fold(false, |upper, b| upper | b.is_ascii_uppercase())
    {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    }
}

/// The address a name spells, if it is an IP literal (`10.0.0.1`, `::1`,
/// `[::1]`), so looking up a literal is decided like the address.
pub(crate) fn ip_literal(name: &str) -> Option<IpAddr> {
    // A literal holds only hex digits, dots, colons and brackets: a host
    // name fails this at its last label's first non-hex letter, before a
    // parse that costs more than the rest of a decision.
    let literal_bytes = |b: u8| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'[' | b']');
    if !name.bytes().rev().all(literal_bytes) {
        return None;
    }
    let inner = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    inner.parse().ok()
}

/// A `TARGET[:PORTS]` entry split and parsed.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub target: Target,
    /// `None` when no ports were written.
    pub ports: Option<Vec<PortRange>>,
    /// The target as written, without its ports, for suggestions.
    pub host_text: &'a str,
}

/// Splits and parses `TARGET[:PORTS]`: `127.0.0.1:8080`, `[::1]:*`,
/// `10.0.0.0/8:8000-8100`, `::1` (a bare IPv6 target has no ports),
/// `any:443`, `example.com`. Errors in the target come before errors in the
/// ports, as they are read.
pub(crate) fn parse_entry(text: &str) -> Result<Entry<'_>, ErrorKind> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ErrorKind::EmptyTarget);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(ErrorKind::MissingBracket(text.to_owned()));
        };
        let inner = &rest[..close];
        let after = &rest[close + 1..];
        let host_text = &text[..close + 2];
        let ports = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Err(ErrorKind::AfterBracket {
                        rest: after.to_owned(),
                        inner: inner.to_owned(),
                    });
                }
            },
        };
        let suggestion = match ports {
            Some(p) => format!("{inner}:{p}"),
            None => inner.to_owned(),
        };
        let target = parse_bracketed(inner, &suggestion)?;
        let ports = ports.map(parse_ports).transpose()?;
        return Ok(Entry {
            target,
            ports,
            host_text,
        });
    }
    if text.matches(':').count() > 1 {
        // A bare IPv6 address or CIDR: its colons are not a port separator.
        let target = parse_bare_ipv6(text)?;
        return Ok(Entry {
            target,
            ports: None,
            host_text: text,
        });
    }
    let (host_text, ports) = match text.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let target = parse_host(host_text)?;
    let ports = ports.map(parse_ports).transpose()?;
    Ok(Entry {
        target,
        ports,
        host_text,
    })
}

/// PORTS: one port, a range `a-b` or `*`, or several joined by `;`
/// (`80;443;8000-8100`). `;` rather than `,` so a flag's comma-separated
/// LIST and a rule's port list never mix.
pub(crate) fn parse_ports(text: &str) -> Result<Vec<PortRange>, ErrorKind> {
    if !text.contains(';') {
        return Ok(vec![PortRange::parse(text.trim())?]);
    }
    text.split(';')
        .map(|p| match p.trim() {
            "" => Err(ErrorKind::EmptyPortInList(text.to_owned())),
            p => PortRange::parse(p),
        })
        .collect()
}

/// The inside of `[...]`: an IPv6 address or CIDR. `suggestion` is what
/// to write instead if it turns out to be IPv4.
fn parse_bracketed(inner: &str, suggestion: &str) -> Result<Target, ErrorKind> {
    if inner.is_empty() {
        return Err(ErrorKind::EmptyTarget);
    }
    let addr_text = inner.split_once('/').map_or(inner, |(a, _)| a);
    if addr_text.parse::<Ipv4Addr>().is_ok() {
        return Err(ErrorKind::BracketedIpv4(suggestion.to_owned()));
    }
    match IpNet::parse(inner) {
        Ok(net) => Ok(Target::Ip(net)),
        Err(ErrorKind::BadAddress(_) | ErrorKind::BadCidr(_)) => {
            Err(ErrorKind::BadAddress(inner.to_owned()))
        }
        Err(e) => Err(e),
    }
}

/// A bare IPv6 target (two or more colons, no brackets).
fn parse_bare_ipv6(text: &str) -> Result<Target, ErrorKind> {
    match IpNet::parse(text) {
        Ok(net) => Ok(Target::Ip(net)),
        Err(ErrorKind::BadAddress(_) | ErrorKind::BadCidr(_) | ErrorKind::BadPrefix(_)) => {
            Err(ErrorKind::BadIpv6(text.to_owned()))
        }
        Err(e) => Err(e),
    }
}

/// A target with no brackets and no ports.
fn parse_host(text: &str) -> Result<Target, ErrorKind> {
    if text.is_empty() {
        return Err(ErrorKind::EmptyTarget);
    }
    // Keywords. Named sets (`loopback`, `private`, ...) go here.
    if text.eq_ignore_ascii_case("any") {
        return Ok(Target::Any);
    }
    if let Some(set) = NamedSet::from_word(text) {
        return Ok(Target::Set(set));
    }
    if text.contains(':') {
        return parse_bare_ipv6(text);
    }
    if text.contains('/') {
        if let Some((word, _)) = text.split_once('/')
            && let Some(set) = NamedSet::from_word(word)
        {
            return Err(ErrorKind::SetWithPrefix(set.to_string()));
        }
        return IpNet::parse(text).map(Target::Ip);
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(Target::Ip(IpNet::new(IpAddr::V4(v4), 32)?));
    }
    parse_name(text)
}

/// A host name or a `*.suffix`.
fn parse_name(text: &str) -> Result<Target, ErrorKind> {
    let lower = normalize_name(text);
    if lower == "*" {
        return Err(ErrorKind::BareStar);
    }
    let (suffix, body) = match lower.strip_prefix("*.") {
        Some(body) => (true, body),
        None => (false, &*lower),
    };
    if body.contains('*') {
        return Err(ErrorKind::Wildcard);
    }
    check_name(body, text)?;
    Ok(if suffix {
        Target::Suffix(body.to_owned())
    } else {
        Target::Name(body.to_owned())
    })
}

/// Checks `name` (lowercase) is a host name: letters, digits and `-` in
/// dot-separated labels of 1 to 63 characters, at most 253 in all, and not
/// all-numeric in its last label. `written` is quoted in errors.
fn check_name(name: &str, written: &str) -> Result<(), ErrorKind> {
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(ErrorKind::NameChar {
            name: written.to_owned(),
            ch,
        });
    }
    if name.len() > 253 {
        return Err(ErrorKind::LongName(written.to_owned()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(ErrorKind::EmptyLabel(written.to_owned()));
        }
        if label.len() > 63 {
            return Err(ErrorKind::LongLabel(label.to_owned()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(ErrorKind::HyphenLabel(label.to_owned()));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::NotIpOrName(written.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> (String, Option<String>) {
        let e = parse_entry(text).unwrap();
        (
            e.target.to_string(),
            e.ports.map(|p| {
                p.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(";")
            }),
        )
    }

    #[test]
    fn accepts_every_documented_spelling() {
        let cases = [
            ("127.0.0.1", "127.0.0.1", None),
            ("127.0.0.1:8080", "127.0.0.1", Some("8080")),
            ("10.0.0.0/8:8000-8100", "10.0.0.0/8", Some("8000-8100")),
            ("[::1]:*", "::1", Some("*")),
            ("::1", "::1", None),
            ("[::1]", "::1", None),
            ("[fd00::/8]:443", "fd00::/8", Some("443")),
            ("example.com", "example.com", None),
            ("*.example.com", "*.example.com", None),
            ("localhost", "localhost", None),
            ("any", "any", None),
            ("any:443", "any", Some("443")),
        ];
        for (text, target, ports) in cases {
            assert_eq!(
                entry(text),
                (target.to_owned(), ports.map(str::to_owned)),
                "{text}"
            );
        }
    }

    #[test]
    fn names_are_lowercased_without_trailing_dot() {
        assert_eq!(
            Target::parse("WWW.Example.COM.").unwrap(),
            Target::Name("www.example.com".into())
        );
    }

    /// Found by fuzzing: `private.` (the host) displayed as `private`, which parses as the
    /// named set, so a rendered policy meant something else.
    #[test]
    fn a_host_spelled_like_a_keyword_displays_with_its_dot() {
        for (written, name) in [
            ("private.", "private"),
            ("ANY.", "any"),
            ("Loopback.", "loopback"),
        ] {
            let target = Target::parse(written).unwrap();
            assert_eq!(target, Target::Name(name.into()), "{written}");
            assert_eq!(target.to_string(), format!("{name}."));
            assert_eq!(Target::parse(&target.to_string()).unwrap(), target);
        }
        assert_eq!(Target::parse("private").unwrap().to_string(), "private");
        assert_eq!(
            Target::parse("private.example.").unwrap().to_string(),
            "private.example"
        );
    }

    #[test]
    fn suffix_matches_names_strictly_below_it() {
        let t = Target::parse("*.example.com").unwrap();
        assert!(t.allows_name("a.example.com"));
        assert!(t.allows_name("a.b.EXAMPLE.com."));
        assert!(!t.allows_name("example.com"));
        assert!(!t.allows_name("badexample.com"));
    }

    #[test]
    fn any_matches_every_name_but_not_unspecified_addresses() {
        assert!(Target::Any.allows_name("anything.at.all"));
        assert!(Target::Any.allows_ip("10.0.0.1".parse().unwrap()));
        assert!(!Target::Any.allows_ip("0.0.0.0".parse().unwrap()));
        assert!(!Target::Any.allows_ip("::".parse().unwrap()));
        assert!(!Target::Any.allows_ip("239.1.1.1".parse().unwrap()));
    }

    #[test]
    fn wildcard_must_be_a_whole_leading_label() {
        for text in ["foo.*.com", "*foo.com", "f*o.com", "*.*.com", "example.*"] {
            assert_eq!(
                Target::parse(text).unwrap_err().to_string(),
                "a wildcard is only allowed as a leading \"*.\" label, as in *.example.com",
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_invalid_host_names() {
        let cases = [
            (
                "exa_mple.com",
                "host name \"exa_mple.com\" has an invalid character '_' (use letters, digits, '-' and '.')",
            ),
            ("a..b", "host name \"a..b\" has an empty label"),
            ("-a.com", "host name label \"-a\" starts or ends with '-'"),
            (
                "10.0.0.300",
                "\"10.0.0.300\" is not a valid IP address or host name",
            ),
            ("*", "a bare \"*\" is not a target (write any)"),
        ];
        for (text, message) in cases {
            assert_eq!(
                Target::parse(text).unwrap_err().to_string(),
                message,
                "{text}"
            );
        }
    }
}
