//! A library's grant holds, tried as a hostile library would, over real loopback sockets: the
//! rebinding defence asks the grant that looked the name up, port by port (issue 21, class 3);
//! a library's sockets, connections and lookups count against its own limits and the app's,
//! and its every creation and bind, the ephemeral one too, is decided and logged as its own
//! (class 4). Each refused attempt is checked at the server: nothing arrives.

use super::*;
use crate::CapnetCtx;
use crate::socket::addr::Family;
use crate::socket::lookup::ResolveAddressStream;
use crate::socket::tcp::TcpSocket;
use crate::socket::udp::UdpSocket;
use std::fmt::Write as _;
use std::io::Read;
use std::net::Ipv4Addr;
use wasmtime_wasi_io::poll::Pollable;

/// A DNS server on loopback answering every A query with `answer` (TTL 300) and AAAA with
/// no records; with `None`, one that never answers, so lookups stay in flight.
fn dns_server(answer: Option<Ipv4Addr>) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if let Some(reply) = answer.and_then(|ip| reply(&buf[..n], ip)) {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
    addr
}

/// The reply to `query`: its header and question, and for an A query the one record.
fn reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    let name_end = query.get(12..)?.iter().position(|&b| b == 0)? + 12 + 1;
    let qtype = u16::from_be_bytes([*query.get(name_end)?, *query.get(name_end + 1)?]);
    let mut reply = query.get(..name_end + 4)?.to_vec();
    reply[2] = 0x81;
    reply[3] = 0x80;
    reply[6..12].fill(0);
    if qtype == 1 {
        reply[7] = 1;
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
        reply.extend_from_slice(&answer.octets());
    }
    Some(reply)
}

/// The peers a test server accepted, in order.
type Peers = Arc<Mutex<Vec<SocketAddr>>>;

/// A TCP server on loopback that keeps the address of every peer that reached it.
fn server() -> (SocketAddr, Peers) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Peers::default();
    let seen = peers.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            seen.lock().unwrap().push(stream.peer_addr().unwrap());
            std::thread::spawn(move || {
                let _ = stream.read_to_end(&mut Vec::new());
            });
        }
    });
    (addr, peers)
}

/// A UDP socket on loopback, and whatever has arrived at it.
fn collector() -> (SocketAddr, std::net::UdpSocket) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    (socket.local_addr().unwrap(), socket)
}

fn arrived(socket: &std::net::UdpSocket) -> usize {
    let mut buf = [0u8; 1500];
    std::iter::from_fn(|| socket.recv(&mut buf).ok()).count()
}

/// How many connections reached `server` before a probe of the test's own: the server
/// accepts in order, so once it has the probe it has every connection made before.
fn reached(server: SocketAddr, peers: &Peers) -> usize {
    let probe = std::net::TcpStream::connect(server).unwrap();
    let me = probe.local_addr().unwrap();
    loop {
        if let Some(at) = peers.lock().unwrap().iter().position(|p| *p == me) {
            return at;
        }
        std::thread::yield_now();
    }
}

async fn lookup(grant: &Grant, name: &str) -> Result<Vec<IpAddr>, ErrorCode> {
    let mut stream = ResolveAddressStream::start(grant, name)?;
    stream.ready().await;
    let mut addresses = Vec::new();
    while let Some(ip) = stream.next_address()? {
        addresses.push(ip);
    }
    Ok(addresses)
}

/// A TCP connect through `grant` to `to`, on a socket `grant` created.
async fn connect(grant: &Grant, to: SocketAddr) -> Result<TcpSocket, ErrorCode> {
    let mut socket = TcpSocket::create(grant, Family::V4, false, "tcp-socket.create")?;
    socket.start_connect(grant, to)?;
    std::future::poll_fn(|cx| socket.poll_connected(cx)).await?;
    Ok(socket)
}

/// One UDP datagram through `grant` to `to`, on a socket `grant` created (0.3's `send`,
/// which binds the socket implicitly).
async fn send(grant: &Grant, to: SocketAddr) -> Result<(), ErrorCode> {
    let mut socket = UdpSocket::create(grant, Family::V4, "udp-socket.create")?;
    socket
        .sender_binding(grant, Some(to), 4)?
        .send(b"leak")
        .await
}

/// The `capnet::policy` events, each as `field=value` pairs, while the test holds it.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let guard = tracing::subscriber::set_default(log.clone());
        (log, guard)
    }

    /// The one line that holds every one of `needles`.
    fn line(&self, needles: &[&str]) -> String {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{}", lines.join("\n")))
            .clone()
    }
}

