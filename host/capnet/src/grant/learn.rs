//! Learn mode: a run that allows what only the default would deny and records it, so that the
//! least-privilege policy for a workload can be written from what it did (`capnet run --learn`).
//!
//! A use is learned when no rule decided it: the instance's policy had no rule for it (the app
//! needs one), or the sole library table of a library's grant had none (the library needs
//! one). Deny rules still win, and a `network` the guest narrowed itself keeps its narrowing:
//! only the operator's policy is learned. Learning costs one branch on each check while off.

use super::{Because, Grant, Scope, ScopeRules};
use crate::socket::ErrorCode;
use capnet_policy::{Decision, Policy, Reason, Use, Verdict, normalize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What a check is about: a socket address, or a host name (`lookup`).
#[derive(Clone, Copy)]
pub(super) enum Subject<'a> {
    Addr(SocketAddr),
    Name(&'a str),
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Addr(addr) => addr.fmt(f),
            Subject::Name(name) => f.write_str(name),
        }
    }
}

/// The uses of one learning run, as the rules that would allow them, each with how often it
/// was used. Shared by the instance's grants; read with [`Recorder::learned`].
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Record>);

#[derive(Debug, Default)]
struct Record {
    /// Each learned use, in the order first seen.
    learned: Vec<Learned>,
    index: HashMap<Key, usize>,
    /// The name whose lookup last answered each address: a connect to the address is learned
    /// as a rule naming the host, as a person writes it.
    answered: HashMap<IpAddr, Arc<str>>,
    /// Answers the DNS rebinding defence would have dropped: a rule naming the host would not
    /// reach them again, so a connect to them is learned by address.
    rebinding: HashSet<IpAddr>,
    /// Which of `udp-send` and `udp-receive` each UDP peer saw first: the peer of a first
    /// send is a service whose port stays in the rule; a peer that spoke first is a client
    /// whose port is ephemeral.
    first_udp: HashMap<SocketAddr, Use>,
}

type Key = (Option<Arc<str>>, Use, LearnedTarget, Option<u16>);

/// One learned use: the rule it needs and how often the run used it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The library whose table needs the rule; `None` for the app's own table.
    pub library: Option<Arc<str>>,
    /// The use.
    pub use_: Use,
    /// The address or host name.
    pub target: LearnedTarget,
    /// The port, `None` for any (a lookup, or a peer's ephemeral port).
    pub port: Option<u16>,
    /// How many checks it decided.
    pub count: u64,
}

/// What a learned rule names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LearnedTarget {
    /// An address.
    Ip(IpAddr),
    /// A host name: a lookup, or a connect or send to what its lookup answered (DNS-pinned).
    Name(Arc<str>),
}

impl fmt::Display for Learned {
    /// The rule's target as the rule language writes it: `127.0.0.1:80`, `[::1]:53`, `::1`,
    /// `localhost:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.target, self.port) {
            (LearnedTarget::Ip(ip), Some(port)) => SocketAddr::new(*ip, port).fmt(f),
            (LearnedTarget::Ip(ip), None) => ip.fmt(f),
            (LearnedTarget::Name(name), Some(port)) => write!(f, "{name}:{port}"),
            (LearnedTarget::Name(name), None) => f.write_str(name),
        }
    }
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every use learned so far, in the order first seen.
    pub fn learned(&self) -> Vec<Learned> {
        self.lock().learned.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the answers a lookup of `name` returned.
    pub(super) fn answered(&self, name: &str, answers: &[IpAddr]) {
        let mut record = self.lock();
        let name: Arc<str> = Arc::from(name);
        for ip in answers {
            record.answered.insert(*ip, name.clone());
        }
    }

    /// Notes an answer kept only because the run is learning.
    pub(super) fn kept_by_learning(&self, ip: IpAddr) {
        self.lock().rebinding.insert(ip);
    }

    /// Records one use for the app's table (`app`) and for `library`'s.
    fn record(&self, app: bool, library: Option<Arc<str>>, use_: Use, subject: Subject<'_>) {
        let mut record = self.lock();
        let (target, port) = record.rule_for(use_, subject);
        let tables = app.then_some(None).into_iter().chain(library.map(Some));
        for table in tables {
            let key = (table.clone(), use_, target.clone(), port);
            match record.index.get(&key) {
                Some(&at) => record.learned[at].count += 1,
                None => {
                    let at = record.learned.len();
                    record.learned.push(Learned {
                        library: table,
                        use_,
                        target: target.clone(),
                        port,
                        count: 1,
                    });
                    record.index.insert(key, at);
                }
            }
        }
    }
}

