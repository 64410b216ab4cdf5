//! A grant: the authority a `network` handle carries, checked before every system call.

use crate::bindings::sockets::network::ErrorCode;
use capnet_policy::{Decision, NamedSet, Policy, Use, UseSet, Verdict};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The policy of one component instance, as held by a `network` resource and by every socket
/// bound or connected through it. Cloning is cheap; two grants are the same authority when they
/// come from the same `network` origin.
#[derive(Clone, Debug)]
pub struct Grant {
    policy: PolicyHandle,
    instance: Arc<str>,
    dns: Arc<Dns>,
}

/// The policy of one component instance, replaceable while it runs.
///
/// Every check reads the policy current at that moment: after [`PolicyHandle::replace`], each
/// later bind, listen, accept, connect, send, receive and lookup of every `network` of the
/// instance is decided by the new policy, all at once; what was decided before stands (a
/// connection accepted stays open). Policies themselves are immutable, so a check never sees
/// half of one and half of the other.
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<RwLock<Arc<Policy>>>);

impl PolicyHandle {
    pub(crate) fn new(policy: Arc<Policy>) -> Self {
        Self(Arc::new(RwLock::new(policy)))
    }

    /// The policy checks are decided by now.
    pub fn current(&self) -> Arc<Policy> {
        self.read().clone()
    }

    /// The current policy, held for one check: no reference count is touched, which matters
    /// on the per-datagram checks of UDP.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<Policy>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `policy` the one every later check is decided by; returns the one it replaces.
    pub fn replace(&self, policy: impl Into<Arc<Policy>>) -> Arc<Policy> {
        let policy = policy.into();
        let rules = policy.rules().len();
        let old = std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|e| e.into_inner()),
            policy,
        );
        tracing::info!(target: "capnet::policy", rules, "policy replaced");
        old
    }

    /// Whether `self` and `other` are handles of one policy slot.
    fn same(&self, other: &PolicyHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
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
        Self::with_dns(PolicyHandle::new(policy), instance, Dns::default())
    }

    pub(crate) fn with_dns(policy: PolicyHandle, instance: Arc<str>, dns: Dns) -> Self {
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
        // The policy before the pins, in the order `check` takes them.
        let policy = self.policy.read();
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
                && !allows_range(&policy, ip)
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

    /// The handle through which the instance's policy is replaced.
    pub(crate) fn policy_handle(&self) -> &PolicyHandle {
        &self.policy
    }

    /// Whether two grants are one authority (the `network` given to bind and connect must match).
    pub(crate) fn same_authority(&self, other: &Grant) -> bool {
        self.policy.same(&other.policy)
    }

    /// Decides `use_` on `addr`, logs the decision, and turns a denial into `access-denied`.
    ///
    /// A `tcp-connect` or `udp-send` no address rule decides may still be allowed by a rule
    /// naming a host a lookup through this grant tied the address to (DNS-pinned), until the
    /// answer's TTL runs out; a deny rule naming that host wins over an allow.
    pub(crate) fn check(&self, use_: Use, addr: SocketAddr) -> Result<(), ErrorCode> {
        let policy = self.policy.read();
        let mut decision = policy.decide(use_, addr);
        if let Some(pinned) = self.decide_pinned(&policy, use_, addr, &decision) {
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
    fn decide_pinned<'p>(
        &self,
        policy: &'p Policy,
        use_: Use,
        addr: SocketAddr,
        by_address: &Decision<'_>,
    ) -> Option<Decision<'p>> {
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
            let decision = policy.decide_host(use_, name, addr.port());
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
        let policy = self.policy.read();
        let decision = policy.decide_name(use_, name);
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
        let policy = self.policy.read();
        if preopened || uses.iter().any(|u| policy.grants_any(*u)) {
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
        let policy = self.policy.read();
        let decision = policy.decide(Use::TcpAccept, peer);
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

/// Whether a rule of the policy itself lets the guest reach `ip` (any port): a compiled
/// query, so an answer costs a few table probes however many rules the policy has.
fn allows_range(policy: &Policy, ip: IpAddr) -> bool {
    policy.is_inherit_network()
        || PINNED_USES
            .iter()
            .any(|&u| policy.allow_rule_any_port(u, ip).is_some())
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
}
