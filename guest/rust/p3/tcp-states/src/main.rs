//! `p3-tcp-states LOOPBACK [restricted TARGET]`, for `wasi:sockets@0.3.0`: every call of a
//! `tcp-socket` in every state it can be in, on the loopback address of one family, printed
//! as a table of `STATE | CALL | RESULT` rows (`ok`, `ok VALUE` or the error code). The guest
//! only observes: the host test holds the codes the WIT docs give and compares.
//!
//! Each row runs on a fresh socket brought to its state, so no row depends on another.
//! The states: `unbound`, `bound`, `listening`, `connected` (a client), `accepted` (from a
//! listen stream), `peer-closed` (a client whose peer closed) and `closed` (after a refused
//! connect); `connecting` (a connect in flight) has rows of its own. Addresses print as `loopback:ephemeral`, `unspecified:ephemeral`, `as bound`,
//! `the listener` or `the client`. The `arguments` rows try the addresses the docs name; the
//! `policy` rows need the test's policy (`LOOPBACK:1` denied for bind and connect).
//!
//! With `restricted TARGET` it prints only the rows of a policy that gives no listen right
//! for the unspecified address (TARGET is a listener the test runs).
//!
//! The program is the component's `wasi:cli/run@0.3.0` (see p3-tcp-client for std's 0.2 one).

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "command",
        with: {
            "wasi:sockets/types@0.3.0": p3_net::wasi::sockets::types,
            "wasi:sockets/ip-name-lookup@0.3.0": p3_net::wasi::sockets::ip_name_lookup,
            "wasi:clocks/types@0.3.0": p3_net::wasi::clocks::types,
        },
    });
}

use p3_net::table::{code, row, seconds, value};
use p3_net::wasi::sockets::types::{ErrorCode, IpAddressFamily, IpSocketAddress, TcpSocket};
use p3_net::{code_name, from_wit, to_wit, wit_stream, within};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use wit_bindgen::{StreamReader, StreamResult};

/// Why a state could not be reached.
type Made<T> = Result<T, String>;

fn ok<T>(call: &str, result: Result<T, ErrorCode>) -> Made<T> {
    result.map_err(|code| format!("{call} failed with {}", code_name(&code)))
}

/// The states a row can start from.
const STATES: [&str; 7] = [
    "unbound",
    "bound",
    "listening",
    "connected",
    "accepted",
    "peer-closed",
    "closed",
];

/// A socket in a state, and what must live as long as it does.
struct InState {
    socket: TcpSocket,
    /// The address `get-local-address` should show: set for bound sockets.
    bound: Option<SocketAddr>,
    /// The listener a client reached, or the client a listener accepted.
    peer: Option<(SocketAddr, &'static str)>,
    _keep: Vec<TcpSocket>,
    _streams: Vec<StreamReader<TcpSocket>>,
}

/// The loopback address under test.
struct Env {
    ip: IpAddr,
}

impl Env {
    fn at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }

    fn family(&self) -> IpAddressFamily {
        p3_net::family(&self.at(0))
    }

    fn v6(&self) -> bool {
        self.ip.is_ipv6()
    }

    fn tcp(&self) -> Made<TcpSocket> {
        ok("create", TcpSocket::create(self.family()))
    }

    /// A listener on an ephemeral loopback port, its stream of connections and its address.
    fn listener(&self) -> Made<(TcpSocket, StreamReader<TcpSocket>, SocketAddr)> {
        let socket = self.tcp()?;
        ok("bind", socket.bind(to_wit(self.at(0))))?;
        let accepted = ok("listen", socket.listen())?;
        let local = from_wit(ok("get-local-address", socket.get_local_address())?);
        Ok((socket, accepted, local))
    }

    /// A loopback address nothing listens on.
    fn refusing(&self) -> Made<SocketAddr> {
        let socket = self.tcp()?;
        ok("bind", socket.bind(to_wit(self.at(0))))?;
        Ok(from_wit(ok(
            "get-local-address",
            socket.get_local_address(),
        )?))
    }