impl tracing::Subscriber for Log {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != "capnet::policy" {
            return;
        }
        let mut line = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn fmt::Debug| {
                let _ = write!(line, "{}={value:?} ", field.name());
            },
        );
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn policy(toml: &str) -> Policy {
    Policy::builder().toml("policy.toml", toml).unwrap().build()
}

fn context(policy: Policy, dns: SocketAddr) -> CapnetCtx {
    CapnetCtx::builder()
        .policy(policy)
        .name_servers([dns])
        .build()
}

const WEATHER: &str = r#"capnet.library="weather""#;
const METRICS: &str = r#"capnet.library="metrics""#;

/// Class 3: the app may reach loopback, the library only `some.example.com` on one port.
/// The name's loopback answer is the library's to judge, and its table names no loopback
/// address: its lookup finds nothing, and the app's lookup of the same name (which the app's
/// rules admit) pins an address the library still cannot reach through the name.
#[tokio::test]
async fn a_librarys_lookup_and_connect_are_judged_by_its_own_grant_not_the_apps_loopback_rule() {
    let (app_server, peers) = server();
    let dns = dns_server(Some(Ipv4Addr::LOCALHOST));
    let port = app_server.port();
    let ctx = context(
        policy(&format!(
            "[allow]\nconnect = [\"loopback\", \"*.example.com\"]\n\n\
             [library.weather.allow]\nconnect = [\"some.example.com:{port}\"]\n"
        )),
        dns,
    );
    let weather = ctx.root.library("weather");
    let (log, _guard) = Log::capture();

    assert_eq!(
        lookup(&weather, "some.example.com").await,
        Err(ErrorCode::NameUnresolvable)
    );
    let dropped = log.line(&["capnet.verdict=\"drop\"", WEATHER]);
    assert!(
        dropped.contains("dropped answer 127.0.0.1 for some.example.com: loopback address from DNS and no rule of library weather's table allows it"),
        "{dropped}"
    );

    let app = lookup(&ctx.root, "some.example.com").await.unwrap();
    assert_eq!(app, [IpAddr::from(Ipv4Addr::LOCALHOST)]);
    // The app's lookup pinned 127.0.0.1 to the name the library's table names.
    assert_eq!(
        connect(&weather, app_server).await.err(),
        Some(ErrorCode::AccessDenied)
    );
    let denied = log.line(&["capnet.verdict=\"deny\"", WEATHER, "tcp-connect"]);
    assert!(
        denied.contains(
            r#"the app allows it (rule policy.toml:2:12 "connect loopback"); library weather's table does not (no rule: default deny)"#
        ),
        "{denied}"
    );
    assert_eq!(
        reached(app_server, &peers),
        0,
        "nothing of the library's arrived"
    );
    // The app keeps its rights.
    let _kept = connect(&ctx.root, app_server).await.unwrap();
}

/// Class 3, port by port: an app rule for loopback on one port keeps a name's loopback answer,
/// and never lets the name's rule on another port reach that port of loopback.
#[tokio::test]
async fn a_names_rule_reaches_a_loopback_answer_only_on_a_port_an_address_rule_allows() {
    let (named_port, named_peers) = server();
    let (other_port, _) = server();
    let dns = dns_server(Some(Ipv4Addr::LOCALHOST));
    let ctx = context(
        policy(&format!(
            "[allow]\nconnect = [\"some.example.com:{}\", \"127.0.0.1:{}\"]\n",
            named_port.port(),
            other_port.port()
        )),
        dns,
    );
    let (log, _guard) = Log::capture();
    let answers = lookup(&ctx.root, "some.example.com").await.unwrap();
    assert_eq!(
        answers,
        [IpAddr::from(Ipv4Addr::LOCALHOST)],
        "kept at lookup"
    );

    assert_eq!(
        connect(&ctx.root, named_port).await.err(),
        Some(ErrorCode::AccessDenied)
    );
    log.line(&[
        "capnet.verdict=\"deny\"",
        &format!("capnet.addr={named_port}"),
        "no rule: default deny",
    ]);
    assert_eq!(reached(named_port, &named_peers), 0);
    let _other = connect(&ctx.root, other_port).await.unwrap();
}

