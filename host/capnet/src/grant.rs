//! A grant: the authority a `network` handle carries, checked before every system call.
//!
//! Which grant decides a call is settled here, in one place for every front: the instance's
//! root grant (its policy), narrowed by a chain of [`Scope`]s: a library's own rules when the
//! `network` came from that library's named import, and the rules a guest derived a `network`
//! with (`capnet:sockets/attenuate`). A use is allowed only when the root and every scope of
//! the chain allow it; a deny anywhere wins, and a revoked scope denies everything.

#[cfg(test)]
mod escapes;
mod learn;

pub use learn::{Learned, LearnedTarget, Recorder};

use crate::limit::{Held, Holders, Usage};
use crate::rate::Bucket;
use crate::revoke::{Closable, Opened, Registry};
use crate::socket::ErrorCode;
use crate::socket::lookup::Resolver;
use capnet_policy::{Decision, Limit, Pinned, Policy, Reason, Use, UseSet, Verdict};
use learn::Subject;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The authority of a `network` resource, held too by every socket bound or connected
/// through it: the instance's policy, narrowed by a scope chain. Cloning is cheap; two grants
/// are the same authority when they share the policy slot and the scope.
#[derive(Clone, Debug)]
pub struct Grant {
    policy: PolicyHandle,
    instance: Arc<str>,
    dns: Arc<Dns>,
    /// The innermost narrowing; `None` for the instance's root grant.
    scope: Option<Arc<Scope>>,
}

/// One narrowing of a grant. Its uses are the intersection of its parent's and its own rules.
#[derive(Debug)]
pub(crate) struct Scope {
    /// How decision logs name the grant: `weather`, `weather/derived-2`, `derived-1`.
    label: Arc<str>,
    rules: ScopeRules,
    parent: Option<Arc<Scope>>,
    /// Set by the scope's revoker: every later check through it is denied.
    revoked: AtomicBool,
    /// The library this scope is, or lies within, and what that library holds.
    library: Option<(Arc<str>, Arc<Usage>)>,
}

#[derive(Debug)]
enum ScopeRules {
    /// A library's table of the instance's policy, read at every check so that a reload
    /// changes it with the rest of the policy.
    Library(Arc<str>),
    /// Rules a guest gave when it derived a `network`; they never change.
    Derived(Box<Policy>),
}

impl Scope {
    /// `library weather's table` or `grant derived-1`, for messages.
    fn whose_rules(&self) -> String {
        match &self.rules {
            ScopeRules::Library(name) => format!("library {name}'s table"),
            ScopeRules::Derived(_) => format!("grant {}", self.label),
        }
    }

    /// The scope's own rules under `root`, or why it has none to decide with.
    fn rules<'p>(&'p self, root: &'p Policy) -> Result<&'p Policy, Because<'p>> {
        if self.revoked.load(Ordering::Relaxed) {
            return Err(Because::Revoked(self.label.clone()));
        }
        match &self.rules {
            ScopeRules::Library(name) => root
                .library(name)
                .ok_or_else(|| Because::NoSuchLibrary(name.clone())),
            ScopeRules::Derived(rules) => Ok(rules),
        }
    }
}

/// Whose rules lack every use of a kind ([`Grant::check_kind`]).
enum Lacking<'p> {
    /// The app's policy grants none of them.
    App,
    /// This scope's rules grant none of those the app grants.
    Scope(&'p Scope),
    /// A scope has no rules to grant with: revoked, or a library the policy does not name.
    NoRules(Because<'p>),
}

/// Numbers derived grants in logs, per process.
static DERIVED: AtomicU64 = AtomicU64::new(1);

/// Why a check came out as it did, for the log line.
enum Because<'p> {
    /// A layer's decision: the root's, or the scope's that settled it.
    Decision(Decision<'p>),
    /// The app allowed it (`app`), and a scope of the chain did not (`by`): said in full,
    /// since "default deny" alone leaves a user who reads the app's rules puzzled.
    Narrowed {
        scope: &'p Scope,
        app: Decision<'p>,
        by: Decision<'p>,
    },
    /// A scope of the chain was revoked.
    Revoked(Arc<str>),
    /// The policy names no such library (it may have been reloaded without it).
    NoSuchLibrary(Arc<str>),
    /// The library is granted what it declared, and its declaration does not cover the use.
    NotDeclared(Arc<str>),
    /// Only the default denied it, and the run is learning: allowed and recorded.
    Learned,
}

impl Because<'_> {
    fn is_allowed(&self) -> bool {
        matches!(self, Because::Decision(d) if d.is_allowed()) || matches!(self, Because::Learned)
    }

    /// Whether a rule or a revocation denied it, not a default (nor a library table a
    /// learning run has yet to write).
    fn denied_by_rule(&self) -> bool {
        match self {
            Because::Decision(d) | Because::Narrowed { by: d, .. } => {
                !d.is_allowed() && d.reason == Reason::Rule
            }
            // A declaration is the library's own word on what it needs: learning never widens it.
            Because::Revoked(_) | Because::NotDeclared(_) => true,
            Because::NoSuchLibrary(_) | Because::Learned => false,
        }
    }
}

