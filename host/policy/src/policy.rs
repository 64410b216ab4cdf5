//! The policy: rules compiled for fast decisions, its builder, and decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use crate::error::Place;
use crate::matcher::{Compiled, Found};
use crate::target::{ip_literal, normalize_name, parse_entry};
use crate::uses::{On, all_uses, expand};
use crate::{
    ErrorKind, Limit, Limits, NamedSet, Origin, PolicyError, PortRange, Rule, Source, Target, Use,
    UseSet, Verdict, normalize,
};

/// A compiled, immutable network policy: deny by default, deny rules win.
///
/// Build one with [`Policy::builder`], or take [`Policy::deny_all`]
/// (also [`Policy::default`]) or the explicitly named
/// [`Policy::inherit_network`]. Decisions cost a few table probes whatever
/// the number of rules.
///
/// ```
/// use capnet_policy::{Policy, Use, Verdict};
///
/// let policy = Policy::builder()
///     .rule(Verdict::Allow, "connect", "10.0.0.0/8:443")?
///     .rule(Verdict::Deny, "connect", "10.0.0.5")?
///     .build();
/// assert!(policy.decide(Use::TcpConnect, "10.1.2.3:443".parse()?).is_allowed());
/// assert!(!policy.decide(Use::TcpConnect, "10.0.0.5:443".parse()?).is_allowed());
/// assert!(!policy.decide(Use::TcpConnect, "10.1.2.3:80".parse()?).is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Policy {
    rules: Vec<Rule>,
    inherit_network: bool,
    compiled: Compiled,
    warnings: Vec<String>,
    /// The uses at least one allow rule grants (every use with `inherit_network`).
    granted: UseSet,
    /// Each library's own rules (`[library.NAME]`), which narrow the app's for that library.
    libraries: BTreeMap<Arc<str>, Policy>,
    /// The declarations of the libraries granted what they declared, which narrow their
    /// grant again.
    declared: BTreeMap<Arc<str>, Policy>,
    /// Every limit for an instance; only those its table sets for a library.
    limits: Limits,
}

impl Default for Policy {
    /// The same as [`Policy::deny_all`]: no rule, nothing allowed.
    fn default() -> Self {
        Policy::deny_all()
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("inherit_network", &self.inherit_network)
            .field("rules", &self.rules)
            .field("libraries", &self.libraries)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy that allows nothing: the default, for guests given no network.
    pub fn deny_all() -> Policy {
        PolicyBuilder::default().build()
    }

    /// The one explicit allow-everything constructor (CLI
    /// `--inherit-network`): with no rules every use is allowed. To keep some
    /// uses denied, build with [`PolicyBuilder::inherit_network`] and deny
    /// rules; deny rules still win.
    pub fn inherit_network() -> Policy {
        PolicyBuilder::default().inherit_network(true).build()
    }

    /// A builder to add files, flags and rules to.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Decides `use_` on a socket address: the local address for binds and
    /// listens, the peer's for connects, accepts, sends and receives.
    ///
    /// The address is normalised first: IPv4-mapped (`::ffff:a.b.c.d`) and
    /// IPv4-compatible (`::a.b.c.d`) addresses fold to IPv4. Unspecified and
    /// multicast addresses match only rules that name them (`0.0.0.0`,
    /// `224.0.0.0/4`), never `any` or a broad network.
    #[inline]
    pub fn decide(&self, use_: Use, addr: SocketAddr) -> Decision<'_> {
        let ip = normalize(addr.ip());
        self.decide_with(self.compiled.find_ip(use_, ip, addr.port()))
    }

