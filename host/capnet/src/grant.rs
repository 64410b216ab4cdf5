//! A grant: the authority a `network` handle carries, checked before every system call.

use crate::bindings::sockets::network::ErrorCode;
use capnet_policy::{Decision, NamedSet, Policy, Use, UseSet, Verdict};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The policy of one component instance, as held by a `network` resource and by every socket
/// bound or connected through it. Cloning is cheap; two grants are the same authority when they
/// come from the same `network` origin.
#[derive(Clone, Debug)]
pub struct Grant {
    policy: Arc<Policy>,
    instance: Arc<str>,
    dns: Arc<Dns>,
}

/// The DNS side of one instance's grant: where lookups go, and the addresses they returned,
/// each pinned to its name until the answer's TTL runs out (DNS-pinned grants).
#[derive(Debug, Default)]
pub(crate) struct Dns {
    /// Name servers to ask; `None` reads /etc/resolv.conf.
    pub(crate) name_servers: Option<Vec<SocketAddr>>,
    pins: Mutex<Pins>,
}

/// Each answered address, with the names it was the answer for and until when.
type Pins = HashMap<IpAddr, Vec<(Arc<str>, Instant)>>;

impl Dns {
    /// Lookups through `name_servers` (`None`: the system's), nothing pinned yet.
    pub(crate) fn new(name_servers: Option<Vec<SocketAddr>>) -> Self {
        Self {
            name_servers,
            pins: Mutex::default(),
        }
    }
}

/// The uses a lookup's answer may be used for under a rule naming the host.
const PINNED_USES: [Use; 2] = [Use::TcpConnect, Use::UdpSend];

impl Grant {
    /// A grant with the system's resolver (the context builds grants with `with_dns`).
    #[cfg(test)]
    pub(crate) fn new(policy: Arc<Policy>, instance: Arc<str>) -> Self {
        Self::with_dns(policy, instance, Dns::default())
    }

    pub(crate) fn with_dns(policy: Arc<Policy>, instance: Arc<str>, dns: Dns) -> Self {
        Self {
            policy,
            instance,
            dns: Arc::new(dns),
        }
    }

    /// The name servers lookups ask (`None`: the system's, from /etc/resolv.conf).
    pub(crate) fn name_servers(&self) -> Option<&[SocketAddr]> {
        self.dns.name_servers.as_deref()
    }

    /// Filters a lookup's answers for `name` and pins the rest to it for `ttl`.
    ///
    /// DNS rebinding defence: an answer in `loopback`, `private`, `link-local` or `metadata` is
    /// dropped, and the drop logged, unless the policy allows connecting to or sending to that
    /// address by a rule of its own (or inherits the network). `from_dns` is false for names the
    /// system answers locally (`localhost`, /etc/hosts), whose answers are kept.
    pub(crate) fn admit_answers(
        &self,
        name: &str,
        answers: Vec<(IpAddr, Duration)>,
        from_dns: bool,
    ) -> Vec<IpAddr> {
        let now = Instant::now();
        let mut kept = Vec::new();
        let mut pins = self.dns.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.retain(|_, names| {
            names.retain(|(_, until)| *until > now);
            !names.is_empty()
        });
        for (ip, ttl) in answers {
            let ip = capnet_policy::normalize(ip);
            if from_dns
                && let Some(set) = [
                    NamedSet::Loopback,
                    NamedSet::Private,
                    NamedSet::LinkLocal,
                    NamedSet::Metadata,
                ]
                .into_iter()
                .find(|s| s.contains(ip))
                && !self.allows_range(ip)
            {
                tracing::info!(
                    target: "capnet::policy",
                    instance = &*self.instance,
                    capnet.use = "lookup",
                    capnet.addr = name,
                    capnet.answer = %ip,
                    capnet.verdict = "drop",
                    capnet.rule = "dns rebinding defence",
                    "dropped answer {ip} for {name}: {set} address from DNS and no rule allows it"
                );
                continue;
            }
            if !kept.contains(&ip) {
                kept.push(ip);
                pins.entry(ip)
                    .or_default()
                    .push((Arc::from(name), now + ttl));
            }
        }
        kept
    }

    /// Whether a rule of the policy itself lets the guest reach `ip` (any port): a compiled
    /// query, so an answer costs a few table probes however many rules the policy has.
    fn allows_range(&self, ip: IpAddr) -> bool {
        self.policy.is_inherit_network()
            || PINNED_USES
                .iter()
                .any(|&u| self.policy.allow_rule_any_port(u, ip).is_some())
    }

    /// Whether two grants are one authority (the `network` given to bind and connect must match).
    pub(crate) fn same_authority(&self, other: &Grant) -> bool {
        Arc::ptr_eq(&self.policy, &other.policy)
    }