/// The unspecified address and port 0: the bind a UDP client's first send makes.
fn is_ephemeral(addr: SocketAddr) -> bool {
    addr.ip().is_unspecified() && addr.port() == 0
}

impl fmt::Display for Because<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Because::Decision(d) => d.fmt(f),
            Because::Narrowed { scope, app, by } => write!(
                f,
                "the app allows it ({app}); {} does not ({by})",
                scope.whose_rules()
            ),
            Because::Revoked(label) => write!(f, "grant {label} was revoked"),
            Because::NoSuchLibrary(name) => {
                write!(f, "no rule: the policy has no [library.{name}] table")
            }
            Because::NotDeclared(name) => write!(f, "not declared by {name}"),
            Because::Learned => f.write_str("no rule: learned (--learn)"),
        }
    }
}

/// The policy of one component instance, replaceable while it runs.
///
/// Every check reads the policy current at that moment: after [`PolicyHandle::replace`], each
/// later bind, listen, accept, connect, send, receive and lookup of every `network` of the
/// instance is decided by the new policy, all at once; what was decided before stands (a
/// connection accepted stays open). Policies themselves are immutable, so a check never sees
/// half of one and half of the other.
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<Slot>);

#[derive(Debug)]
struct Slot {
    policy: RwLock<Arc<Policy>>,
    /// Every listener and connection of the instance, for revocation.
    opened: Registry,
    /// What the instance holds against its limits.
    usage: Arc<Usage>,
    /// What each of its libraries holds, by name: one count per library however many
    /// `network`s its import handed out.
    library_usage: Mutex<HashMap<Arc<str>, Arc<Usage>>>,
    /// Set in learn mode: what only the default denies is allowed and recorded here.
    recorder: Option<Arc<Recorder>>,
}

impl PolicyHandle {
    pub(crate) fn new(policy: Arc<Policy>, recorder: Option<Arc<Recorder>>) -> Self {
        let usage = Arc::new(Usage::default());
        usage
            .bucket
            .set_rate(policy.limits().get(Limit::BytesPerSecond));
        Self(Arc::new(Slot {
            policy: RwLock::new(policy),
            opened: Registry::default(),
            usage,
            library_usage: Mutex::default(),
            recorder,
        }))
    }

    /// The learn mode's recorder, when the instance is learning.
    fn recorder(&self) -> Option<&Recorder> {
        self.0.recorder.as_deref()
    }

    /// The policy checks are decided by now.
    pub fn current(&self) -> Arc<Policy> {
        self.read().clone()
    }

    /// The current policy, held for one check: no reference count is touched, which matters
    /// on the per-datagram checks of UDP.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<Policy>> {
        self.0.policy.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `policy` the one every later check is decided by; returns the one it replaces.
    pub fn replace(&self, policy: impl Into<Arc<Policy>>) -> Arc<Policy> {
        let policy = policy.into();
        let rules = policy.rules().len();
        let old = std::mem::replace(
            &mut *self.0.policy.write().unwrap_or_else(|e| e.into_inner()),
            policy,
        );
        self.set_rates();
        tracing::info!(target: "capnet::policy", rules, "policy replaced");
        old
    }

    /// Sets every bucket's rate from the current policy: the data path reads the rates
    /// there, never the policy. Under the library lock and then the policy's read lock, the
    /// order [`Grant::library`] takes them in: of two reloads, the one that sets last reads
    /// the policy the last swap left, and a library's bucket made meanwhile is set either
    /// there or here.
    fn set_rates(&self) {
        let libraries = self
            .0
            .library_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let policy = self.read();
        self.0
            .usage
            .bucket
            .set_rate(policy.limits().get(Limit::BytesPerSecond));
        for (name, usage) in libraries.iter() {
            usage.bucket.set_rate(library_rate(&policy, name));
        }
    }

    /// As [`PolicyHandle::replace`], and then revokes what the new policy refuses: every
    /// listener whose `tcp-listen` and every connection whose `tcp-connect` or `tcp-accept` it
    /// would now deny is closed (the peer sees the end of the stream), each closing logged as
    /// a decision. Returns the old policy and how many were closed.
    ///
    /// A plain [`PolicyHandle::replace`] decides later checks only; this is for a reload that
    /// must also take back what was granted (`capnet run --revoke-on-reload`).
    pub fn replace_revoking(&self, policy: impl Into<Arc<Policy>>) -> (Arc<Policy>, usize) {
        let old = self.replace(policy);
        let closed = self
            .0
            .opened
            .close_where(|opened| opened.grant.check(opened.use_, opened.addr).is_err());
        tracing::info!(target: "capnet::policy", closed, "revoked what the new policy refuses");
        (old, closed)
    }

    /// Remembers a listener or connection opened under `grant`, until the registration drops.
    /// Whether `self` and `other` are handles of one policy slot.
    fn same(&self, other: &PolicyHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn register(&self, opened: Opened) -> Registration {
        let key = self.0.opened.insert(opened);
        Registration {
            handle: self.clone(),
            key,
        }
    }
}

/// The `bytes-per-second` a policy sets for library `name`, if any.
fn library_rate(policy: &Policy, name: &str) -> Option<u64> {
    policy
        .library(name)
        .and_then(|p| p.limits().get(Limit::BytesPerSecond))
}

/// Keeps a listener or connection in its instance's registry while it lives.
pub(crate) struct Registration {
    handle: PolicyHandle,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.handle.0.opened.remove(self.key);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Registration({})", self.key)
    }
}