    /// Decides `use_` (normally [`Use::Lookup`]) on a host name, compared
    /// lowercase with a trailing dot ignored. A name that is an IP literal
    /// (`10.0.0.1`, `::1`, `[::1]`) is decided like that address, port 0.
    pub fn decide_name(&self, use_: Use, name: &str) -> Decision<'_> {
        self.decide_host(use_, name, 0)
    }

    /// Decides `use_` on a host name and port: a rule naming the host (or a
    /// `*.suffix` above it) with that port, else an `any` rule on every port
    /// (an `any` rule on some ports decides addresses only). This is how a DNS-pinned
    /// `tcp-connect` or `udp-send` is decided once a lookup has tied an
    /// address to the name; [`Policy::decide_name`] is this with port 0
    /// (lookup rules take no ports). An IP literal is decided as the address.
    pub fn decide_host(&self, use_: Use, name: &str, port: u16) -> Decision<'_> {
        let name = normalize_name(name);
        match ip_literal(&name) {
            Some(ip) => {
                let ip = normalize(ip);
                self.decide_with(self.compiled.find_ip(use_, ip, port))
            }
            None => self.decide_with(self.compiled.find_name(use_, &name, port)),
        }
    }

    /// An allow rule of `use_` that covers `ip` on some port, or `None`.
    ///
    /// Deny rules and `inherit-network` are not consulted: this answers
    /// whether the policy itself names the address for the use, which is
    /// what the runtime's DNS-rebinding defence asks before keeping a
    /// private answer. Of the allow rules covering `ip`, the one reported
    /// decides the lowest such port (most specific first, as in
    /// [`Policy::decide`]). The address is normalised as for `decide`, and
    /// unspecified and multicast addresses again match only rules that name
    /// them. A few table probes, like a decision.
    pub fn allow_rule_any_port(&self, use_: Use, ip: IpAddr) -> Option<&Rule> {
        let index = self.compiled.lowest_allow_ip(use_, normalize(ip))?;
        Some(&self.rules[index as usize])
    }

    /// The DNS rebinding defence: why an address a DNS server returned for a name must be
    /// dropped, or `None` to keep it.
    ///
    /// A name from DNS must never point the guest at `loopback`, `private`, `link-local` or
    /// `metadata` space or at an unspecified address, unless the policy inherits the network
    /// or an allow rule of `tcp-connect` or `udp-send` names the address itself (on any port;
    /// deny rules still decide the connect). The reason is the range's word: `unspecified`,
    /// `loopback`, `private`, `link-local` or `metadata`. The address is normalised first, so
    /// `::ffff:127.0.0.1` is dropped as `127.0.0.1` is.
    ///
    /// ```
    /// use capnet_policy::{Policy, Verdict};
    ///
    /// let policy = Policy::builder().rule(Verdict::Allow, "connect", "api.example.com:443")?.build();
    /// assert_eq!(policy.refuses_dns_answer("::ffff:169.254.169.254".parse()?), Some("link-local"));
    /// assert_eq!(policy.refuses_dns_answer("93.184.216.34".parse()?), None);
    /// let named = Policy::builder().rule(Verdict::Allow, "connect", "10.0.0.0/8:443")?.build();
    /// assert_eq!(named.refuses_dns_answer("10.1.2.3".parse()?), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refuses_dns_answer(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = normalize(ip);
        let range = guarded_range(ip)?;
        let named = self.inherit_network
            || PINNED_USES
                .into_iter()
                .any(|u| self.allow_rule_any_port(u, ip).is_some());
        (!named).then_some(range)
    }

    /// Decides `use_` on `addr`, an address lookups tied to the names of `pinned` (a
    /// DNS-pinned grant): how a `tcp-connect` or `udp-send` to an address a lookup returned
    /// is decided, now that the port is known.
    ///
    /// A deny rule naming one of the names wins over everything; then a rule naming the
    /// address; then an allow rule naming one of the names on this port. An answer a DNS
    /// server gave in a range the rebinding defence guards (see
    /// [`Policy::refuses_dns_answer`]) gains nothing from a name, though: it is reached only
    /// where a rule naming the address allows this port. That is where the defence's port
    /// check belongs (a lookup has no port): a rule for `127.0.0.1:8002` keeps a loopback
    /// answer, and never lets a name's rule on port 8001 reach `127.0.0.1:8001`. Names the
    /// host answers itself (`localhost`, /etc/hosts) are trusted as the operator's own. Other
    /// uses are decided by the address alone.
    ///
    /// ```
    /// use capnet_policy::{Pinned, Policy, Use, Verdict};
    ///
    /// let policy = Policy::builder()
    ///     .rule(Verdict::Allow, "connect", "db.example.com:8001")?
    ///     .rule(Verdict::Allow, "connect", "127.0.0.1:8002;8003")?
    ///     .build();
    /// let from_dns = [Pinned { name: "db.example.com", from_dns: true }];
    /// let at = |a: &str| a.parse().unwrap();
    /// assert!(!policy.decide_pinned(Use::TcpConnect, at("127.0.0.1:8001"), from_dns).is_allowed());
    /// assert!(policy.decide_pinned(Use::TcpConnect, at("127.0.0.1:8002"), from_dns).is_allowed());
    /// assert!(policy.decide_pinned(Use::TcpConnect, at("93.184.216.34:8001"), from_dns).is_allowed());
    /// let from_hosts = [Pinned { name: "db.example.com", from_dns: false }];
    /// assert!(policy.decide_pinned(Use::TcpConnect, at("127.0.0.1:8001"), from_hosts).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decide_pinned<'n>(
        &self,
        use_: Use,
        addr: SocketAddr,
        pinned: impl IntoIterator<Item = Pinned<'n>>,
    ) -> Decision<'_> {
        let by_address = self.decide(use_, addr);
        if !PINNED_USES.contains(&use_) {
            return by_address;
        }
        let guarded = guarded_range(normalize(addr.ip())).is_some();
        let mut allow = None;
        for pin in pinned {
            let decision = self.decide_host(use_, pin.name, addr.port());
            match (decision.rule, decision.verdict) {
                (None, _) => {}
                (Some(_), Verdict::Deny) => return decision,
                (Some(_), Verdict::Allow) if pin.from_dns && guarded => {}
                (Some(_), Verdict::Allow) => {
                    allow.get_or_insert(decision);
                }
            }
        }
        match allow {
            Some(decision) if by_address.rule.is_none() => decision,
            _ => by_address,
        }
    }

    /// `udp-bind` on `local`, where the ephemeral bind a UDP client makes before its first
    /// send (the unspecified address, port 0) needs no `udp-bind` rule of its own: it is
    /// allowed, unless a rule decides it, when the policy grants `udp-send` or `udp-receive`,
    /// since every datagram is then checked against those for its peer. A policy with neither
    /// refuses it as any bind.
    ///
    /// ```
    /// use capnet_policy::{Policy, Reason, Use, Verdict};
    ///
    /// let sender = Policy::builder().rule(Verdict::Allow, "udp-send", "127.0.0.1:9000")?.build();
    /// let ephemeral = "0.0.0.0:0".parse()?;
    /// assert_eq!(sender.decide_udp_bind(ephemeral).reason, Reason::EphemeralBind);
    /// assert!(!sender.decide_udp_bind("127.0.0.1:0".parse()?).is_allowed());
    /// let tcp_only = Policy::builder().rule(Verdict::Allow, "connect", "127.0.0.1")?.build();
    /// assert!(!tcp_only.decide_udp_bind(ephemeral).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decide_udp_bind(&self, local: SocketAddr) -> Decision<'_> {
        let decision = self.decide(Use::UdpBind, local);
        let ephemeral = local.ip().is_unspecified() && local.port() == 0;
        if ephemeral
            && decision.reason == Reason::DefaultDeny
            && (self.granted.contains(Use::UdpSend) || self.granted.contains(Use::UdpReceive))
        {
            return Decision {
                verdict: Verdict::Allow,
                rule: None,
                reason: Reason::EphemeralBind,
            };
        }
        decision
    }

    #[inline]
    fn decide_with(&self, found: Option<Found>) -> Decision<'_> {
        // The verdict from the table, not `rule.verdict`: the caller may
        // never look at the rule, and reading it here would be a cache miss.
        if let Some((index, verdict)) = found {
            debug_assert_eq!(self.rules[index as usize].verdict, verdict);
            return Decision {
                verdict,
                rule: Some(&self.rules[index as usize]),
                reason: Reason::Rule,
            };
        }
        if self.inherit_network {
            Decision {
                verdict: Verdict::Allow,
                rule: None,
                reason: Reason::InheritNetwork,
            }
        } else {
            Decision {
                verdict: Verdict::Deny,
                rule: None,
                reason: Reason::DefaultDeny,
            }
        }
    }

    /// Heap bytes of the compiled lookup tables, not counting the rules
    /// themselves ([`Policy::rules`]): for sizing a large policy.
    pub fn table_bytes(&self) -> usize {
        self.compiled.heap_bytes()
    }

    /// The rules, in the order they were added; group words appear expanded.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether some allow rule grants `use_` on some target, or the policy inherits the
    /// network: when not, every `use_` is denied whatever the address. One bit test.
    ///
    /// ```
    /// use capnet_policy::{Policy, Use, Verdict};
    ///
    /// let policy = Policy::builder().rule(Verdict::Allow, "connect", "10.0.0.1:443")?.build();
    /// assert!(policy.grants_any(Use::TcpConnect));
    /// assert!(!policy.grants_any(Use::UdpSend));
    /// // A deny rule grants nothing; inheriting the network grants every use.
    /// let denies = Policy::builder().rule(Verdict::Deny, "udp", "any")?.build();
    /// assert!(!denies.grants_any(Use::UdpSend));
    /// assert!(Policy::inherit_network().grants_any(Use::UdpSend));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grants_any(&self, use_: Use) -> bool {
        self.inherit_network || self.granted.contains(use_)
    }

    /// The rules of library `name` (`[library.NAME]` in a file, `--library-allow NAME=...`),
    /// or `None` when the policy names no such library. A library's uses are allowed only
    /// where both the app's policy and its own allow them; a library the policy does not
    /// name gets nothing.
    pub fn library(&self, name: &str) -> Option<&Policy> {
        self.libraries.get(name)
    }

    /// The declaration that bounds library `name`'s grant, when the policy grants it what it
    /// declared (`grant = "declared"`, `--grant-declared`): its uses are allowed only where
    /// the app's rules, its table (if it has allow rules) and this allow them. A library
    /// with no declaration gets an empty one: nothing.
    pub fn declared(&self, name: &str) -> Option<&Policy> {
        self.declared.get(name)
    }

    /// Every library the policy names, by name, with its rules.
    pub fn libraries(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.libraries
            .iter()
            .map(|(name, policy)| (&**name, policy))
    }

    /// How much an instance under this policy may hold at once: every [`Limit`], the
    /// policy's values or the defaults (`bytes-per-second` has none: no rate unless set). For a library's policy ([`Policy::library`]), only
    /// the limits its own table sets; the instance's apply to the library as well.
    ///
    /// ```
    /// use capnet_policy::{Limit, Policy};
    ///
    /// let policy = Policy::builder()
    ///     .toml("policy.toml", "[limits]\nsockets = 16\n[library.weather.limits]\nlookups = 2\n")?
    ///     .build();
    /// assert_eq!(policy.limits().get(Limit::Sockets), Some(16));
    /// assert_eq!(policy.limits().get(Limit::Lookups), Limit::Lookups.default_value());
    /// let weather = policy.library("weather").unwrap().limits();
    /// assert_eq!((weather.get(Limit::Lookups), weather.get(Limit::Sockets)), (Some(2), None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether uses no rule matches are allowed (`--inherit-network`).
    pub fn is_inherit_network(&self) -> bool {
        self.inherit_network
    }

    /// Problems found at load that do not stop it, such as an empty allow
    /// list that silently grants nothing: `policy.toml:2:1: allow list
    /// "connect" is empty and allows nothing (add targets, or remove the key)`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many compiled rules grant or refuse each use, in [`Use::ALL`]
    /// order, as `(use, allow rules, deny rules)`: for `capnet policy check`.
    pub fn summary(&self) -> Vec<(Use, usize, usize)> {
        Use::ALL
            .into_iter()
            .map(|u| {
                let count = |v: Verdict| {
                    self.rules
                        .iter()
                        .filter(|r| r.verdict == v && r.uses.contains(u))
                        .count()
                };
                (u, count(Verdict::Allow), count(Verdict::Deny))
            })
            .collect()
    }
}