    async fn make(&self, state: &str) -> Made<InState> {
        let mut made = InState {
            socket: self.tcp()?,
            bound: None,
            peer: None,
            _keep: Vec::new(),
            _streams: Vec::new(),
        };
        match state {
            "unbound" => {}
            "bound" | "listening" => {
                ok("bind", made.socket.bind(to_wit(self.at(0))))?;
                made.bound = Some(from_wit(ok("local", made.socket.get_local_address())?));
                if state == "listening" {
                    made._streams.push(ok("listen", made.socket.listen())?);
                }
            }
            "connected" | "peer-closed" => {
                let (listener, mut accepted, addr) = self.listener()?;
                ok("connect", made.socket.connect(to_wit(addr)).await)?;
                made.peer = Some((addr, "the listener"));
                if state == "peer-closed" {
                    let peer = accepted.next().await.ok_or("the listen stream ended")?;
                    drop((peer, listener, accepted));
                } else {
                    made._keep.push(listener);
                    made._streams.push(accepted);
                }
            }
            "accepted" => {
                let (listener, mut accepted, addr) = self.listener()?;
                let client = self.tcp()?;
                ok("connect", client.connect(to_wit(addr)).await)?;
                let client_addr = from_wit(ok("local", client.get_local_address())?);
                let socket = accepted.next().await.ok_or("the listen stream ended")?;
                made._keep.push(std::mem::replace(&mut made.socket, socket));
                made._keep.extend([client, listener]);
                made._streams.push(accepted);
                made.bound = Some(addr);
                made.peer = Some((client_addr, "the client"));
            }
            "closed" => {
                let addr = self.refusing()?;
                let refused = made.socket.connect(to_wit(addr)).await;
                if !matches!(refused, Err(ErrorCode::ConnectionRefused)) {
                    return Err(format!("connect to a closed port: {}", code(refused)));
                }
            }
            other => return Err(format!("no state {other}")),
        }
        Ok(made)
    }

    /// How an address the socket reports compares with what the state says it should be.
    fn describe(&self, made: &InState, addr: IpSocketAddress) -> String {
        let addr = from_wit(addr);
        if made.bound == Some(addr) {
            return "as bound".to_owned();
        }
        if let Some((peer, name)) = made.peer
            && peer == addr
        {
            return name.to_owned();
        }
        self.describe_alone(addr)
    }

    fn describe_alone(&self, addr: SocketAddr) -> String {
        let ip = if addr.ip() == self.ip {
            "loopback"
        } else if addr.ip().is_unspecified() && addr.is_ipv6() == self.v6() {
            "unspecified"
        } else {
            return addr.to_string();
        };
        let port = if addr.port() == 0 { "0" } else { "ephemeral" };
        format!("{ip}:{port}")
    }
}

/// Reads `stream` to its end, or for `millis`: `open`, `ends ok` or `ends CODE`.
async fn read_out(
    mut bytes: StreamReader<u8>,
    done: impl std::future::Future<Output = Result<(), ErrorCode>>,
    millis: u64,
) -> String {
    let drained = within(millis, async {
        loop {
            let (result, _) = bytes.read(Vec::with_capacity(4096)).await;
            if matches!(result, StreamResult::Dropped) {
                break;
            }
        }
    })
    .await;
    if drained.is_none() {
        return "open".to_owned();
    }
    match within(millis, done).await {
        Some(result) => format!("ends {}", code(result)),
        None => "ended, future open".to_owned(),
    }
}

