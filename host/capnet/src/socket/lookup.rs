//! Name lookup: checked against the `lookup` right, resolved off the guest's thread.

use crate::grant::Grant;
use crate::socket::ErrorCode;
use capnet_policy::{Limit, Use};
use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::task::Poll;
use std::time::Duration;
use tokio::task::JoinHandle;
use wasmtime_wasi_io::poll::Pollable;

/// A `resolve-address-stream`: the addresses of one lookup, in the resolver's order.
pub struct ResolveAddressStream {
    state: Lookup,
}

enum Lookup {
    Pending(JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
    Done(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
}

impl ResolveAddressStream {
    /// Starts resolving `name` if the grant allows looking it up.
    ///
    /// An IP address literal is returned as it is, with no query and no check: it reveals
    /// nothing, and a connect to it is checked on its own.
    ///
    /// # Errors
    /// `invalid-argument` for a name that is not a valid host name. A lookup the policy refuses
    /// is `permanent-resolver-failure`, what wasmtime-wasi 48 returns from `resolve-addresses`
    /// when lookups are not allowed (the docs of `resolve-addresses` name no `access-denied`);
    /// the denial is still logged with the rule that decided it.
    pub fn start(grant: &Grant, name: &str) -> Result<Self, ErrorCode> {
        let host = match parse_host(name)? {
            Host::Ip(ip) => return Ok(Self::done(Ok(vec![ip]))),
            Host::Name(host) => host,
        };
        grant
            .check_name(Use::Lookup, &host)
            .map_err(|_| ErrorCode::PermanentResolverFailure)?;
        // Counted until the answer is in, against the instance's `lookups` limit.
        let in_flight = grant.hold(Limit::Lookups, "resolve-addresses")?;
        let grant = grant.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _in_flight = in_flight;
            let (answers, from_dns) = resolve(&host, grant.name_servers())?;
            let kept = grant.admit_answers(&host, answers, from_dns);
            if kept.is_empty() {
                return Err(ErrorCode::NameUnresolvable);
            }
            Ok(kept)
        });
        Ok(Self {
            state: Lookup::Pending(task),
        })
    }

    fn done(result: Result<Vec<IpAddr>, ErrorCode>) -> Self {
        Self {
            state: Lookup::Done(result.map(Vec::into_iter)),
        }
    }

    /// `resolve-next-address`: `would-block` until the answer is in.
    pub fn next_address(&mut self) -> Result<Option<IpAddr>, ErrorCode> {
        if let Lookup::Pending(task) = &mut self.state {
            match super::poll_now(|cx| std::pin::Pin::new(&mut *task).poll(cx)) {
                Poll::Pending => return Err(ErrorCode::WouldBlock),
                Poll::Ready(result) => self.state = Lookup::Done(joined(result)),
            }
        }
        match &mut self.state {
            Lookup::Done(Ok(addrs)) => Ok(addrs.next()),
            Lookup::Done(Err(code)) => Err(*code),
            Lookup::Pending(_) => Err(ErrorCode::WouldBlock),
        }
    }
}

fn joined(
    result: Result<Result<Vec<IpAddr>, ErrorCode>, tokio::task::JoinError>,
) -> Result<std::vec::IntoIter<IpAddr>, ErrorCode> {
    result
        .unwrap_or(Err(ErrorCode::PermanentResolverFailure))
        .map(Vec::into_iter)
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        if let Lookup::Pending(task) = &mut self.state {
            let result = task.await;
            self.state = Lookup::Done(joined(result));
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

/// How long an answer without a TTL of its own (the system resolver's) stays pinned.
const SYSTEM_TTL: Duration = Duration::from_secs(60);

/// Blocking resolution, with the TTL of every answer and whether it came from DNS.
///
/// `localhost` and names in /etc/hosts keep `getaddrinfo` semantics (the system resolver, no
/// TTL: pinned for [`SYSTEM_TTL`]). Other names are asked of `name_servers`, or of the
/// system's from /etc/resolv.conf, over UDP, for A and AAAA; where no name server is known the
/// system resolver answers.
fn resolve(
    host: &str,
    name_servers: Option<&[SocketAddr]>,
) -> Result<(Vec<(IpAddr, Duration)>, bool), ErrorCode> {
    let local = host == "localhost" || host.ends_with(".localhost") || in_etc_hosts(host);
    let servers = match name_servers {
        Some(servers) => servers.to_vec(),
        None => system_name_servers(),
    };
    if local || servers.is_empty() {
        let answers = resolve_system(host)?;
        return Ok((
            answers.into_iter().map(|ip| (ip, SYSTEM_TTL)).collect(),
            !local,
        ));
    }
    let answers = dns::query(host, &servers)?;
    Ok((answers, true))
}

/// `getaddrinfo`: de-duplicated, IPv4-mapped addresses folded to IPv4.
fn resolve_system(host: &str) -> Result<Vec<IpAddr>, ErrorCode> {
    let addrs = (host, 0u16)
        .to_socket_addrs()
        .map_err(|_| ErrorCode::NameUnresolvable)?;
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        let ip = capnet_policy::normalize(addr.ip());
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err(ErrorCode::NameUnresolvable);
    }
    Ok(out)
}

/// Whether /etc/hosts names `host`.
fn in_etc_hosts(host: &str) -> bool {
    std::fs::read_to_string("/etc/hosts").is_ok_and(|text| {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split_whitespace().skip(1))
            .any(|name| name.eq_ignore_ascii_case(host))
    })
}