/// Class 3 over UDP: a library's `udp-send` to a pinned name's loopback answer, through 0.3's
/// implicitly binding send and through 0.2's stream to a peer, never leaves the host.
#[tokio::test]
async fn a_librarys_udp_send_to_a_names_loopback_answer_is_refused() {
    let (target, socket) = collector();
    let dns = dns_server(Some(Ipv4Addr::LOCALHOST));
    let ctx = context(
        policy(&format!(
            "[allow]\nudp-send = [\"loopback\", \"*.example.com\"]\n\n\
             [library.metrics.allow]\nudp-send = [\"some.example.com:{}\"]\n",
            target.port()
        )),
        dns,
    );
    let metrics = ctx.root.library("metrics");
    assert_eq!(
        lookup(&metrics, "some.example.com").await,
        Err(ErrorCode::NameUnresolvable)
    );
    lookup(&ctx.root, "some.example.com").await.unwrap();

    assert_eq!(send(&metrics, target).await, Err(ErrorCode::AccessDenied));
    let mut bound = UdpSocket::create(&metrics, Family::V4, "create-udp-socket").unwrap();
    bound
        .start_bind(&metrics, "0.0.0.0:0".parse().unwrap())
        .unwrap();
    bound.finish_bind().unwrap();
    assert_eq!(
        bound.stream(Some(target)).err(),
        Some(ErrorCode::AccessDenied)
    );
    let (_, mut unconnected) = bound.stream(None).unwrap();
    assert!(unconnected.check_send() > 0);
    assert!(
        unconnected
            .send([(&b"leak"[..], Some(target))].into_iter())
            .is_err()
    );

    // The app's datagram arrives, so the library's would have.
    send(&ctx.root, target).await.unwrap();
    let mut buf = [0u8; 8];
    socket.set_nonblocking(false).unwrap();
    assert_eq!(socket.recv(&mut buf).unwrap(), 4);
    socket.set_nonblocking(true).unwrap();
    assert_eq!(
        arrived(&socket),
        0,
        "the app's one datagram and nothing else"
    );
}

/// Class 4: a library's sockets count against its own `sockets` and the app's; a refusal
/// names the library and whose limit it was.
#[tokio::test]
async fn a_librarys_sockets_count_against_its_own_limit_and_the_apps() {
    let ctx = context(
        policy(
            "[allow]\nudp-send = [\"loopback\"]\n\n[limits]\nsockets = 4\n\n\
             [library.metrics.allow]\nudp-send = [\"loopback\"]\n\n\
             [library.metrics.limits]\nsockets = 2\n",
        ),
        dns_server(None),
    );
    let metrics = ctx.root.library("metrics");
    let (log, _guard) = Log::capture();
    let create = |grant: &Grant| UdpSocket::create(grant, Family::V4, "udp-socket.create");
    let mut mine = vec![create(&metrics).unwrap(), create(&metrics).unwrap()];
    assert_eq!(create(&metrics).err(), Some(ErrorCode::NewSocketLimit));
    log.line(&[METRICS, "limit of library metrics sockets = 2"]);
    // With one of its two given back, the library is held by the app's limit, which counts
    // the library's socket beside the app's three.
    mine.pop();
    let apps: Vec<_> = (0..3).map(|_| create(&ctx.root).unwrap()).collect();
    assert_eq!(create(&ctx.root).err(), Some(ErrorCode::NewSocketLimit));
    assert_eq!(create(&metrics).err(), Some(ErrorCode::NewSocketLimit));
    log.line(&[METRICS, "capnet.rule=\"limit sockets = 4\""]);
    drop(apps);
    let _again = create(&metrics).unwrap();
}

/// Class 4: a library's connections and lookups in flight count against its own limits.
#[tokio::test]
async fn a_librarys_connections_and_lookups_count_against_its_own_limits() {
    let (target, peers) = server();
    let ctx = context(
        policy(
            "[allow]\nconnect = [\"loopback\", \"*.example.com\"]\n\n\
             [library.weather.allow]\nconnect = [\"loopback\", \"*.example.com\"]\n\n\
             [library.weather.limits]\nconnections = 1\nlookups = 1\n",
        ),
        dns_server(None),
    );
    let weather = ctx.root.library("weather");
    let (log, _guard) = Log::capture();
    let _first = connect(&weather, target).await.unwrap();
    assert_eq!(
        connect(&weather, target).await.err(),
        Some(ErrorCode::NewSocketLimit)
    );
    log.line(&[WEATHER, "limit of library weather connections = 1"]);
    assert_eq!(
        reached(target, &peers),
        1,
        "one connection, the allowed one"
    );
    let _app = connect(&ctx.root, target).await.unwrap();

    // The server never answers: the first lookup stays in flight.
    let _pending = ResolveAddressStream::start(&weather, "some.example.com").unwrap();
    assert_eq!(
        ResolveAddressStream::start(&weather, "other.example.com").err(),
        Some(ErrorCode::TemporaryResolverFailure)
    );
    log.line(&[WEATHER, "limit of library weather lookups = 1"]);
    let _apps = ResolveAddressStream::start(&ctx.root, "other.example.com").unwrap();
}