/// Takes back a derived grant: after [`Revoker::revoke`], every check through the derived
/// `network`, the networks derived from it and the sockets opened through them is denied,
/// and their listeners and connections are closed. Dropping a revoker revokes nothing.
#[derive(Debug)]
pub struct Revoker {
    scope: Arc<Scope>,
    handle: PolicyHandle,
}

impl Revoker {
    /// Revokes the grant; returns how many listeners and connections it closed. Revoking
    /// twice closes nothing more.
    pub fn revoke(&self) -> usize {
        self.scope.revoked.store(true, Ordering::SeqCst);
        let closed = self
            .handle
            .0
            .opened
            .close_where(|opened| opened.grant.is_within(&self.scope));
        let label = &*self.scope.label;
        tracing::info!(
            target: "capnet::policy",
            closed,
            capnet.library = label,
            "revoked grant {label}"
        );
        closed
    }
}

/// The DNS side of one instance's grant: its resolver, and the addresses lookups returned,
/// each pinned to its name until the answer's TTL runs out (DNS-pinned grants).
#[derive(Debug)]
pub(crate) struct Dns {
    resolver: Resolver,
    pins: Mutex<Pins>,
}

/// Each answered address, with the names it was the answer for.
type Pins = HashMap<IpAddr, Vec<Pin>>;

/// One name an address was the answer for.
#[derive(Debug)]
struct Pin {
    name: Arc<str>,
    /// When the answer's TTL runs out.
    until: Instant,
    /// Whether a DNS server gave it, not the host itself (`localhost`, /etc/hosts).
    from_dns: bool,
}

impl Dns {
    /// Lookups through `name_servers` (`None`: the system's), nothing pinned yet.
    pub(crate) fn new(name_servers: Option<Vec<SocketAddr>>) -> Self {
        Self {
            resolver: Resolver::new(name_servers),
            pins: Mutex::default(),
        }
    }
}

impl Grant {
    /// A grant with the system's resolver (the context builds grants with `with_dns`).
    #[cfg(test)]
    pub(crate) fn new(policy: Arc<Policy>, instance: Arc<str>) -> Self {
        Self::with_dns(PolicyHandle::new(policy, None), instance, Dns::new(None))
    }

    pub(crate) fn with_dns(policy: PolicyHandle, instance: Arc<str>, dns: Dns) -> Self {
        Self {
            policy,
            instance,
            dns: Arc::new(dns),
            scope: None,
        }
    }

    /// This grant narrowed to library `name`'s table of the policy: what the library's named
    /// import of `instance-network` hands out.
    pub(crate) fn library(&self, name: &str) -> Grant {
        let name: Arc<str> = Arc::from(name);
        let usage = {
            let mut libraries = self
                .policy
                .0
                .library_usage
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let usage = libraries.entry(name.clone()).or_default();
            // Under the lock, as a reload sets the rates (`PolicyHandle::set_rates`).
            usage
                .bucket
                .set_rate(library_rate(&self.policy.read(), &name));
            usage.clone()
        };
        let rules = ScopeRules::Library(name.clone());
        self.narrowed(name.clone(), rules, Some((name, usage)))
    }

    /// This grant narrowed by `rules` (`capnet:sockets/attenuate`), with the revoker that
    /// takes the narrowed grant back.
    pub(crate) fn derive(&self, rules: Policy) -> (Grant, Revoker) {
        let n = DERIVED.fetch_add(1, Ordering::Relaxed);
        let label = match &self.scope {
            Some(parent) => format!("{}/derived-{n}", parent.label),
            None => format!("derived-{n}"),
        };
        // A grant derived inside a library counts against that library.
        let library = self.scope.as_ref().and_then(|s| s.library.clone());
        let rules = ScopeRules::Derived(Box::new(rules));
        let grant = self.narrowed(Arc::from(label), rules, library);
        let revoker = Revoker {
            scope: grant.scope.clone().expect("a derived grant has a scope"),
            handle: self.policy.clone(),
        };
        (grant, revoker)
    }

    fn narrowed(
        &self,
        label: Arc<str>,
        rules: ScopeRules,
        library: Option<(Arc<str>, Arc<Usage>)>,
    ) -> Grant {
        Grant {
            scope: Some(Arc::new(Scope {
                label,
                rules,
                parent: self.scope.clone(),
                revoked: AtomicBool::new(false),
                library,
            })),
            ..self.clone()
        }
    }

    /// How many scopes narrow this grant.
    pub(crate) fn depth(&self) -> usize {
        std::iter::successors(self.scope.as_deref(), |s| s.parent.as_deref()).count()
    }

    /// The library or derived grant decision logs name, `None` for the instance's own.
    fn label(&self) -> Option<&str> {
        self.scope.as_deref().map(|s| &*s.label)
    }