impl Record {
    /// The target and port of the rule a person would write for `use_` on `subject`.
    fn rule_for(&mut self, use_: Use, subject: Subject<'_>) -> (LearnedTarget, Option<u16>) {
        let addr = match subject {
            Subject::Name(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                return (LearnedTarget::Name(Arc::from(name)), None);
            }
            Subject::Addr(addr) => SocketAddr::new(normalize(addr.ip()), addr.port()),
        };
        let ip = addr.ip();
        let by_name = || match self.rebinding.contains(&ip) {
            true => None,
            false => self.answered.get(&ip).cloned(),
        };
        match use_ {
            Use::TcpConnect => match by_name() {
                Some(name) => (LearnedTarget::Name(name), Some(addr.port())),
                None => (LearnedTarget::Ip(ip), Some(addr.port())),
            },
            // Peers connect from ephemeral ports.
            Use::TcpAccept => (LearnedTarget::Ip(ip), None),
            Use::UdpSend | Use::UdpReceive => {
                let name = (use_ == Use::UdpSend).then(by_name).flatten();
                let first = *self.first_udp.entry(addr).or_insert(use_);
                let port = (first == Use::UdpSend).then_some(addr.port());
                match name {
                    Some(name) => (LearnedTarget::Name(name), port),
                    None => (LearnedTarget::Ip(ip), port),
                }
            }
            // Local addresses, as the guest asked for them (port 0 stays 0).
            _ => (LearnedTarget::Ip(ip), Some(addr.port())),
        }
    }
}

impl Grant {
    /// [`Grant::check`] and [`Grant::check_name`] of a learning run: what only the default
    /// denies is allowed, recorded and logged as learned; everything else is decided as usual.
    pub(super) fn check_learning(
        &self,
        recorder: &Recorder,
        root: &Policy,
        use_: Use,
        subject: Subject<'_>,
        because: Because<'_>,
    ) -> Result<(), ErrorCode> {
        let at_root = self.layer_decides(root, use_, subject);
        let app = at_root.reason == Reason::DefaultDeny;
        if !at_root.is_allowed() && !app {
            // A deny rule of the policy.
            return self.settle(use_, &subject, because);
        }
        // The scopes, as if the root allowed.
        let scopes = match self.scope {
            None => Because::Decision(Decision {
                verdict: Verdict::Allow,
                rule: None,
                reason: Reason::InheritNetwork,
            }),
            Some(_) => self.decide(root, |layer| {
                if super::layer_is_root(layer, root) {
                    Decision {
                        verdict: Verdict::Allow,
                        rule: None,
                        reason: Reason::InheritNetwork,
                    }
                } else {
                    self.layer_decides(layer, use_, subject)
                }
            }),
        };
        let library = self.sole_library().filter(|_| match &scopes {
            Because::NoSuchLibrary(_) => true,
            Because::Decision(d) | Because::Narrowed { by: d, .. } => {
                d.reason == Reason::DefaultDeny
            }
            Because::Revoked(_) | Because::NotDeclared(_) | Because::Learned => false,
        });
        if !scopes.is_allowed() && library.is_none() {
            return self.settle(use_, &subject, scopes);
        }
        if !app && library.is_none() {
            return self.settle(use_, &subject, because);
        }
        recorder.record(app, library, use_, subject);
        self.settle(use_, &subject, Because::Learned)
    }