/// The rows every state has, each on a fresh socket in `state`.
async fn state_rows(env: &Env, state: &str) -> Made<()> {
    let target = env.listener()?;
    let made = env.make(state).await?;
    let local = made
        .socket
        .get_local_address()
        .map(|a| env.describe(&made, a));
    row(state, "get-local-address", value(local));
    let remote = made
        .socket
        .get_remote_address()
        .map(|a| env.describe(&made, a));
    row(state, "get-remote-address", value(remote));
    row(state, "get-is-listening", made.socket.get_is_listening());
    let family = made.socket.get_address_family() == env.family();
    row(
        state,
        "get-address-family",
        if family { "as created" } else { "other" },
    );

    let made = env.make(state).await?;
    row(state, "bind", code(made.socket.bind(to_wit(env.at(0)))));
    if state == "unbound" {
        let local = made
            .socket
            .get_local_address()
            .map(|a| env.describe(&made, a));
        row(state, "bind, then get-local-address", value(local));
    }

    let made = env.make(state).await?;
    let listened = made.socket.listen();
    let worked = listened.is_ok();
    row(state, "listen", code(listened));
    if worked {
        let local = made
            .socket
            .get_local_address()
            .map(|a| env.describe(&made, a));
        row(state, "listen, then get-local-address", value(local));
        row(
            state,
            "listen, then get-is-listening",
            made.socket.get_is_listening(),
        );
    }

    let made = env.make(state).await?;
    let connected = made.socket.connect(to_wit(target.2)).await;
    row(state, "connect", code(connected.clone()));
    if connected.is_ok() {
        let local = made
            .socket
            .get_local_address()
            .map(|a| env.describe(&made, a));
        row(state, "connect, then get-local-address", value(local));
    }

    let made = env.make(state).await?;
    let (writer, outgoing) = wit_stream::new::<u8>();
    let sending = made.socket.send(outgoing);
    drop(writer);
    let sent = within(2000, async { sending.await }).await;
    row(state, "send", sent.map_or("pending".to_owned(), code));

    let made = env.make(state).await?;
    let (_first, outgoing) = wit_stream::new::<u8>();
    let _sending = made.socket.send(outgoing);
    let (_second, outgoing) = wit_stream::new::<u8>();
    let refused = made.socket.send(outgoing);
    let second = within(2000, async { refused.await }).await;
    row(
        state,
        "send twice",
        second.map_or("pending".to_owned(), code),
    );

    let made = env.make(state).await?;
    let (bytes, done) = made.socket.receive();
    row(
        state,
        "receive",
        read_out(bytes, async { done.await }, 1000).await,
    );

    let made = env.make(state).await?;
    let _receiving = made.socket.receive();
    let (bytes, done) = made.socket.receive();
    row(
        state,
        "receive twice",
        read_out(bytes, async { done.await }, 1000).await,
    );

    option_rows(env, state).await
}

/// Each option's setter with a valid value and the getter after it, and the setter with 0.
async fn option_rows(env: &Env, state: &str) -> Made<()> {
    let s = env.make(state).await?.socket;
    row(
        state,
        "set-listen-backlog-size 16",
        code(s.set_listen_backlog_size(16)),
    );
    row(
        state,
        "set-listen-backlog-size 0",
        code(s.set_listen_backlog_size(0)),
    );

    let made = env.make(state).await?;
    let s = &made.socket;
    row(
        state,
        "get-keep-alive-enabled",
        code(s.get_keep_alive_enabled()),
    );
    row(
        state,
        "set-keep-alive-enabled true",
        code(s.set_keep_alive_enabled(true)),
    );
    row(
        state,
        "get-keep-alive-enabled after set",
        value(s.get_keep_alive_enabled()),
    );
    row(
        state,
        "set-keep-alive-enabled false",
        code(s.set_keep_alive_enabled(false)),
    );
    row(
        state,
        "get-keep-alive-enabled after unset",
        value(s.get_keep_alive_enabled()),
    );

    const SECS: u64 = 1_000_000_000;
    let made = env.make(state).await?;
    let s = &made.socket;
    row(
        state,
        "get-keep-alive-idle-time",
        code(s.get_keep_alive_idle_time()),
    );
    row(
        state,
        "set-keep-alive-idle-time 42s",
        code(s.set_keep_alive_idle_time(42 * SECS)),
    );
    let idle = s.get_keep_alive_idle_time().map(seconds);
    row(state, "get-keep-alive-idle-time after set", value(idle));
    row(
        state,
        "set-keep-alive-idle-time 0",
        code(s.set_keep_alive_idle_time(0)),
    );

    let made = env.make(state).await?;
    let s = &made.socket;
    row(
        state,
        "get-keep-alive-interval",
        code(s.get_keep_alive_interval()),
    );
    row(
        state,
        "set-keep-alive-interval 7s",
        code(s.set_keep_alive_interval(7 * SECS)),
    );
    let interval = s.get_keep_alive_interval().map(seconds);
    row(state, "get-keep-alive-interval after set", value(interval));
    row(
        state,
        "set-keep-alive-interval 0",
        code(s.set_keep_alive_interval(0)),
    );

    let made = env.make(state).await?;
    let s = &made.socket;
    p3_net::setting_rows!(
        state,
        s,
        "keep-alive-count",
        get_keep_alive_count,
        set_keep_alive_count,
        5,
        0
    );

    let made = env.make(state).await?;
    let s = &made.socket;
    p3_net::setting_rows!(state, s, "hop-limit", get_hop_limit, set_hop_limit, 42, 0);

    let made = env.make(state).await?;
    let s = &made.socket;
    p3_net::setting_rows!(
        state,
        s,
        "receive-buffer-size",
        get_receive_buffer_size,
        set_receive_buffer_size,
        65536,
        0
    );

    let made = env.make(state).await?;
    let s = &made.socket;
    p3_net::setting_rows!(
        state,
        s,
        "send-buffer-size",
        get_send_buffer_size,
        set_send_buffer_size,
        65536,
        0
    );
    Ok(())
}