/// The outcome of one check, naming the rule that decided it, for the
/// `access-denied` log line and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The most specific matching rule of the winning verdict, if any.
    pub rule: Option<&'a Rule>,
    /// Why: a rule, or which default applied when none matched.
    pub reason: Reason,
}

impl Decision<'_> {
    /// Whether the use may go ahead.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Why a decision came out the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A rule matched; [`Decision::rule`] names it.
    Rule,
    /// No rule matched and the policy denies by default.
    DefaultDeny,
    /// No rule matched and the policy inherits the host's network.
    InheritNetwork,
    /// No rule matched a UDP client's ephemeral bind, which the policy's `udp-send` or
    /// `udp-receive` rights cover ([`Policy::decide_udp_bind`]).
    EphemeralBind,
}

/// `rule policy.toml:3:5 "connect 127.0.0.1:8080"`,
/// `flag --allow-listen "127.0.0.1:8080"`, `no rule: default deny` or
/// `no rule: inherit-network`.
impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rule, self.reason) {
            (Some(rule), _) => rule.fmt(f),
            (None, Reason::InheritNetwork) => f.write_str("no rule: inherit-network"),
            (None, Reason::EphemeralBind) => {
                f.write_str("no rule: an ephemeral bind, covered by udp-send or udp-receive")
            }
            (None, _) => f.write_str("no rule: default deny"),
        }
    }
}