    /// Decides `use_` on `addr`, logs the decision, and turns a denial into `access-denied`.
    ///
    /// A `tcp-connect` or `udp-send` no address rule decides may still be allowed by a rule
    /// naming a host a lookup through this grant tied the address to (DNS-pinned), until the
    /// answer's TTL runs out; a deny rule naming that host wins over an allow.
    pub(crate) fn check(&self, use_: Use, addr: SocketAddr) -> Result<(), ErrorCode> {
        let mut decision = self.policy.decide(use_, addr);
        if let Some(pinned) = self.decide_pinned(use_, addr, &decision) {
            decision = pinned;
        }
        self.log(use_, &addr, &decision);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(ErrorCode::AccessDenied)
        }
    }

    /// The decision of a rule naming a host `addr` is pinned to, where it overrides
    /// `by_address`: a named deny beats an address allow or default; a named allow beats only
    /// the default.
    fn decide_pinned(
        &self,
        use_: Use,
        addr: SocketAddr,
        by_address: &Decision<'_>,
    ) -> Option<Decision<'_>> {
        if !PINNED_USES.contains(&use_) {
            return None;
        }
        let ip = capnet_policy::normalize(addr.ip());
        // Decided under the lock, without collecting: this runs on every connect and on every
        // unconnected UDP send.
        let pins = self.dns.pins.lock().unwrap_or_else(|e| e.into_inner());
        let entries = pins.get(&ip)?;
        let now = Instant::now();
        let mut allow = None;
        for (name, until) in entries {
            if *until <= now {
                continue;
            }
            let decision = self.policy.decide_host(use_, name, addr.port());
            match (decision.rule, decision.verdict) {
                (None, _) => {}
                (Some(_), Verdict::Deny) => return Some(decision),
                (Some(_), Verdict::Allow) => {
                    allow.get_or_insert(decision);
                }
            }
        }
        allow.filter(|_| by_address.rule.is_none())
    }

    /// As [`Grant::check`], for a host name (`lookup`).
    pub(crate) fn check_name(&self, use_: Use, name: &str) -> Result<(), ErrorCode> {
        let decision = self.policy.decide_name(use_, name);
        self.log(use_, &name, &decision);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(ErrorCode::AccessDenied)
        }
    }

    /// `create-tcp-socket` and `create-udp-socket` (`call`): refused with `access-denied`, as
    /// wasmtime-wasi refuses a component that may not use TCP or UDP at all, when no rule grants
    /// any of `uses` and the runtime handed the instance no socket of the kind (`preopened`).
    /// The log line names the uses that are missing.
    pub(crate) fn check_kind(
        &self,
        call: &str,
        uses: &[Use],
        preopened: bool,
    ) -> Result<(), ErrorCode> {
        if preopened || uses.iter().any(|u| self.policy.grants_any(*u)) {
            return Ok(());
        }
        let missing = UseSet::of(uses);
        tracing::info!(
            target: "capnet::policy",
            instance = &*self.instance,
            capnet.use = %missing,
            capnet.addr = "any",
            capnet.verdict = "deny",
            capnet.rule = "no rule grants any of these uses",
            "denied {call}: access-denied (no rule grants any of {missing})"
        );
        Err(ErrorCode::AccessDenied)
    }

    /// `tcp-accept` on a listener the runtime pre-opened: the operator handed the guest this
    /// socket to serve on, so peers are allowed unless a deny rule names them.
    pub(crate) fn check_preopened_accept(&self, peer: SocketAddr) -> bool {
        let decision = self.policy.decide(Use::TcpAccept, peer);
        if decision.rule.is_none() {
            tracing::debug!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.use = %Use::TcpAccept,
                capnet.addr = %peer,
                capnet.verdict = "allow",
                capnet.rule = "pre-opened listener",
                "allowed"
            );
            return true;
        }
        self.log(Use::TcpAccept, &peer, &decision);
        decision.is_allowed()
    }

    fn log(&self, use_: Use, addr: &dyn std::fmt::Display, decision: &Decision<'_>) {
        if decision.is_allowed() {
            tracing::debug!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.use = %use_,
                capnet.addr = %addr,
                capnet.verdict = "allow",
                capnet.rule = %decision,
                "allowed"
            );
        } else {
            tracing::info!(
                target: "capnet::policy",
                instance = &*self.instance,
                capnet.use = %use_,
                capnet.addr = %addr,
                capnet.verdict = "deny",
                capnet.rule = %decision,
                "denied {use_} {addr}: access-denied ({decision})"
            );
        }
    }
}