    /// Whether `scope` is this grant's scope or one of its ancestors.
    fn is_within(&self, scope: &Arc<Scope>) -> bool {
        let mut next = self.scope.as_ref();
        while let Some(s) = next {
            if Arc::ptr_eq(s, scope) {
                return true;
            }
            next = s.parent.as_ref();
        }
        false
    }

    /// Counts one of `limit` (sockets, connections, lookups, calls in flight) against the
    /// instance and the library, until the returned [`Held`] drops; past a limit, `call` is
    /// refused with the limit's code (`new-socket-limit`; `temporary-resolver-failure` for
    /// lookups, `out-of-memory` for calls), logged as a decision naming the limit.
    pub(crate) fn hold(&self, limit: Limit, call: &str) -> Result<Held, ErrorCode> {
        let policy = self.policy.read();
        let library = self.scope.as_ref().and_then(|s| s.library.as_ref());
        let holders = Holders {
            instance: (&self.policy.0.usage, policy.limits()),
            library: library.map(|(name, usage)| (usage, policy.library(name).map(|p| p.limits()))),
        };
        Held::take(limit, holders).map_err(|refused| {
            let code = match limit {
                Limit::Lookups => ErrorCode::TemporaryResolverFailure,
                // The host will hold no more for the instance: "out of buffers".
                Limit::CallsInFlight => ErrorCode::OutOfMemory,
                _ => ErrorCode::NewSocketLimit,
            };
            let whose = match (refused.by_library, library) {
                (true, Some((name, _))) => format!("limit of library {name}"),
                _ => "limit".to_owned(),
            };
            self.log_limit(
                call,
                code,
                &format!("{whose} {} = {}", refused.limit, refused.max),
            );
            code
        })
    }

    /// Logs `call` refused with `code` past the limit `rule` names, as a decision.
    fn log_limit(&self, call: &str, code: ErrorCode, rule: &str) {
        tracing::info!(
            target: "capnet::policy",
            instance = &*self.instance,
            capnet.library = self.label(),
            capnet.use = call,
            capnet.addr = "any",
            capnet.verdict = "deny",
            capnet.rule = rule,
            "denied {call}: {} ({rule})",
            code.as_str()
        );
    }

    /// Refuses `call` because one socket has `max` such calls pending, its `limit`: logged as
    /// a decision naming the limit, `out-of-memory` for the guest.
    pub(crate) fn refuse_on_socket(&self, call: &str, limit: Limit, max: u64) -> ErrorCode {
        let code = ErrorCode::OutOfMemory;
        self.log_limit(call, code, &format!("limit {limit} = {max} on one socket"));
        code
    }

    /// Wakes `cx` when the instance or the library gives a count back.
    pub(crate) fn wake_on_room(&self, cx: &std::task::Context<'_>) {
        self.policy.0.usage.wake_on_give_back(cx);
        if let Some(usage) = self.library_usage() {
            usage.wake_on_give_back(cx);
        }
    }

    /// The `bytes-per-second` buckets this grant's bytes are counted in: the instance's, and
    /// its library's when the grant is a library's.
    #[inline]
    pub(crate) fn buckets(&self) -> (&Bucket, Option<&Bucket>) {
        (
            &self.policy.0.usage.bucket,
            self.library_usage().map(|usage| &usage.bucket),
        )
    }

    /// What holds those buckets, for a stream to keep one step away.
    pub(crate) fn usages(&self) -> (Arc<Usage>, Option<Arc<Usage>>) {
        (self.policy.0.usage.clone(), self.library_usage().cloned())
    }

    /// The instance's name, for logs.
    pub(crate) fn instance_name(&self) -> &str {
        &self.instance
    }

    /// The library this grant is, or lies within, for logs.
    pub(crate) fn library_name(&self) -> Option<&str> {
        self.scope
            .as_ref()
            .and_then(|s| s.library.as_ref())
            .map(|(name, _)| &**name)
    }

    #[inline]
    fn library_usage(&self) -> Option<&Arc<Usage>> {
        self.scope
            .as_ref()
            .and_then(|s| s.library.as_ref())
            .map(|(_, usage)| usage)
    }

    /// The value of a limit that shapes each call (`stream-buffer`, `datagrams`): the
    /// instance's, or the library's where it sets a smaller one.
    pub(crate) fn limit(&self, limit: Limit) -> u64 {
        let policy = self.policy.read();
        let instance = policy
            .limits()
            .get(limit)
            .or_else(|| limit.default_value())
            .unwrap_or(u64::MAX);
        let library = self
            .scope
            .as_ref()
            .and_then(|s| s.library.as_ref())
            .and_then(|(name, _)| policy.library(name))
            .and_then(|p| p.limits().get(limit));
        library.map_or(instance, |l| l.min(instance))
    }

    /// Whether this is the instance's own grant, narrowed by no library or derivation.
    pub(crate) fn is_root(&self) -> bool {
        self.scope.is_none()
    }

    /// Whether a scope of the chain was revoked: sockets opened through it give up.
    pub(crate) fn is_revoked(&self) -> bool {
        let mut next = self.scope.as_deref();
        while let Some(s) = next {
            if s.revoked.load(Ordering::Relaxed) {
                return true;
            }
            next = s.parent.as_deref();
        }
        false
    }