/// The uses a lookup's answer may be used for under a rule naming the host.
const PINNED_USES: [Use; 2] = [Use::TcpConnect, Use::UdpSend];

/// A name a lookup tied an address to, for [`Policy::decide_pinned`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinned<'a> {
    /// The name looked up.
    pub name: &'a str,
    /// Whether a DNS server gave the answer; false for names the host answers itself
    /// (`localhost`, /etc/hosts), whose answers the rebinding defence trusts.
    pub from_dns: bool,
}

/// The range the DNS rebinding defence guards that `ip` lies in, by its word: `unspecified`,
/// `loopback`, `private`, `link-local` or `metadata`; `None` for a public address.
///
/// ```
/// assert_eq!(capnet_policy::guarded_range("::ffff:10.0.0.1".parse()?), Some("private"));
/// assert_eq!(capnet_policy::guarded_range("93.184.216.34".parse()?), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn guarded_range(ip: IpAddr) -> Option<&'static str> {
    let ip = normalize(ip);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    [
        NamedSet::Loopback,
        NamedSet::Private,
        NamedSet::LinkLocal,
        NamedSet::Metadata,
    ]
    .into_iter()
    .find(|s| s.contains(ip))
    .map(NamedSet::as_str)
}

/// The uses a host-name target may name: the lookup itself and the uses
/// that reach a peer, which a DNS-pinned grant lets reach the addresses the
/// lookup returned.
const NAME_USES: [Use; 3] = [Use::Lookup, Use::TcpConnect, Use::UdpSend];

/// Collects rules from files, CLI flags and code, then compiles them with
/// [`PolicyBuilder::build`]. Every rule is validated as it is added, so a
/// bad one fails at load with its place and what to write instead.
#[derive(Clone, Debug, Default)]
pub struct PolicyBuilder {
    rules: Vec<Rule>,
    inherit_network: bool,
    warnings: Vec<String>,
    /// Each library's rules, in the order they were added.
    libraries: BTreeMap<String, Vec<Rule>>,
    /// The limits set for the instance; defaults fill the rest at build.
    limits: Limits,
    /// The limits set for each library.
    library_limits: BTreeMap<String, Limits>,
    /// The libraries granted what they declare; every library when `grant_declared_all`.
    grant_declared: BTreeSet<String>,
    grant_declared_all: bool,
    /// Each library's declared needs, as allow rules.
    declarations: BTreeMap<String, Vec<Rule>>,
}