/// Class 4: a library with no UDP right gets no UDP socket, nor an ephemeral bind through
/// its network of a socket the app created (0.2 creates sockets under the app's import), even
/// though the app may send; both refusals are logged as the library's and say why. A TCP
/// pre-open is the app's: it lets no library create a TCP socket.
#[tokio::test]
async fn a_library_with_no_udp_right_is_refused_its_socket_and_its_ephemeral_bind() {
    let (target, socket) = collector();
    let ctx = context(
        policy(
            "[allow]\nudp-send = [\"loopback\"]\nconnect = [\"loopback\"]\n\n\
             [library.weather.allow]\nconnect = [\"127.0.0.1:1\"]\n\n\
             [library.metrics.allow]\nudp-send = [\"loopback\"]\n",
        ),
        dns_server(None),
    );
    let weather = ctx.root.library("weather");
    let (log, _guard) = Log::capture();

    assert_eq!(
        UdpSocket::create(&weather, Family::V4, "udp-socket.create").err(),
        Some(ErrorCode::AccessDenied)
    );
    log.line(&[
        WEATHER,
        "the app grants some of udp-bind+udp-send+udp-receive; library weather's table grants none",
    ]);
    let mut apps = UdpSocket::create(&ctx.root, Family::V4, "create-udp-socket").unwrap();
    assert_eq!(
        apps.start_bind(&weather, "0.0.0.0:0".parse().unwrap()),
        Err(ErrorCode::AccessDenied)
    );
    log.line(&[
        WEATHER,
        "capnet.use=udp-bind",
        "capnet.addr=0.0.0.0:0",
        "deny",
    ]);
    assert_eq!(send(&weather, target).await, Err(ErrorCode::AccessDenied));
    assert_eq!(arrived(&socket), 0);

    // A library that may send binds ephemerally, and the bind is logged as its own.
    let metrics = ctx.root.library("metrics");
    send(&metrics, target).await.unwrap();
    log.line(&[
        METRICS,
        "capnet.use=udp-bind",
        "an ephemeral bind, covered by udp-send or udp-receive",
    ]);

    // A library the policy does not name is told so.
    let stranger = ctx.root.library("stranger");
    assert_eq!(
        UdpSocket::create(&stranger, Family::V4, "udp-socket.create").err(),
        Some(ErrorCode::AccessDenied)
    );
    log.line(&[
        r#"capnet.library="stranger""#,
        "no rule: the policy has no [library.stranger] table",
    ]);

    // Pre-opened or not, TCP needs a right in the library's own table.
    let tcp_less = ctx.root.library("metrics");
    assert_eq!(
        TcpSocket::create(&tcp_less, Family::V4, true, "create-tcp-socket").err(),
        Some(ErrorCode::AccessDenied)
    );
}

/// A socket the app bound, handed a library's `network` to connect with, is refused with
/// `invalid-argument`, and the attempt is logged as the library's.
#[tokio::test]
async fn connecting_an_apps_bound_socket_through_a_librarys_network_is_logged_as_the_librarys() {
    let (target, peers) = server();
    let ctx = context(
        policy(
            "[allow]\nconnect = [\"loopback\"]\nbind = [\"127.0.0.1:0\"]\n\n\
             [library.weather.allow]\nconnect = [\"loopback\"]\n",
        ),
        dns_server(None),
    );
    let weather = ctx.root.library("weather");
    let (log, _guard) = Log::capture();
    let mut socket = TcpSocket::create(&ctx.root, Family::V4, false, "create-tcp-socket").unwrap();
    socket
        .start_bind(
            &ctx.root,
            "127.0.0.1:0".parse().unwrap(),
            &mut Default::default(),
        )
        .unwrap();
    socket.finish_bind().unwrap();
    assert_eq!(
        socket.start_connect(&weather, target),
        Err(ErrorCode::InvalidArgument)
    );
    log.line(&[WEATHER, "the socket was bound through another network"]);
    assert_eq!(reached(target, &peers), 0);
}