/// The `nameserver` lines of /etc/resolv.conf, port 53.
fn system_name_servers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        })
        .unwrap_or_default()
}

/// A small stub resolver: A and AAAA over UDP, answers with their TTLs.
mod dns {
    use super::ErrorCode;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    const TYPE_A: u16 = 1;
    const TYPE_AAAA: u16 = 28;
    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Asks each server in turn for A and AAAA of `name` until one answers.
    pub(super) fn query(
        name: &str,
        servers: &[SocketAddr],
    ) -> Result<Vec<(IpAddr, Duration)>, ErrorCode> {
        let mut last = ErrorCode::TemporaryResolverFailure;
        for server in servers {
            match ask(name, *server) {
                Ok(answers) if answers.is_empty() => last = ErrorCode::NameUnresolvable,
                Ok(answers) => return Ok(answers),
                Err(code) => last = code,
            }
        }
        Err(last)
    }

    fn ask(name: &str, server: SocketAddr) -> Result<Vec<(IpAddr, Duration)>, ErrorCode> {
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let temporary = |_| ErrorCode::TemporaryResolverFailure;
        let socket = UdpSocket::bind(bind).map_err(temporary)?;
        socket.connect(server).map_err(temporary)?;
        let base = query_id();
        let ids = [base, base.wrapping_add(1)];
        for (id, qtype) in ids.iter().zip([TYPE_A, TYPE_AAAA]) {
            socket.send(&encode(*id, name, qtype)?).map_err(temporary)?;
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut answers = Vec::new();
        let mut pending = ids.to_vec();
        let mut nxdomain = false;
        let mut buf = [0u8; 4096];
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).map_err(temporary)?;
            let Ok(n) = socket.recv(&mut buf) else { break };
            let Some(reply) = decode(&buf[..n]) else {
                continue;
            };
            if let Some(i) = pending.iter().position(|&id| id == reply.id) {
                pending.swap_remove(i);
                nxdomain |= reply.rcode == 3;
                answers.extend(reply.answers);
            }
        }
        if answers.is_empty() && pending.len() == ids.len() {
            return Err(ErrorCode::TemporaryResolverFailure);
        }
        if answers.is_empty() && nxdomain {
            return Err(ErrorCode::NameUnresolvable);
        }
        Ok(answers)
    }

    /// A query id that differs from call to call.
    fn query_id() -> u16 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(Instant::now()) as u16
    }

    /// A recursive query for `name`, type `qtype`, class IN.
    fn encode(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, ErrorCode> {
        let mut q = Vec::with_capacity(name.len() + 18);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.trim_end_matches('.').split('.') {
            let len = u8::try_from(label.len()).map_err(|_| ErrorCode::InvalidArgument)?;
            q.push(len);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        Ok(q)
    }

    struct Reply {
        id: u16,
        rcode: u8,
        answers: Vec<(IpAddr, Duration)>,
    }

    /// The A and AAAA records of a response's answer section (CNAMEs are followed by the
    /// server: their targets' records come in the same section).
    fn decode(msg: &[u8]) -> Option<Reply> {
        let word = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
        };
        let id = word(0)?;
        let flags = word(2)?;
        if flags & 0x8000 == 0 {
            return None;
        }
        let questions = word(4)?;
        let answer_count = word(6)?;
        let mut at = 12;
        for _ in 0..questions {
            at = skip_name(msg, at)? + 4;
        }
        let mut answers = Vec::new();
        for _ in 0..answer_count {
            at = skip_name(msg, at)?;
            let rtype = word(at)?;
            let ttl = u32::from_be_bytes(msg.get(at + 4..at + 8)?.try_into().ok()?);
            let len = usize::from(word(at + 8)?);
            let data = msg.get(at + 10..at + 10 + len)?;
            at += 10 + len;
            let ip = match (rtype, len) {
                (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?)),
                (TYPE_AAAA, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
                _ => continue,
            };
            answers.push((ip, Duration::from_secs(ttl.into())));
        }
        Some(Reply {
            id,
            rcode: (flags & 0x000f) as u8,
            answers,
        })
    }

    /// The offset just past a (possibly compressed) name at `at`.
    fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_response_with_a_compressed_name_decodes_with_its_ttl() {
            let mut msg = encode(7, "a.test", TYPE_A).unwrap();
            msg[2] = 0x81;
            msg[3] = 0x80;
            msg[7] = 1; // one answer
            msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
            let reply = decode(&msg).unwrap();
            assert_eq!(reply.id, 7);
            assert_eq!(
                reply.answers,
                [(IpAddr::from([192, 0, 2, 1]), Duration::from_secs(30))]
            );
        }

        #[test]
        fn truncated_responses_do_not_panic() {
            let msg = encode(7, "a.test", TYPE_A).unwrap();
            for n in 0..msg.len() {
                let _ = decode(&msg[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