impl PolicyBuilder {
    /// Sets whether uses no rule matches are allowed (`--inherit-network`,
    /// the file's `inherit-network`); deny rules still win. The last setting
    /// wins.
    pub fn inherit_network(mut self, yes: bool) -> Self {
        self.inherit_network = yes;
        self
    }

    /// Adds a policy file (TOML); its name as given is used in messages.
    ///
    /// # Errors
    ///
    /// `policy.toml: cannot read: ...` when the file cannot be read, else as
    /// [`PolicyBuilder::toml`].
    pub fn file(self, path: &Path) -> Result<Self, PolicyError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => self.toml(&origin, &text),
            Err(e) => Err(PolicyError::new(
                Place::File { origin },
                None,
                ErrorKind::Read(e),
            )),
        }
    }

    /// Adds a policy in TOML; `origin` is the file name used in messages.
    ///
    /// # Errors
    ///
    /// The first problem, as `origin:line:column: rule "USE TARGET": what is
    /// wrong`: TOML syntax (toml's reason), unknown keys, unknown use words,
    /// or a bad target.
    pub fn toml(mut self, origin: &str, text: &str) -> Result<Self, PolicyError> {
        let file = crate::file::parse(origin, text)?;
        if let Some(yes) = file.inherit_network {
            self.inherit_network = yes;
        }
        let path: Arc<str> = origin.into();
        for (line, column, verdict, word) in file.empty {
            let what = match verdict {
                Verdict::Allow => "allows nothing",
                Verdict::Deny => "denies nothing",
            };
            self.warnings.push(format!(
                "{origin}:{line}:{column}: {verdict} list \"{word}\" is empty and {what} (add targets, or remove the key)"
            ));
        }
        for entry in file.entries {
            let (line, column) = crate::file::line_column(text, entry.span_start);
            let place = || Place::At {
                origin: origin.to_owned(),
                line,
                column,
            };
            let source = |rule_text: String| Source {
                origin: Origin::File {
                    path: path.clone(),
                    line,
                    column,
                },
                text: rule_text,
            };
            let library = entry.library.as_deref();
            self.add(
                library,
                entry.verdict,
                &entry.word,
                &entry.target,
                place,
                source,
            )?;
        }
        for (name, _) in file.libraries {
            self.libraries.entry(name).or_default();
        }
        self.grant_declared.extend(file.grant_declared);
        for (library, limit, value) in file.limits {
            self.limits_of(library.as_deref()).set(limit, value);
        }
        Ok(self)
    }

    /// Adds one CLI flag's rules: `verdict`, a use or group `word`
    /// (`connect`, `listen`, `tcp-bind`, ...) and a comma-separated `list` of
    /// targets. `flag` is the flag's spelling for messages and sources, e.g.
    /// `--allow-connect`.
    ///
    /// # Errors
    ///
    /// The first problem, as `--allow-connect: rule "USE TARGET": what is wrong`.
    pub fn flag(
        mut self,
        flag: &str,
        verdict: Verdict,
        word: &str,
        list: &str,
    ) -> Result<Self, PolicyError> {
        let flag_name: Arc<str> = flag.into();
        for target in list.split(',') {
            let target = target.trim();
            let place = || Place::Flag {
                flag: flag.to_owned(),
            };
            let source = |_rule_text: String| Source {
                origin: Origin::Flag(flag_name.clone()),
                text: target.to_owned(),
            };
            self.add(None, verdict, word, target, place, source)?;
        }
        Ok(self)
    }

    /// Adds one `--library-allow` or `--library-deny` flag: `spec` is `NAME=USE LIST`, as in
    /// `weather=connect 127.0.0.1:8080,api.example.com:443`, giving library NAME the rules
    /// `USE TARGET` for each target of the comma-separated LIST. An entry of the list may
    /// start another use, as in `weather=connect 127.0.0.1:8080, udp-send 127.0.0.1:9000`:
    /// a target never holds a space, so an entry with one is `USE TARGET`, and the entries
    /// after it are that use's until the next.
    ///
    /// # Errors
    ///
    /// A spec not of that shape, a bad library name, or a bad rule, as
    /// `--library-allow: rule "USE TARGET": what is wrong`.
    pub fn library_flag(
        mut self,
        flag: &str,
        verdict: Verdict,
        spec: &str,
    ) -> Result<Self, PolicyError> {
        let place = || Place::Flag {
            flag: flag.to_owned(),
        };
        let shape = || PolicyError::new(place(), None, ErrorKind::LibraryFlag(spec.to_owned()));
        let (name, rule) = spec.split_once('=').ok_or_else(shape)?;
        let name = name.trim();
        check_library_name(name).map_err(|kind| PolicyError::new(place(), None, kind))?;
        let flag_name: Arc<str> = format!("{flag} {name}").into();
        let mut word = None;
        for entry in rule.split(',') {
            let entry = entry.trim();
            let target = match entry.split_once(char::is_whitespace) {
                Some((next, target)) => {
                    word = Some(next);
                    target.trim()
                }
                None => entry,
            };
            let word = word.ok_or_else(shape)?;
            let source = |text: String| Source {
                origin: Origin::Flag(flag_name.clone()),
                text,
            };
            self.add(Some(name), verdict, word, target, place, source)?;
        }
        Ok(self)
    }

    /// Names library `name` with no rules of its own yet: it gets nothing until rules are
    /// added with [`PolicyBuilder::library_rule`].
    ///
    /// # Errors
    ///
    /// When `name` is not a kebab-case label (`weather`, `metrics-client`).
    pub fn library(mut self, name: &str) -> Result<Self, PolicyError> {
        check_library_name(name).map_err(|kind| PolicyError::new(Place::Builder, None, kind))?;
        self.libraries.entry(name.to_owned()).or_default();
        Ok(self)
    }

    /// Adds one rule, `word target`, to library `name`, for embedders and tests.
    ///
    /// # Errors
    ///
    /// As [`PolicyBuilder::rule`], and when `name` is not a kebab-case label.
    pub fn library_rule(
        mut self,
        name: &str,
        verdict: Verdict,
        word: &str,
        target: &str,
    ) -> Result<Self, PolicyError> {
        check_library_name(name).map_err(|kind| PolicyError::new(Place::Builder, None, kind))?;
        let source = |text| Source {
            origin: Origin::Builder,
            text,
        };
        self.add(Some(name), verdict, word, target, || Place::Builder, source)?;
        Ok(self)
    }

    /// Sets the instance's `limit` (`--limit`, a file's `[limits]`), or library `library`'s
    /// when given; the last setting wins.
    ///
    /// # Errors
    ///
    /// A value of 0 or above the limit's largest, or a bad library name.
    pub fn limit(
        mut self,
        library: Option<&str>,
        limit: Limit,
        value: u64,
    ) -> Result<Self, PolicyError> {
        let fail = |kind| PolicyError::new(Place::Builder, None, kind);
        if let Some(name) = library {
            check_library_name(name).map_err(fail)?;
        }
        let value = crate::limits::check_value(limit, i128::from(value)).map_err(fail)?;
        self.limits_of(library).set(limit, value);
        Ok(self)
    }

    /// Adds one `--limit KEY=VALUE` flag (`sockets=256`), or with `library` set one
    /// `--library-limit NAME.KEY=VALUE` flag (`weather.connections=4`).
    ///
    /// # Errors
    ///
    /// A value not of that shape, an unknown limit, a value out of range, a bad library name.
    pub fn limit_flag(
        mut self,
        flag: &str,
        library: bool,
        spec: &str,
    ) -> Result<Self, PolicyError> {
        let place = || Place::Flag {
            flag: flag.to_owned(),
        };
        let (shape, example) = match library {
            true => ("NAME.KEY=VALUE", "weather.connections=4"),
            false => ("KEY=VALUE", "sockets=256"),
        };
        let shape = || {
            let given = spec.to_owned();
            PolicyError::new(
                place(),
                None,
                ErrorKind::LimitFlag {
                    given,
                    shape,
                    example,
                },
            )
        };
        let (key, value) = spec.split_once('=').ok_or_else(shape)?;
        let (name, key) = match library {
            true => {
                let (name, key) = key.trim().split_once('.').ok_or_else(shape)?;
                check_library_name(name).map_err(|kind| PolicyError::new(place(), None, kind))?;
                (Some(name), key)
            }
            false => (None, key),
        };
        let key = key.trim();
        let limit = Limit::from_name(key).ok_or_else(|| {
            PolicyError::new(place(), None, ErrorKind::UnknownLimit(key.to_owned()))
        })?;
        let value: i128 = value.trim().parse().map_err(|_| {
            let kind = ErrorKind::LimitNotANumber {
                limit: limit.name(),
                value: value.trim().to_owned(),
                example: limit.example(),
            };
            PolicyError::new(place(), None, kind)
        })?;
        let value = crate::limits::check_value(limit, value)
            .map_err(|kind| PolicyError::new(place(), None, kind))?;
        self.limits_of(name).set(limit, value);
        Ok(self)
    }

    /// The limits a setting of `library` (or the instance's) goes to; naming a library makes
    /// it known, as a table of its own does.
    fn limits_of(&mut self, library: Option<&str>) -> &mut Limits {
        match library {
            Some(name) => {
                self.libraries.entry(name.to_owned()).or_default();
                self.library_limits.entry(name.to_owned()).or_default()
            }
            None => &mut self.limits,
        }
    }

    /// Adds one rule written as one line of a text other than a policy file (a library's
    /// declared needs), `USE TARGET[:PORTS]`, to the app's rules or to library `library`'s.
    /// Errors and the rule's source name `origin:line:column`, as a policy file's do.
    ///
    /// # Errors
    ///
    /// As for a file: `origin:line:column: rule "USE TARGET": what is wrong`.
    pub fn rule_at(
        mut self,
        library: Option<&str>,
        (origin, line, column): (&str, u32, u32),
        verdict: Verdict,
        text: &str,
    ) -> Result<Self, PolicyError> {
        let place = || Place::At {
            origin: origin.to_owned(),
            line,
            column,
        };
        if let Some(name) = library {
            check_library_name(name).map_err(|kind| PolicyError::new(place(), None, kind))?;
        }
        let text = text.trim();
        let (word, target) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let path: Arc<str> = origin.into();
        let source = |text| Source {
            origin: Origin::File {
                path: path.clone(),
                line,
                column,
            },
            text,
        };
        self.add(library, verdict, word, target.trim(), place, source)?;
        Ok(self)
    }

    /// Grants library `library` (every library, for `None`: `--grant-declared`) exactly what
    /// its component declares, within the app's rules and its own table.
    pub fn grant_declared(mut self, library: Option<&str>) -> Self {
        match library {
            Some(name) => {
                self.grant_declared.insert(name.to_owned());
            }
            None => self.grant_declared_all = true,
        }
        self
    }

    /// Adds one need of library `library`'s declaration, written at `origin:line:column`.
    ///
    /// # Errors
    /// As [`PolicyBuilder::rule_at`].
    pub fn declared_rule(
        mut self,
        library: &str,
        at: (&str, u32, u32),
        text: &str,
    ) -> Result<Self, PolicyError> {
        let parsed = Policy::builder().rule_at(None, at, Verdict::Allow, text)?;
        self.declarations
            .entry(library.to_owned())
            .or_default()
            .extend(parsed.rules);
        Ok(self)
    }

    /// Adds one rule written as one string, `USE TARGET[:PORTS]` (`"connect 10.0.0.0/8:443"`),
    /// the way a guest hands rules to `capnet:sockets/attenuate`.
    ///
    /// # Errors
    ///
    /// As [`PolicyBuilder::rule`]; a text without a target is an empty target.
    pub fn rule_text(self, verdict: Verdict, text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        let (word, target) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        self.rule(verdict, word, target.trim())
    }

    /// Adds one rule, `word target` (`"connect"`, `"10.0.0.0/8:443"`), for
    /// embedders and tests.
    ///
    /// # Errors
    ///
    /// As for a file, without a place: `rule "USE TARGET": what is wrong`.
    pub fn rule(mut self, verdict: Verdict, word: &str, target: &str) -> Result<Self, PolicyError> {
        let source = |text| Source {
            origin: Origin::Builder,
            text,
        };
        self.add(None, verdict, word, target, || Place::Builder, source)?;
        Ok(self)
    }

    /// Compiles the rules into lookup tables. A library rule that no allow rule of the app
    /// overlaps grants nothing (a library gets the intersection) and is reported in
    /// [`Policy::warnings`].
    pub fn build(self) -> Policy {
        let limits = Limits::defaults().overridden_by(&self.limits);
        let mut policy = Policy::compile(self.rules, self.inherit_network, self.warnings, limits);
        let mut libraries = self.libraries;
        let mut declarations = self.declarations;
        if self.grant_declared_all {
            for name in declarations.keys() {
                libraries.entry(name.clone()).or_default();
            }
        }
        for (name, rules) in &mut libraries {
            if !(self.grant_declared_all || self.grant_declared.contains(name)) {
                continue;
            }
            let declared = declarations.remove(name).unwrap_or_default();
            // A table with no allow rules of its own is the declaration, its deny rules kept.
            if !rules.iter().any(|r| r.verdict == Verdict::Allow) {
                rules.extend(declared.iter().cloned());
            }
            let declared = Policy::compile(declared, false, Vec::new(), Limits::default());
            policy.declared.insert(name.as_str().into(), declared);
        }
        for (name, rules) in libraries {
            let mut warned: Option<&Source> = None;
            for rule in rules.iter().filter(|r| r.verdict == Verdict::Allow) {
                // A group word's rules share a source: one warning for all of them.
                if warned == Some(&rule.source) || policy.overlaps_an_allow(rule) {
                    continue;
                }
                let place = match &rule.source.origin {
                    Origin::File { path, line, column } => format!("{path}:{line}:{column}: "),
                    Origin::Flag(flag) => format!("{flag}: "),
                    Origin::Builder => String::new(),
                };
                policy.warnings.push(format!(
                    "{place}library {name}: rule \"{}\" is never granted: the app allows no {} that overlaps it, and a library gets only what the app has",
                    rule.source.text, rule.uses
                ));
                warned = Some(&rule.source);
            }
            let limits = self.library_limits.get(&name).copied().unwrap_or_default();
            let library = Policy::compile(rules, false, Vec::new(), limits);
            policy.libraries.insert(name.into(), library);
        }
        policy
    }
}

