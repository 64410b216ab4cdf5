//! A grant: the authority a `network` handle carries, checked before every system call.

use crate::bindings::sockets::network::ErrorCode;
use capnet_policy::{Decision, Policy, Use};
use std::net::SocketAddr;
use std::sync::Arc;

/// The policy of one component instance, as held by a `network` resource and by every socket
/// bound or connected through it. Cloning is cheap; two grants are the same authority when they
/// come from the same `network` origin.
#[derive(Clone, Debug)]
pub struct Grant {
    policy: Arc<Policy>,
    instance: Arc<str>,
}

impl Grant {
    pub(crate) fn new(policy: Arc<Policy>, instance: Arc<str>) -> Self {
        Self { policy, instance }
    }

    /// Whether two grants are one authority (the `network` given to bind and connect must match).
    pub(crate) fn same_authority(&self, other: &Grant) -> bool {
        Arc::ptr_eq(&self.policy, &other.policy)
    }

    /// Decides `use_` on `addr`, logs the decision, and turns a denial into `access-denied`.
    pub(crate) fn check(&self, use_: Use, addr: SocketAddr) -> Result<(), ErrorCode> {
        let decision = self.policy.decide(use_, addr);
        self.log(use_, &addr, &decision);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(ErrorCode::AccessDenied)
        }
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