/// The addresses the docs name for `bind` and `connect`, each on a fresh unbound socket.
async fn argument_rows(env: &Env) -> Made<()> {
    const STATE: &str = "arguments";
    let other_family = if env.v6() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    };
    let mapped = SocketAddr::from((Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 0));
    let multicast: IpAddr = if env.v6() {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into()
    } else {
        Ipv4Addr::new(224, 0, 0, 1).into()
    };
    let unbindable: IpAddr = if env.v6() {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into()
    } else {
        Ipv4Addr::new(192, 0, 2, 1).into()
    };
    let unspecified: IpAddr = if env.v6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let (_listener, _accepted, taken) = env.listener()?;

    let mut binds = vec![
        ("bind the other family", other_family),
        ("bind multicast", SocketAddr::new(multicast, 0)),
        ("bind a foreign address", SocketAddr::new(unbindable, 0)),
        ("bind an address in use", taken),
    ];
    if env.v6() {
        binds.push(("bind ipv4-mapped", mapped));
    } else {
        binds.push(("bind broadcast", SocketAddr::from((Ipv4Addr::BROADCAST, 0))));
    }
    for (call, addr) in binds {
        let socket = env.tcp()?;
        row(STATE, call, code(socket.bind(to_wit(addr))));
        let again = socket.bind(to_wit(env.at(0)));
        row(STATE, &format!("{call}, then bind"), code(again));
    }

    let port = taken.port();
    let mut connects = vec![
        (
            "connect the other family",
            SocketAddr::new(other_family.ip(), port),
        ),
        ("connect multicast", SocketAddr::new(multicast, port)),
        ("connect unspecified", SocketAddr::new(unspecified, port)),
        ("connect port 0", env.at(0)),
    ];
    if env.v6() {
        connects.push(("connect ipv4-mapped", SocketAddr::new(mapped.ip(), port)));
    } else {
        let broadcast = SocketAddr::from((Ipv4Addr::BROADCAST, port));
        connects.push(("connect broadcast", broadcast));
    }
    for (call, addr) in connects {
        let socket = env.tcp()?;
        row(STATE, call, code(socket.connect(to_wit(addr)).await));
    }
    let socket = env.tcp()?;
    let refused = socket.connect(to_wit(env.refusing()?)).await;
    row(STATE, "connect a port nobody listens on", code(refused));

    // An implicit listener is reached through the loopback address.
    let socket = env.tcp()?;
    let mut accepted = ok("listen", socket.listen())?;
    let local = from_wit(ok("local", socket.get_local_address())?);
    let client = env.tcp()?;
    let reached = client.connect(to_wit(env.at(local.port()))).await;
    row(STATE, "connect an implicit listener's port", code(reached));
    let peer = within(2000, accepted.next()).await.flatten();
    row(
        STATE,
        "the implicit listener accepts it",
        if peer.is_some() { "ok" } else { "nothing" },
    );
    Ok(())
}

/// A socket whose connect is in flight: the listener's accept queue (backlog 1, never
/// read) is full, so the kernel drops the handshake's first packet and retries. Every call
/// but the options' is `invalid-state` while the connect runs.
async fn connecting_rows(env: &Env) -> Made<()> {
    let listener = env.tcp()?;
    ok("backlog", listener.set_listen_backlog_size(1))?;
    ok("bind", listener.bind(to_wit(env.at(0))))?;
    let _queue = ok("listen", listener.listen())?;
    let addr = from_wit(ok("local", listener.get_local_address())?);
    // Fill the queue until a connect no longer completes (two suffice on Linux).
    let mut queued = Vec::new();
    for _ in 0..16 {
        let socket = env.tcp()?;
        {
            let mut connecting = std::pin::pin!(socket.connect(to_wit(addr)));
            if within(200, connecting.as_mut()).await.is_none() {
                // The connect stays in flight while `connecting` lives.
                return connecting_calls(env, &socket, addr).await;
            }
        }
        queued.push(socket);
    }
    Err("the listener's queue never filled".to_owned())
}

