//! Name lookup: checked against the `lookup` right, answered by hickory-resolver as a future
//! polled on the caller's runtime (no thread, no blocking pool).

use crate::grant::Grant;
use crate::socket::ErrorCode;
use capnet_policy::{Limit, Use};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, TokioResolver};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;
use wasmtime_wasi_io::poll::Pollable;

/// A `resolve-address-stream`: the addresses of one lookup, in the resolver's order.
pub struct ResolveAddressStream {
    state: Lookup,
}

type Answers = Result<Vec<IpAddr>, ErrorCode>;

enum Lookup {
    Pending(Pin<Box<dyn Future<Output = Answers> + Send>>),
    Done(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
}

impl ResolveAddressStream {
    /// Starts resolving `name` if the grant allows looking it up.
    ///
    /// An IP address literal is returned as it is, with no query and no check: it reveals
    /// nothing, and a connect to it is checked on its own.
    ///
    /// # Errors
    /// `invalid-argument` for a name that is not a valid host name; `access-denied` for a lookup
    /// the policy refuses, logged with the rule that decided it (the 0.2 front answers it as
    /// `permanent-resolver-failure`: see [`crate::p2::ip_name_lookup`]).
    pub fn start(grant: &Grant, name: &str) -> Result<Self, ErrorCode> {
        let host = match parse_host(name)? {
            Host::Ip(ip) => return Ok(Self::done(Ok(vec![ip]))),
            Host::Name(host) => host,
        };
        let query = dns_name(&host)?;
        grant.check_name(Use::Lookup, &host)?;
        // Counted until the answer is in, against the instance's `lookups` limit.
        let in_flight = grant.hold(Limit::Lookups, "resolve-addresses")?;
        let grant = grant.clone();
        let lookup = async move {
            let _in_flight = in_flight;
            let (answers, from_dns) = grant.resolver().resolve(query).await?;
            let kept = grant.admit_answers(&host, answers, from_dns);
            if kept.is_empty() {
                return Err(ErrorCode::NameUnresolvable);
            }
            Ok(kept)
        };
        let mut stream = Self {
            state: Lookup::Pending(Box::pin(lookup)),
        };
        // Poll once now, so the query is on its way while the guest does other work.
        stream.advance();
        Ok(stream)
    }

    fn done(result: Answers) -> Self {
        Self {
            state: Lookup::Done(result.map(Vec::into_iter)),
        }
    }

    /// Drives a pending lookup as far as it goes without waiting.
    fn advance(&mut self) {
        if let Lookup::Pending(lookup) = &mut self.state
            && let Poll::Ready(result) = super::poll_now(|cx| lookup.as_mut().poll(cx))
        {
            self.state = Lookup::Done(result.map(Vec::into_iter));
        }
    }

    /// `resolve-next-address`: `would-block` until the answer is in.
    pub fn next_address(&mut self) -> Result<Option<IpAddr>, ErrorCode> {
        self.advance();
        match &mut self.state {
            Lookup::Done(Ok(addrs)) => Ok(addrs.next()),
            Lookup::Done(Err(code)) => Err(*code),
            Lookup::Pending(_) => Err(ErrorCode::WouldBlock),
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        if let Lookup::Pending(lookup) = &mut self.state {
            let result = lookup.await;
            self.state = Lookup::Done(result.map(Vec::into_iter));
        }
    }
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Parses a lookup argument: an IP literal, or a host name turned to ASCII (IDNA), lowercased.
fn parse_host(name: &str) -> Result<Host, ErrorCode> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(Host::Ip(capnet_policy::normalize(ip)));
    }
    match url::Host::parse(name) {
        Ok(url::Host::Domain(domain)) if is_host_name(&domain) => Ok(Host::Name(domain)),
        Ok(url::Host::Ipv4(ip)) => Ok(Host::Ip(IpAddr::V4(ip))),
        Ok(url::Host::Ipv6(ip)) => Ok(Host::Ip(capnet_policy::normalize(IpAddr::V6(ip)))),
        _ => Err(ErrorCode::InvalidArgument),
    }
}

/// Letters, digits, hyphens and underscores in dot-separated labels of 1 to 63 bytes.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The name to ask for: fully qualified, so that exactly the name the policy allowed is asked
/// and no search domain of /etc/resolv.conf is appended to it.
fn dns_name(host: &str) -> Result<Name, ErrorCode> {
    let mut name = Name::from_ascii(host).map_err(|_| ErrorCode::InvalidArgument)?;
    name.set_fqdn(true);
    Ok(name)
}

/// How long a local answer (`localhost`, /etc/hosts), which carries no TTL, stays pinned.
const LOCAL_TTL: Duration = Duration::from_secs(60);

/// One context's resolver: A and AAAA over UDP, over TCP when an answer comes back truncated,
/// with the timeout and attempts of /etc/resolv.conf (hickory's 5 s and 2 for `--dns-server`),
/// and a cache that hands out each record with what is left of its TTL. One per instance, so
/// that cache and the connections to the servers serve all of its lookups; built on the first
/// lookup, so an instance that never looks a name up pays nothing.
#[derive(Debug)]
pub(crate) struct Resolver {
    /// The `--dns-server` override; `None` asks the servers of /etc/resolv.conf.
    name_servers: Option<Vec<SocketAddr>>,
    /// `None` if hickory refused the configuration (it refuses only a TLS one, which capnet
    /// never gives): lookups then fail for good.
    built: OnceLock<Option<TokioResolver>>,
}

impl Resolver {
    /// Lookups through `name_servers`, or the system's when `None`.
    pub(crate) fn new(name_servers: Option<Vec<SocketAddr>>) -> Self {
        Self {
            name_servers,
            built: OnceLock::new(),
        }
    }