    /// Keeps `what`, opened under this grant for `use_` on `addr`, closable by a revoker of
    /// the grant and by a reload that revokes, for as long as the registration lives.
    pub(crate) fn register(&self, use_: Use, addr: SocketAddr, what: Closable) -> Registration {
        self.policy.register(Opened {
            grant: self.clone(),
            use_,
            addr,
            what,
        })
    }

    /// The resolver this grant's lookups go through, one per instance.
    pub(crate) fn resolver(&self) -> &Resolver {
        &self.dns.resolver
    }

    /// Filters a lookup's answers for `name` and pins the rest to it for `ttl`.
    ///
    /// DNS rebinding defence ([`Policy::refuses_dns_answer`]): an answer in `loopback`,
    /// `private`, `link-local`, `metadata` or the unspecified addresses is dropped, and the drop
    /// logged, unless this grant, the one that looked the name up, allows connecting to or
    /// sending to that address by a rule of its own on some port: the app's policy and every
    /// scope of the chain (a library's table) must. The port is decided at the connect or
    /// send, where there is one: there a kept answer is reached only on a port a rule naming
    /// the address allows ([`Policy::decide_pinned`]). `from_dns` is false for names the
    /// system answers locally (`localhost`, /etc/hosts), whose answers are kept.
    pub(crate) fn admit_answers(
        &self,
        name: &str,
        answers: Vec<(IpAddr, Duration)>,
        from_dns: bool,
    ) -> Vec<IpAddr> {
        let now = Instant::now();
        let mut kept = Vec::new();
        // The policy before the pins, in the order `check` takes them.
        let policy = self.policy.read();
        let mut pins = self.dns.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.retain(|_, names| {
            names.retain(|pin| pin.until > now);
            !names.is_empty()
        });
        for (ip, ttl) in answers {
            let ip = capnet_policy::normalize(ip);
            // A learning run keeps every guarded answer, and learns a connect to it by address.
            if from_dns
                && let Some(range) = capnet_policy::guarded_range(ip)
                && !self.learning_keeps(ip)
                && let Some(refused_by) = self.refuses_answer(&policy, ip)
            {
                let whose = match refused_by {
                    None => String::new(),
                    Some(scope) => format!(" of {}", scope.whose_rules()),
                };
                tracing::info!(
                    target: "capnet::policy",
                    instance = &*self.instance,
                    capnet.library = self.label(),
                    capnet.use = "lookup",
                    capnet.addr = name,
                    capnet.answer = %ip,
                    capnet.verdict = "drop",
                    capnet.rule = "dns rebinding defence",
                    "dropped answer {ip} for {name}: {range} address from DNS and no rule{whose} allows it"
                );
                continue;
            }
            if !kept.contains(&ip) {
                kept.push(ip);
                pins.entry(ip).or_default().push(Pin {
                    name: Arc::from(name),
                    until: now + ttl,
                    from_dns,
                });
            }
        }
        if let Some(recorder) = self.policy.recorder() {
            recorder.answered(name, &kept);
        }
        kept
    }

    /// The handle through which the instance's policy is replaced.
    pub(crate) fn policy_handle(&self) -> &PolicyHandle {
        &self.policy
    }