impl Policy {
    fn compile(
        rules: Vec<Rule>,
        inherit_network: bool,
        warnings: Vec<String>,
        limits: Limits,
    ) -> Policy {
        let compiled = Compiled::build(&rules);
        #[cfg(feature = "tracing")]
        tracing::debug!(
            rules = rules.len(),
            inherit_network,
            "compiled network policy"
        );
        let granted: Vec<Use> = Use::ALL
            .into_iter()
            .filter(|u| {
                rules
                    .iter()
                    .any(|r| r.verdict == Verdict::Allow && r.uses.contains(*u))
            })
            .collect();
        let granted = UseSet::of(&granted);
        Policy {
            rules,
            inherit_network,
            compiled,
            warnings,
            granted,
            libraries: BTreeMap::new(),
            declared: BTreeMap::new(),
            limits,
        }
    }

    /// Whether some allow rule of this policy could grant part of what `rule` names: a use,
    /// ports and a target in common. A host name is taken to overlap any address (its answers
    /// are not known at load). A load-time scan, for warnings only.
    fn overlaps_an_allow(&self, rule: &Rule) -> bool {
        self.inherit_network
            || self.rules.iter().any(|a| {
                a.verdict == Verdict::Allow
                    && rule.uses.iter().any(|u| a.uses.contains(u))
                    && a.ports.lo() <= rule.ports.hi()
                    && rule.ports.lo() <= a.ports.hi()
                    && targets_overlap(&a.target, &rule.target)
            })
    }
}