    /// Every answer for `name` with its TTL, and whether it came from DNS.
    ///
    /// A name /etc/hosts lists gets that file's addresses alone, as getaddrinfo's `files`
    /// source answers before `dns`; `localhost` names get loopback from hickory with no query.
    /// Neither is from DNS, so the rebinding defence leaves them be; each is pinned for
    /// [`LOCAL_TTL`].
    async fn resolve(&self, name: Name) -> Result<(Vec<(IpAddr, Duration)>, bool), ErrorCode> {
        let listed = hosts_answers(system_hosts(), &name);
        if !listed.is_empty() {
            return Ok((
                listed.into_iter().map(|ip| (ip, LOCAL_TTL)).collect(),
                false,
            ));
        }
        let local = name.is_localhost();
        let resolver = self
            .built
            .get_or_init(|| self.build())
            .as_ref()
            .ok_or(ErrorCode::PermanentResolverFailure)?;
        let lookup = resolver
            .lookup_ip(name)
            .await
            .map_err(|e| resolver_error(&e))?;
        let answers = lookup
            .as_lookup()
            .answers()
            .iter()
            .filter_map(|record| {
                let ttl = if local {
                    LOCAL_TTL
                } else {
                    Duration::from_secs(record.ttl.into())
                };
                Some((record.data.ip_addr()?, ttl))
            })
            .collect();
        Ok((answers, !local))
    }

    fn build(&self) -> Option<TokioResolver> {
        let (config, mut options) = match &self.name_servers {
            Some(servers) => (
                ResolverConfig::from_name_servers(servers.iter().map(name_server).collect()),
                ResolverOpts::default(),
            ),
            None => system_conf().clone(),
        };
        // A before AAAA, asked at once: the order getaddrinfo gives on most hosts.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // /etc/hosts is capnet's to consult (above), read once per process.
        options.use_hosts_file = ResolveHosts::Never;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .inspect_err(|e| tracing::warn!(target: "capnet::dns", "no resolver: {e}"))
            .ok()
    }
}

/// A name server at `addr`: UDP, and TCP on the same port for truncated answers.
fn name_server(addr: &SocketAddr) -> NameServerConfig {
    let connection = |mut config: ConnectionConfig| {
        config.port = addr.port();
        config
    };
    NameServerConfig::new(
        addr.ip(),
        true,
        vec![
            connection(ConnectionConfig::udp()),
            connection(ConnectionConfig::tcp()),
        ],
    )
}

/// /etc/resolv.conf, read once per process. Without it no name server is known: names that
/// are not local fail with `permanent-resolver-failure`, as the warning logged then says.
fn system_conf() -> &'static (ResolverConfig, ResolverOpts) {
    static CONF: OnceLock<(ResolverConfig, ResolverOpts)> = OnceLock::new();
    CONF.get_or_init(|| {
        hickory_resolver::system_conf::read_system_conf().unwrap_or_else(|e| {
            tracing::warn!(
                target: "capnet::dns",
                "no name servers from /etc/resolv.conf ({e}): only localhost and /etc/hosts names resolve"
            );
            (
                ResolverConfig::from_name_servers(Vec::new()),
                ResolverOpts::default(),
            )
        })
    })
}

/// /etc/hosts, read once per process.
fn system_hosts() -> &'static Hosts {
    static HOSTS: OnceLock<Hosts> = OnceLock::new();
    HOSTS.get_or_init(|| Hosts::from_system().unwrap_or_default())
}

/// The addresses `hosts` lists for `name`, IPv4 first.
fn hosts_answers(hosts: &Hosts, name: &Name) -> Vec<IpAddr> {
    let mut answers = Vec::new();
    for kind in [RecordType::A, RecordType::AAAA] {
        if let Some(listed) = hosts.lookup_static_host(&Query::query(name.clone(), kind)) {
            answers.extend(listed.answers().iter().filter_map(|r| r.data.ip_addr()));
        }
    }
    answers
}