    /// Whether two grants are one authority (the `network` given to bind and connect must match).
    pub(crate) fn same_authority(&self, other: &Grant) -> bool {
        self.policy.same(&other.policy)
            && match (&self.scope, &other.scope) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// Decides `use_` on `addr`, logs the decision, and turns a denial into `access-denied`.
    ///
    /// A `tcp-connect` or `udp-send` no address rule decides may still be allowed by a rule
    /// naming a host a lookup through this grant tied the address to (DNS-pinned), until the
    /// answer's TTL runs out; a deny rule naming that host wins over an allow. The root policy
    /// decides first, then each scope of the chain; the first denial settles it.
    pub(crate) fn check(&self, use_: Use, addr: SocketAddr) -> Result<(), ErrorCode> {
        let policy = self.policy.read();
        let because = self.decide_addr(&policy, use_, addr);
        if let Some(recorder) = self.policy.recorder() {
            if use_ == Use::UdpBind && is_ephemeral(addr) && !because.denied_by_rule() {
                // Covered by the sends and receives the run records: nothing to learn.
                let covered = Because::Decision(Decision {
                    verdict: Verdict::Allow,
                    rule: None,
                    reason: Reason::EphemeralBind,
                });
                return self.settle(use_, &addr, covered);
            }
            return self.check_learning(recorder, &policy, use_, Subject::Addr(addr), because);
        }
        self.settle(use_, &addr, because)
    }

    /// Refuses `call` on `addr` with `code` for a reason that is not a rule but is worth an
    /// audit (a socket bound under one grant handed another `network`), logged as a denial of
    /// this grant.
    pub(crate) fn refuse(
        &self,
        call: &str,
        addr: SocketAddr,
        code: ErrorCode,
        why: &str,
    ) -> ErrorCode {
        tracing::info!(
            target: "capnet::policy",
            instance = &*self.instance,
            capnet.library = self.label(),
            capnet.use = call,
            capnet.addr = %addr,
            capnet.verdict = "deny",
            capnet.rule = why,
            "denied {call} {addr}: {} ({why})",
            code.as_str()
        );
        code
    }

    /// Whether `use_` on `addr` would be allowed, deciding as [`Grant::check`] does but logging
    /// nothing: for a decision taken ahead of a use that may never happen (a UDP stream limited
    /// to a peer decides once whether that peer may be heard; the log speaks when a datagram
    /// from it is refused).
    pub(crate) fn permits(&self, use_: Use, addr: SocketAddr) -> bool {
        let policy = self.policy.read();
        self.decide_addr(&policy, use_, addr).is_allowed()
    }

    /// The decision on `use_` of `addr` through the whole chain, an address rule or a
    /// DNS-pinned name deciding in each layer.
    fn decide_addr<'p>(&'p self, root: &'p Policy, use_: Use, addr: SocketAddr) -> Because<'p> {
        self.decide(root, |layer| self.decide_layer(layer, use_, addr))
    }

    /// One layer's decision on `use_` of `addr`: the names lookups pinned the address to
    /// decide a `tcp-connect` or `udp-send` where they may ([`Policy::decide_pinned`]), and a
    /// UDP client's ephemeral bind is covered by the layer's UDP rights
    /// ([`Policy::decide_udp_bind`]).
    fn decide_layer<'p>(&self, layer: &'p Policy, use_: Use, addr: SocketAddr) -> Decision<'p> {
        match use_ {
            Use::TcpConnect | Use::UdpSend => {}
            Use::UdpBind => return layer.decide_udp_bind(addr),
            _ => return layer.decide(use_, addr),
        }
        let ip = capnet_policy::normalize(addr.ip());
        // Decided under the lock, without collecting: this runs on every connect and on every
        // unconnected UDP send.
        let pins = self.dns.pins.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = pins.get(&ip) else {
            drop(pins);
            return layer.decide(use_, addr);
        };
        let now = Instant::now();
        let names = entries.iter().filter(|p| p.until > now).map(|p| Pinned {
            name: &p.name,
            from_dns: p.from_dns,
        });
        layer.decide_pinned(use_, addr, names)
    }

    /// As [`Grant::check`], for a host name (`lookup`).
    pub(crate) fn check_name(&self, use_: Use, name: &str) -> Result<(), ErrorCode> {
        let policy = self.policy.read();
        let because = self.decide(&policy, |layer| layer.decide_name(use_, name));
        if let Some(recorder) = self.policy.recorder() {
            return self.check_learning(recorder, &policy, use_, Subject::Name(name), because);
        }
        self.settle(use_, &name, because)
    }

    /// Whose rules drop a DNS answer `ip` in a guarded range: `None` when none do, the app's
    /// (`Some(None)`), or a scope's. A revoked scope, or a library the policy no longer names,
    /// drops every one.
    fn refuses_answer<'p>(&'p self, root: &'p Policy, ip: IpAddr) -> Option<Option<&'p Scope>> {
        if root.refuses_dns_answer(ip).is_some() {
            return Some(None);
        }
        let mut next = self.scope.as_deref();
        while let Some(scope) = next {
            match scope.rules(root) {
                Ok(rules) if rules.refuses_dns_answer(ip).is_none() => {}
                _ => return Some(Some(scope)),
            }
            next = scope.parent.as_deref();
        }
        None
    }

    /// Logs `because` and turns a denial into `access-denied`.
    fn settle(
        &self,
        use_: Use,
        addr: &dyn fmt::Display,
        because: Because<'_>,
    ) -> Result<(), ErrorCode> {
        self.log(use_, addr, &because);
        if because.is_allowed() {
            Ok(())
        } else {
            Err(ErrorCode::AccessDenied)
        }
    }

    /// Runs `layer_decides` on the root policy and on each scope's rules, innermost scope
    /// last. The first denial wins; an allow reports the innermost layer's rule, the most
    /// specific reason the use went ahead. A chain is a few scopes deep, each a few probes.
    fn decide<'p>(
        &'p self,
        root: &'p Policy,
        layer_decides: impl Fn(&'p Policy) -> Decision<'p>,
    ) -> Because<'p> {
        let decision = layer_decides(root);
        if !decision.is_allowed() {
            return Because::Decision(decision);
        }
        let Some(innermost) = self.scope.as_deref() else {
            return Because::Decision(decision);
        };
        let app = decision;
        let mut allowed = None;
        let mut next = Some(innermost);
        while let Some(scope) = next {
            let rules = match scope.rules(root) {
                Ok(rules) => rules,
                Err(because) => return because,
            };
            // A library granted what it declared is held to its declaration too.
            if let ScopeRules::Library(name) = &scope.rules
                && let Some(declared) = root.declared(name)
                && !layer_decides(declared).is_allowed()
            {
                return Because::NotDeclared(name.clone());
            }
            let decision = layer_decides(rules);
            if !decision.is_allowed() {
                return Because::Narrowed {
                    scope,
                    app,
                    by: decision,
                };
            }
            allowed.get_or_insert(decision);
            next = scope.parent.as_deref();
        }
        Because::Decision(allowed.unwrap_or(app))
    }

    /// `create-tcp-socket` and `create-udp-socket` (`call`): refused with `access-denied`, as
    /// wasmtime-wasi refuses a component that may not use TCP or UDP at all, when this grant
    /// allows none of `uses` (the app's policy and every scope of the chain must grant one)
    /// and the runtime handed the instance no socket of the kind (`preopened`, which counts
    /// for the instance's own grant only: pre-opens are the app's). The log line names the
    /// uses that are missing, and whose rules lack them.
    pub(crate) fn check_kind(
        &self,
        call: &str,
        uses: &[Use],
        preopened: bool,
    ) -> Result<(), ErrorCode> {
        let policy = self.policy.read();
        let missing = UseSet::of(uses);
        // A learning run may come to use any kind.
        if (preopened && self.is_root()) || self.policy.recorder().is_some() {
            return Ok(());
        }
        let lacking = match self.lacks_every(&policy, uses) {
            None => {
                tracing::debug!(
                    target: "capnet::policy",
                    instance = &*self.instance,
                    capnet.library = self.label(),
                    capnet.use = %missing,
                    capnet.addr = "any",
                    capnet.verdict = "allow",
                    capnet.rule = "a rule grants one of these uses",
                    "allowed {call}"
                );
                return Ok(());
            }
            Some(Lacking::App) => format!("no rule grants any of {missing}"),
            Some(Lacking::Scope(scope)) => format!(
                "the app grants some of {missing}; {} grants none",
                scope.whose_rules()
            ),
            Some(Lacking::NoRules(because)) => because.to_string(),
        };
        tracing::info!(
            target: "capnet::policy",
            instance = &*self.instance,
            capnet.library = self.label(),
            capnet.use = %missing,
            capnet.addr = "any",
            capnet.verdict = "deny",
            capnet.rule = &*lacking,
            "denied {call}: access-denied ({lacking})"
        );
        Err(ErrorCode::AccessDenied)
    }

    /// `None` when some use of `uses` is granted by the app's policy and by every scope of
    /// the chain; else whose rules lack them all.
    fn lacks_every<'p>(&'p self, root: &'p Policy, uses: &[Use]) -> Option<Lacking<'p>> {
        let mut layers = vec![(root, None)];
        let mut next = self.scope.as_deref();
        while let Some(scope) = next {
            match scope.rules(root) {
                Ok(rules) => layers.push((rules, Some(scope))),
                Err(because) => return Some(Lacking::NoRules(because)),
            }
            // A library granted what it declared creates no socket its declaration has no use
            // for.
            if let ScopeRules::Library(name) = &scope.rules
                && let Some(declared) = root.declared(name)
                && !uses.iter().any(|u| declared.grants_any(*u))
            {
                return Some(Lacking::NoRules(Because::NotDeclared(name.clone())));
            }
            next = scope.parent.as_deref();
        }
        if uses
            .iter()
            .any(|u| layers.iter().all(|(layer, _)| layer.grants_any(*u)))
        {
            return None;
        }
        // The first layer that grants none of them; else the layers grant disjoint uses and
        // the innermost scope is the one that narrowed them away.
        let culprit = layers
            .iter()
            .find(|(layer, _)| !uses.iter().any(|u| layer.grants_any(*u)))
            .or(layers.last())
            .and_then(|(_, scope)| *scope);
        Some(culprit.map_or(Lacking::App, Lacking::Scope))
    }

    /// `tcp-accept` on a listener the runtime pre-opened: the operator handed the guest this
    /// socket to serve on, so peers are allowed unless a deny rule names them (or a scope of
    /// the chain refuses them).
    pub(crate) fn check_preopened_accept(&self, peer: SocketAddr) -> bool {
        let policy = self.policy.read();
        let because = self.decide(&policy, |layer| {
            let decision = layer.decide(Use::TcpAccept, peer);
            if layer_is_root(layer, &policy) && decision.rule.is_none() {
                // No rule: the pre-open is the operator's grant.
                return Decision {
                    verdict: Verdict::Allow,
                    ..decision
                };
            }
            decision
        });
        if let Because::Decision(d) = &because
            && d.is_allowed()
            && d.rule.is_none()
        {
            tracing::debug!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.library = self.label(),
                capnet.use = %Use::TcpAccept,
                capnet.addr = %peer,
                capnet.verdict = "allow",
                capnet.rule = "pre-opened listener",
                "allowed"
            );
            return true;
        }
        self.log(Use::TcpAccept, &peer, &because);
        because.is_allowed()
    }

    fn log(&self, use_: Use, addr: &dyn fmt::Display, because: &Because<'_>) {
        let library = self.label();
        if because.is_allowed() {
            tracing::debug!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.library = library,
                capnet.use = %use_,
                capnet.addr = %addr,
                capnet.verdict = "allow",
                capnet.rule = %because,
                "allowed"
            );
        } else {
            let of = match library {
                Some(label) => format!(" (grant {label})"),
                None => String::new(),
            };
            tracing::info!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.library = library,
                capnet.use = %use_,
                capnet.addr = %addr,
                capnet.verdict = "deny",
                capnet.rule = %because,
                "denied {use_} {addr}{of}: access-denied ({because})"
            );
        }
    }
}

