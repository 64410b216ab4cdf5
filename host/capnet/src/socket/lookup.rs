//! Name lookup: checked against the `lookup` right, resolved off the guest's thread.

use crate::bindings::sockets::network::ErrorCode;
use crate::grant::Grant;
use capnet_policy::Use;
use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::task::Poll;
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
    /// `invalid-argument` for a name that is not a valid host name, `access-denied` when the
    /// policy refuses the lookup.
    pub fn start(grant: &Grant, name: &str) -> Result<Self, ErrorCode> {
        let host = match parse_host(name)? {
            Host::Ip(ip) => return Ok(Self::done(Ok(vec![ip]))),
            Host::Name(host) => host,
        };
        grant.check_name(Use::Lookup, &host)?;
        let task = tokio::task::spawn_blocking(move || resolve(&host));
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

/// Blocking resolution with the system resolver (`getaddrinfo` semantics: /etc/hosts,
/// `localhost`). Addresses come back de-duplicated, IPv4-mapped ones folded to IPv4.
fn resolve(host: &str) -> Result<Vec<IpAddr>, ErrorCode> {
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
}