/// The WIT code for a failed lookup, as getaddrinfo reports its resolver's failures: no such
/// name or no address is `name-unresolvable` (EAI_NONAME, EAI_NODATA); a server that failed,
/// was not reached or did not answer in time is `temporary-resolver-failure` (EAI_AGAIN); a
/// server that refused the query or could not be understood, or no server at all, is
/// `permanent-resolver-failure` (EAI_FAIL).
fn resolver_error(error: &NetError) -> ErrorCode {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(_)) => ErrorCode::NameUnresolvable,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
        | NetError::Timeout
        | NetError::Busy
        | NetError::Io(_)
        | NetError::Truncated
        | NetError::QueryCaseMismatch => ErrorCode::TemporaryResolverFailure,
        _ => ErrorCode::PermanentResolverFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::net::NoRecords;

    #[test]
    fn ip_literals_parse_as_addresses_and_mapped_ones_fold_to_ipv4() {
        assert!(
            matches!(parse_host("127.0.0.1"), Ok(Host::Ip(ip)) if ip == IpAddr::from([127, 0, 0, 1]))
        );
        assert!(
            matches!(parse_host("::ffff:10.0.0.1"), Ok(Host::Ip(ip)) if ip == IpAddr::from([10, 0, 0, 1]))
        );
        assert!(matches!(parse_host("[::1]"), Ok(Host::Ip(ip)) if ip.is_loopback()));
    }

    #[test]
    fn names_are_lowercased_and_unicode_goes_to_punycode() {
        assert!(matches!(parse_host("Example.COM"), Ok(Host::Name(n)) if n == "example.com"));
        assert!(
            matches!(parse_host("bücher.example"), Ok(Host::Name(n)) if n == "xn--bcher-kva.example")
        );
    }

    #[test]
    fn malformed_names_are_invalid_arguments() {
        for bad in [
            "",
            "exa mple.com",
            "a..b",
            "host/path",
            "x:80",
            &"a".repeat(64),
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names_are_asked_fully_qualified_so_no_search_domain_is_appended() {
        assert_eq!(dns_name("api").unwrap().to_ascii(), "api.");
        assert_eq!(dns_name("a.example.").unwrap().to_ascii(), "a.example.");
    }

    #[test]
    fn a_name_in_the_hosts_file_gets_its_addresses_ipv4_first_and_another_name_none() {
        let mut hosts = Hosts::default();
        let file = "# comment\n::1 printer.lan\n192.168.1.5 printer.lan other\n";
        hosts.read_hosts_conf(file.as_bytes()).unwrap();
        let ips = |name| hosts_answers(&hosts, &dns_name(name).unwrap());
        assert_eq!(
            ips("printer.lan"),
            [
                IpAddr::from([192, 168, 1, 5]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(ips("other"), [IpAddr::from([192, 168, 1, 5])]);
        assert!(ips("printer.example").is_empty());
    }

    #[test]
    fn resolver_failures_map_to_the_wit_codes_getaddrinfo_would_give() {
        let query = Query::query(dns_name("a.example").unwrap(), RecordType::A);
        let no_records = |code| NetError::from(NoRecords::new(query.clone(), code));
        let status = |code| NetError::Dns(DnsError::ResponseCode(code));
        let rows = [
            (
                no_records(ResponseCode::NXDomain),
                ErrorCode::NameUnresolvable,
            ),
            (
                no_records(ResponseCode::NoError),
                ErrorCode::NameUnresolvable,
            ),
            (
                status(ResponseCode::ServFail),
                ErrorCode::TemporaryResolverFailure,
            ),
            (NetError::Timeout, ErrorCode::TemporaryResolverFailure),
            (NetError::Busy, ErrorCode::TemporaryResolverFailure),
            (NetError::Truncated, ErrorCode::TemporaryResolverFailure),
            (
                NetError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                ErrorCode::TemporaryResolverFailure,
            ),
            (
                status(ResponseCode::Refused),
                ErrorCode::PermanentResolverFailure,
            ),
            (
                status(ResponseCode::FormErr),
                ErrorCode::PermanentResolverFailure,
            ),
            (
                status(ResponseCode::NotImp),
                ErrorCode::PermanentResolverFailure,
            ),
            (NetError::NoConnections, ErrorCode::PermanentResolverFailure),
        ];
        for (error, code) in rows {
            assert_eq!(resolver_error(&error), code, "{error}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_past_the_lookups_limit_is_a_temporary_resolver_failure() {
        use crate::grant::{Dns, PolicyHandle};
        // A name server that never answers keeps the first lookup in flight.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let policy = capnet_policy::Policy::builder()
            .toml(
                "policy.toml",
                "[allow]\nlookup = [\"*.test\"]\n[limits]\nlookups = 1\n",
            )
            .unwrap()
            .build();
        let dns = Dns::new(Some(vec![silent.local_addr().unwrap()]));
        let grant = Grant::with_dns(PolicyHandle::new(policy.into(), None), "test".into(), dns);
        let mut first = ResolveAddressStream::start(&grant, "a.test").unwrap();
        assert_eq!(first.next_address().err(), Some(ErrorCode::WouldBlock));
        let second = ResolveAddressStream::start(&grant, "b.test");
        assert_eq!(second.err(), Some(ErrorCode::TemporaryResolverFailure));
        // A literal needs no lookup, so no count.
        assert!(ResolveAddressStream::start(&grant, "127.0.0.1").is_ok());
        // The first gives up (the server never answers); then there is room again.
        first.ready().await;
        assert!(first.next_address().is_err());
        assert!(ResolveAddressStream::start(&grant, "b.test").is_ok());
    }
}