/// Whether two targets share an address or a name; see [`Policy::overlaps_an_allow`].
fn targets_overlap(a: &Target, b: &Target) -> bool {
    let nets = |t: &Target| -> Option<Vec<crate::IpNet>> {
        match t {
            Target::Ip(net) => Some(vec![*net]),
            Target::Set(set) => Some(set.nets().to_vec()),
            _ => None,
        }
    };
    let under = |name: &str, suffix: &str| {
        name.strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.'))
    };
    match (a, b) {
        (Target::Any, _) | (_, Target::Any) => true,
        (Target::Name(x), Target::Name(y)) => x == y,
        (Target::Name(n), Target::Suffix(s)) | (Target::Suffix(s), Target::Name(n)) => under(n, s),
        (Target::Suffix(x), Target::Suffix(y)) => x == y || under(x, y) || under(y, x),
        _ => match (nets(a), nets(b)) {
            (Some(xs), Some(ys)) => xs.iter().any(|x| {
                ys.iter()
                    .any(|y| x.contains(y.addr()) || y.contains(x.addr()))
            }),
            // A name against addresses: its answers may be anywhere.
            _ => true,
        },
    }
}

/// Checks that a library name is a kebab-case label, as component import names are.
pub(crate) fn check_library_name(name: &str) -> Result<(), ErrorKind> {
    let ok = !name.is_empty()
        && name.split('-').all(|word| {
            word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(ErrorKind::LibraryName(name.to_owned()))
    }
}

impl PolicyBuilder {
    /// Validates `word target` and pushes the rules it expands to.
    fn add(
        &mut self,
        library: Option<&str>,
        verdict: Verdict,
        word: &str,
        target: &str,
        place: impl Fn() -> Place,
        source: impl Fn(String) -> Source,
    ) -> Result<(), PolicyError> {
        let Some(parts) = expand(word, verdict) else {
            return Err(PolicyError::new(
                place(),
                None,
                ErrorKind::UnknownUse(word.to_owned()),
            ));
        };
        let rule_text = match target {
            "" => word.to_owned(),
            _ => format!("{word} {target}"),
        };
        let fail = |kind| PolicyError::new(place(), Some(rule_text.clone()), kind);
        let entry = parse_entry(target).map_err(fail)?;
        let uses = all_uses(parts);
        if uses.contains(Use::Lookup) && entry.ports.is_some() {
            return Err(fail(ErrorKind::PortsOnLookup(entry.host_text.to_owned())));
        }
        if entry.target.is_name() && uses.iter().any(|u| !NAME_USES.contains(&u)) {
            return Err(fail(ErrorKind::NameNeedsLookup));
        }
        let source = source(rule_text.clone());
        let rules = match library {
            Some(name) => self.libraries.entry(name.to_owned()).or_default(),
            None => &mut self.rules,
        };
        let ranges = entry.ports.clone().unwrap_or_else(|| vec![PortRange::ANY]);
        for part in parts {
            match part.on {
                On::Target => {
                    for &ports in &ranges {
                        rules.push(Rule {
                            verdict,
                            uses: part.uses,
                            target: entry.target.clone(),
                            ports,
                            source: source.clone(),
                        });
                    }
                }
                On::AnyPeer => rules.push(Rule {
                    verdict,
                    uses: part.uses,
                    target: Target::Any,
                    ports: PortRange::ANY,
                    source: source.clone(),
                }),
            }
        }
        // A connect rule naming a host also allows looking it up (the
        // DNS-pinned grant); a deny of connecting to it denies the lookup.
        if entry.target.is_name() && !uses.contains(Use::Lookup) {
            rules.push(Rule {
                verdict,
                uses: UseSet::of(&[Use::Lookup]),
                target: entry.target.clone(),
                ports: PortRange::ANY,
                source,
            });
        }
        Ok(())
    }
}