/// Whether `layer` is the root policy rather than a scope's rules.
fn layer_is_root(layer: &Policy, root: &Policy) -> bool {
    std::ptr::eq(layer, root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapnetCtx;

    #[test]
    fn a_replaced_policy_decides_every_later_check_of_every_network_of_the_instance() {
        let allow_loopback = Policy::builder()
            .rule(Verdict::Allow, "connect", "127.0.0.1")
            .unwrap()
            .build();
        let ctx = CapnetCtx::builder().policy(allow_loopback).build();
        let handle = ctx.policy_handle();
        // As a `network` handle, or a socket bound through one, holds it.
        let network = ctx.root.clone();
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(network.check(Use::TcpConnect, addr), Ok(()));

        let old = handle.replace(Policy::deny_all());
        assert_eq!(old.rules().len(), 1, "the replaced policy is handed back");
        assert_eq!(
            network.check(Use::TcpConnect, addr),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(
            ctx.root.check(Use::TcpConnect, addr),
            Err(ErrorCode::AccessDenied)
        );
        assert!(
            network.same_authority(&ctx.root),
            "a replaced policy is still the same authority"
        );
    }

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn app_and_libraries() -> Policy {
        Policy::builder()
            .rule(Verdict::Allow, "connect", "127.0.0.1")
            .unwrap()
            .library_rule("weather", Verdict::Allow, "connect", "127.0.0.1:9001")
            .unwrap()
            .library_rule("weather", Verdict::Allow, "connect", "10.0.0.1:80")
            .unwrap()
            .build()
    }

    #[test]
    fn a_library_gets_only_what_both_its_table_and_the_app_allow() {
        let ctx = CapnetCtx::builder().policy(app_and_libraries()).build();
        let weather = ctx.root.library("weather");
        assert_eq!(weather.check(Use::TcpConnect, at("127.0.0.1:9001")), Ok(()));
        // The app's right, not the library's.
        assert_eq!(
            weather.check(Use::TcpConnect, at("127.0.0.1:9002")),
            Err(ErrorCode::AccessDenied)
        );
        // The library's rule, not the app's.
        assert_eq!(
            weather.check(Use::TcpConnect, at("10.0.0.1:80")),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(
            ctx.root.check(Use::TcpConnect, at("127.0.0.1:9002")),
            Ok(())
        );
        assert!(!weather.same_authority(&ctx.root));
        assert!(weather.same_authority(&weather.clone()));
    }

    #[test]
    fn a_library_the_policy_does_not_name_gets_nothing() {
        let ctx = CapnetCtx::builder().policy(app_and_libraries()).build();
        let stranger = ctx.root.library("stranger");
        assert_eq!(
            stranger.check(Use::TcpConnect, at("127.0.0.1:9001")),
            Err(ErrorCode::AccessDenied)
        );
    }

    #[test]
    fn a_derived_grant_given_wider_rules_than_its_parent_gains_nothing() {
        let ctx = CapnetCtx::builder().policy(app_and_libraries()).build();
        let weather = ctx.root.library("weather");
        let wide = Policy::builder()
            .rule_text(Verdict::Allow, "all any")
            .unwrap()
            .build();
        let (derived, _revoker) = weather.derive(wide);
        assert_eq!(derived.check(Use::TcpConnect, at("127.0.0.1:9001")), Ok(()));
        for denied in ["127.0.0.1:9002", "10.0.0.1:80", "192.0.2.1:9001"] {
            assert_eq!(
                derived.check(Use::TcpConnect, at(denied)),
                Err(ErrorCode::AccessDenied),
                "{denied}"
            );
        }
        assert_eq!(derived.depth(), 2);
    }

    #[test]
    fn revoking_a_grant_denies_it_and_every_grant_derived_from_it_but_not_its_parent() {
        let ctx = CapnetCtx::builder().policy(app_and_libraries()).build();
        let narrow = |rule: &str| {
            Policy::builder()
                .rule_text(Verdict::Allow, rule)
                .unwrap()
                .build()
        };
        let (outer, outer_revoker) = ctx.root.derive(narrow("connect 127.0.0.1:9001"));
        let (inner, _inner_revoker) = outer.derive(narrow("connect loopback"));
        let addr = at("127.0.0.1:9001");
        assert_eq!(inner.check(Use::TcpConnect, addr), Ok(()));
        assert_eq!(
            inner.check(Use::TcpConnect, at("127.0.0.1:9002")),
            Err(ErrorCode::AccessDenied),
            "the outer derivation narrows the inner one"
        );
        assert_eq!(outer_revoker.revoke(), 0, "nothing was open");
        assert!(outer.is_revoked() && inner.is_revoked());
        assert_eq!(
            outer.check(Use::TcpConnect, addr),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(
            inner.check(Use::TcpConnect, addr),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(ctx.root.check(Use::TcpConnect, addr), Ok(()));
    }
}