    /// Whether a learning run keeps a DNS answer in a range the rebinding defence guards (and
    /// notes it, so that a connect to it is learned by address: a name never reaches it).
    pub(super) fn learning_keeps(&self, ip: IpAddr) -> bool {
        match self.policy.recorder() {
            Some(recorder) => {
                recorder.kept_by_learning(ip);
                true
            }
            None => false,
        }
    }

    /// One layer's decision on `subject`, a DNS-pinned name deciding where it overrides.
    fn layer_decides<'p>(
        &self,
        layer: &'p Policy,
        use_: Use,
        subject: Subject<'_>,
    ) -> Decision<'p> {
        match subject {
            Subject::Addr(addr) => self.decide_layer(layer, use_, addr),
            Subject::Name(name) => layer.decide_name(use_, name),
        }
    }

    /// The library of a library's own grant, not narrowed further: the one table a learning
    /// run writes a library's rules to.
    fn sole_library(&self) -> Option<Arc<str>> {
        match self.scope.as_deref() {
            Some(Scope {
                rules: ScopeRules::Library(name),
                parent: None,
                ..
            }) => Some(name.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapnetCtx;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn learning(policy: Policy) -> (CapnetCtx, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::new());
        let ctx = CapnetCtx::builder()
            .policy(policy)
            .learn(recorder.clone())
            .build();
        (ctx, recorder)
    }

    fn seen(recorder: &Recorder) -> Vec<String> {
        recorder
            .learned()
            .iter()
            .map(|l| {
                let table = l.library.as_deref().unwrap_or("app");
                format!("{table} {} {l} x{}", l.use_, l.count)
            })
            .collect()
    }

    #[test]
    fn what_only_the_default_denies_is_allowed_and_recorded_and_a_deny_rule_still_refuses() {
        let policy = Policy::builder()
            .rule(Verdict::Allow, "connect", "10.0.0.1:80")
            .unwrap()
            .rule(Verdict::Deny, "connect", "10.0.0.9")
            .unwrap()
            .build();
        let (ctx, recorder) = learning(policy);
        assert_eq!(ctx.root.check(Use::TcpConnect, at("10.0.0.2:443")), Ok(()));
        assert_eq!(ctx.root.check(Use::TcpConnect, at("10.0.0.2:443")), Ok(()));
        assert_eq!(ctx.root.check(Use::TcpConnect, at("10.0.0.1:80")), Ok(()));
        assert_eq!(
            ctx.root.check(Use::TcpConnect, at("10.0.0.9:80")),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(seen(&recorder), ["app tcp-connect 10.0.0.2:443 x2"]);
    }

    #[test]
    fn a_connect_to_what_a_lookup_answered_is_recorded_by_the_host_name() {
        let (ctx, recorder) = learning(Policy::deny_all());
        assert_eq!(ctx.root.check_name(Use::Lookup, "API.example.com."), Ok(()));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let kept = ctx.root.admit_answers(
            "api.example.com",
            vec![(ip, std::time::Duration::from_secs(60))],
            true,
        );
        assert_eq!(kept, [ip]);
        assert_eq!(ctx.root.check(Use::TcpConnect, at("192.0.2.7:443")), Ok(()));
        assert_eq!(
            seen(&recorder),
            [
                "app lookup api.example.com x1",
                "app tcp-connect api.example.com:443 x1"
            ]
        );
    }

    #[test]
    fn an_answer_the_rebinding_defence_drops_is_kept_and_its_connect_recorded_by_address() {
        let (ctx, recorder) = learning(Policy::deny_all());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let kept = ctx.root.admit_answers(
            "internal.example.com",
            vec![(ip, std::time::Duration::from_secs(60))],
            true,
        );
        assert_eq!(kept, [ip]);
        assert_eq!(ctx.root.check(Use::TcpConnect, at("10.1.2.3:80")), Ok(()));
        assert_eq!(seen(&recorder), ["app tcp-connect 10.1.2.3:80 x1"]);
    }

    #[test]
    fn a_library_s_use_is_recorded_for_its_table_and_for_the_app_s_where_each_lacks_it() {
        let policy = Policy::builder()
            .rule(Verdict::Allow, "connect", "127.0.0.1:9001")
            .unwrap()
            .build();
        let (ctx, recorder) = learning(policy);
        let weather = ctx.root.library("weather");
        assert_eq!(weather.check(Use::TcpConnect, at("127.0.0.1:9001")), Ok(()));
        assert_eq!(weather.check(Use::TcpConnect, at("127.0.0.1:9002")), Ok(()));
        assert_eq!(
            seen(&recorder),
            [
                "weather tcp-connect 127.0.0.1:9001 x1",
                "app tcp-connect 127.0.0.1:9002 x1",
                "weather tcp-connect 127.0.0.1:9002 x1"
            ]
        );
    }

    #[test]
    fn a_udp_clients_ephemeral_bind_is_allowed_and_never_learned() {
        // Its sends are learned, and they cover the bind in the next run.
        let (ctx, recorder) = learning(Policy::deny_all());
        let metrics = ctx.root.library("metrics");
        for grant in [&ctx.root, &metrics] {
            assert_eq!(grant.check(Use::UdpBind, at("0.0.0.0:0")), Ok(()));
        }
        assert_eq!(metrics.check(Use::UdpSend, at("127.0.0.1:9002")), Ok(()));
        assert_eq!(
            seen(&recorder),
            [
                "app udp-send 127.0.0.1:9002 x1",
                "metrics udp-send 127.0.0.1:9002 x1"
            ]
        );
    }

    #[test]
    fn a_network_the_guest_narrowed_itself_stays_narrowed() {
        let (ctx, recorder) = learning(Policy::deny_all());
        let narrow = Policy::builder()
            .rule(Verdict::Allow, "connect", "127.0.0.1:9001")
            .unwrap()
            .build();
        let (derived, _revoker) = ctx.root.derive(narrow);
        assert_eq!(derived.check(Use::TcpConnect, at("127.0.0.1:9001")), Ok(()));
        assert_eq!(
            derived.check(Use::TcpConnect, at("127.0.0.1:9002")),
            Err(ErrorCode::AccessDenied)
        );
        assert_eq!(seen(&recorder), ["app tcp-connect 127.0.0.1:9001 x1"]);
    }

    #[test]
    fn a_udp_peer_keeps_its_port_only_when_the_guest_spoke_first() {
        let (ctx, recorder) = learning(Policy::deny_all());
        for (use_, peer) in [
            (Use::UdpSend, "127.0.0.1:53"),
            (Use::UdpReceive, "127.0.0.1:53"),
            (Use::UdpReceive, "127.0.0.1:40001"),
            (Use::UdpSend, "127.0.0.1:40001"),
        ] {
            assert_eq!(ctx.root.check(use_, at(peer)), Ok(()));
        }
        assert_eq!(
            seen(&recorder),
            [
                "app udp-send 127.0.0.1:53 x1",
                "app udp-receive 127.0.0.1:53 x1",
                "app udp-receive 127.0.0.1 x1",
                "app udp-send 127.0.0.1 x1"
            ]
        );
    }

    #[tokio::test]
    async fn a_udp_connect_that_binds_implicitly_is_one_use_learned_once() {
        let (ctx, recorder) = learning(Policy::deny_all());
        let mut socket =
            crate::socket::udp::UdpSocket::new(crate::socket::addr::Family::V4).unwrap();
        socket.connect(&ctx.root, at("127.0.0.1:9")).unwrap();
        let learned = seen(&recorder);
        assert!(
            learned.contains(&"app udp-send 127.0.0.1:9 x1".to_owned()),
            "{learned:?}"
        );
    }
}