async fn connecting_calls(env: &Env, socket: &TcpSocket, addr: SocketAddr) -> Made<()> {
    const STATE: &str = "connecting";
    let s = socket;
    let local = s
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(STATE, "get-local-address", value(local));
    row(STATE, "get-remote-address", code(s.get_remote_address()));
    row(STATE, "get-is-listening", s.get_is_listening());
    row(STATE, "bind", code(s.bind(to_wit(env.at(0)))));
    let again = within(2000, s.connect(to_wit(addr))).await;
    row(STATE, "connect", again.map_or("pending".to_owned(), code));
    row(STATE, "listen", code(s.listen()));
    let (_writer, outgoing) = wit_stream::new::<u8>();
    let sending = s.send(outgoing);
    let sent = within(2000, async { sending.await }).await;
    row(STATE, "send", sent.map_or("pending".to_owned(), code));
    let (bytes, done) = s.receive();
    row(
        STATE,
        "receive",
        read_out(bytes, async { done.await }, 1000).await,
    );
    row(
        STATE,
        "set-listen-backlog-size 16",
        code(s.set_listen_backlog_size(16)),
    );
    row(STATE, "set-hop-limit 42", code(s.set_hop_limit(42)));
    row(STATE, "get-hop-limit after set", value(s.get_hop_limit()));
    row(
        STATE,
        "set-keep-alive-enabled true",
        code(s.set_keep_alive_enabled(true)),
    );
    row(
        STATE,
        "get-keep-alive-enabled after set",
        value(s.get_keep_alive_enabled()),
    );
    Ok(())
}

/// Writing to a peer that closed: the first write goes out and the peer's system answers it
/// with a reset, so the next one finds the connection broken.
async fn broken_rows(env: &Env) -> Made<()> {
    let made = env.make("peer-closed").await?;
    let (mut writer, outgoing) = wit_stream::new::<u8>();
    let sending = made.socket.send(outgoing);
    let first = writer.write_all(b"a".to_vec()).await;
    let _ = within(100, std::future::pending::<()>()).await;
    let second = writer.write_all(b"b".to_vec()).await;
    drop(writer);
    let ended = within(2000, async { sending.await }).await;
    let result = ended.map_or("pending".to_owned(), code);
    let taken = |left: &Vec<u8>| if left.is_empty() { "taken" } else { "refused" };
    let call = "send, a write, then another after the peer's reset";
    row(
        "peer-closed",
        call,
        format!("{}, {}, {result}", taken(&first), taken(&second)),
    );

    // A peer that closes with bytes unread resets the connection.
    let (_listener, mut accepted, addr) = env.listener()?;
    let client = env.tcp()?;
    ok("connect", client.connect(to_wit(addr)).await)?;
    let peer = accepted.next().await.ok_or("the listen stream ended")?;
    let (mut writer, outgoing) = wit_stream::new::<u8>();
    let _sending = client.send(outgoing);
    writer.write_all(b"never read".to_vec()).await;
    let _ = within(100, std::future::pending::<()>()).await;
    drop(peer);
    let (bytes, done) = client.receive();
    let received = read_out(bytes, async { done.await }, 2000).await;
    row("connected", "receive after the peer's reset", received);
    Ok(())
}

/// What an accepted socket takes from its listener (the docs list these properties).
async fn inherited_rows(env: &Env) -> Made<()> {
    const STATE: &str = "accepted";
    let (listener, mut accepted, addr) = env.listener()?;
    ok("keep-alive", listener.set_keep_alive_enabled(true))?;
    ok("idle", listener.set_keep_alive_idle_time(42_000_000_000))?;
    ok("interval", listener.set_keep_alive_interval(7_000_000_000))?;
    ok("count", listener.set_keep_alive_count(5))?;
    ok("hop-limit", listener.set_hop_limit(42))?;
    ok(
        "receive-buffer-size",
        listener.set_receive_buffer_size(65536),
    )?;
    ok("send-buffer-size", listener.set_send_buffer_size(65536))?;
    let client = env.tcp()?;
    ok("connect", client.connect(to_wit(addr)).await)?;
    let s = accepted.next().await.ok_or("the listen stream ended")?;
    let from = "inherits";
    row(
        STATE,
        &format!("{from} keep-alive-enabled"),
        value(s.get_keep_alive_enabled()),
    );
    let idle = s.get_keep_alive_idle_time().map(seconds);
    row(STATE, &format!("{from} keep-alive-idle-time"), value(idle));
    let interval = s.get_keep_alive_interval().map(seconds);
    row(
        STATE,
        &format!("{from} keep-alive-interval"),
        value(interval),
    );
    row(
        STATE,
        &format!("{from} keep-alive-count"),
        value(s.get_keep_alive_count()),
    );
    row(
        STATE,
        &format!("{from} hop-limit"),
        value(s.get_hop_limit()),
    );
    let size = s.get_receive_buffer_size();
    row(STATE, &format!("{from} receive-buffer-size"), value(size));
    row(
        STATE,
        &format!("{from} send-buffer-size"),
        value(s.get_send_buffer_size()),
    );
    Ok(())
}

/// The policy's rows: the test denies bind and connect on `LOOPBACK:1`.
async fn policy_rows(env: &Env) -> Made<()> {
    const STATE: &str = "policy";
    let socket = env.tcp()?;
    row(
        STATE,
        "bind a denied address",
        code(socket.bind(to_wit(env.at(1)))),
    );
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(
        STATE,
        "bind a denied address, then get-local-address",
        value(local),
    );
    let socket = env.tcp()?;
    let denied = socket.connect(to_wit(env.at(1))).await;
    row(STATE, "connect a denied address", code(denied));
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(
        STATE,
        "connect a denied address, then get-local-address",
        value(local),
    );
    Ok(())
}

/// Under a policy with no listen right for the unspecified address: no implicit listener,
/// and the socket stays unbound.
async fn restricted_rows(env: &Env, target: SocketAddr) -> Made<()> {
    const STATE: &str = "restricted";
    let socket = env.tcp()?;
    row(STATE, "listen", code(socket.listen()));
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(STATE, "listen, then get-local-address", value(local));
    row(
        STATE,
        "listen, then get-is-listening",
        socket.get_is_listening(),
    );
    row(STATE, "bind loopback", code(socket.bind(to_wit(env.at(0)))));
    let unspecified = match env.family() {
        IpAddressFamily::Ipv4 => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddressFamily::Ipv6 => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = env.tcp()?;
    row(
        STATE,
        "bind unspecified",
        code(socket.bind(to_wit(unspecified))),
    );
    row(
        STATE,
        "bind unspecified, then listen",
        code(socket.listen()),
    );
    let socket = env.tcp()?;
    row(STATE, "connect", code(socket.connect(to_wit(target)).await));
    Ok(())
}

struct States;

impl bindings::exports::wasi::cli::run::Guest for States {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let ip = args.first().and_then(|a| a.parse::<IpAddr>().ok());
        let restricted = match &args[1..] {
            [] => None,
            [word, target] if word == "restricted" => target.parse::<SocketAddr>().ok(),
            _ => Some(SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let Some(ip) = ip.filter(|ip| ip.is_loopback() && restricted.is_none_or(|t| t.port() != 0))
        else {
            eprintln!(
                "error: expected a loopback IP\n\
                 usage: p3-tcp-states 127.0.0.1|::1 [restricted LISTENER]"
            );
            return Err(());
        };
        let env = Env { ip };
        let done = match restricted {
            Some(target) => restricted_rows(&env, target).await,
            None => all_rows(&env).await,
        };
        done.map_err(|why| eprintln!("error: {why}"))
    }
}

async fn all_rows(env: &Env) -> Made<()> {
    for state in STATES {
        state_rows(env, state).await?;
    }
    connecting_rows(env).await?;
    broken_rows(env).await?;
    inherited_rows(env).await?;
    argument_rows(env).await?;
    policy_rows(env).await
}

bindings::export!(States with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
