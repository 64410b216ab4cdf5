//! `p3-udp-states LOOPBACK`, for `wasi:sockets@0.3.0`: every call of a `udp-socket` in every
//! state it can be in, on the loopback address of one family, printed as a table of
//! `STATE | CALL | RESULT` rows (`ok`, `ok VALUE` or the error code). The guest only
//! observes: the host test holds the codes the WIT docs give and compares.
//!
//! Each row runs on a fresh socket brought to its state, so no row depends on another. The
//! states: `unbound`, `bound` (to the loopback address, port 0), `sent` (bound implicitly by
//! a first send), `connected` (bound, then connected to a peer) and `disconnected` (connected,
//! then disconnected). Addresses print as `as bound`, `loopback:same port` (the address
//! connecting chose, on the port the socket had), `loopback:ephemeral`,
//! `unspecified:ephemeral`, `the peer` or `another peer`. The `arguments` rows try the
//! addresses the docs name; the `policy` rows need the test's policy (`LOOPBACK:1` denied for
//! `udp-bind` and `udp-send`).
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

use p3_net::table::{code, row, value};
use p3_net::wasi::sockets::types::{ErrorCode, IpAddressFamily, IpSocketAddress, UdpSocket};
use p3_net::{code_name, from_wit, to_wit, within};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a state could not be reached.
type Made<T> = Result<T, String>;

fn ok<T>(call: &str, result: Result<T, ErrorCode>) -> Made<T> {
    result.map_err(|code| format!("{call} failed with {}", code_name(&code)))
}

/// The states a row can start from.
const STATES: [&str; 5] = ["unbound", "bound", "sent", "connected", "disconnected"];

/// How long a datagram sent over loopback may take to arrive before it counts as not sent.
const PATIENCE_MS: u64 = 2000;

/// A socket in a state, with the address it was bound to, if it was.
struct InState {
    socket: UdpSocket,
    bound: Option<SocketAddr>,
}

/// A bound socket on the far side, and its address.
struct Peer {
    socket: UdpSocket,
    addr: SocketAddr,
}

/// The loopback address under test and two peers to talk to.
struct Env {
    ip: IpAddr,
    peer: Peer,
    other: Peer,
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

    fn udp(&self) -> Made<UdpSocket> {
        ok("create", UdpSocket::create(self.family()))
    }

    async fn make(&self, state: &str) -> Made<InState> {
        let socket = self.udp()?;
        let mut bound = None;
        match state {
            "unbound" => {}
            "sent" => {
                let to = Some(to_wit(self.peer.addr));
                ok("send", socket.send(b"hello".to_vec(), to).await)?;
                bound = Some(from_wit(ok("local", socket.get_local_address())?));
            }
            "bound" | "connected" | "disconnected" => {
                ok("bind", socket.bind(to_wit(self.at(0))))?;
                bound = Some(from_wit(ok("local", socket.get_local_address())?));
                if state != "bound" {
                    ok("connect", socket.connect(to_wit(self.peer.addr)))?;
                }
                if state == "disconnected" {
                    ok("disconnect", socket.disconnect())?;
                }
            }
            other => return Err(format!("no state {other}")),
        }
        Ok(InState { socket, bound })
    }

    fn describe(&self, made: &InState, addr: IpSocketAddress) -> String {
        let addr = from_wit(addr);
        if made.bound == Some(addr) {
            "as bound".to_owned()
        } else if made.bound.is_some_and(|b| b.port() == addr.port()) {
            // Connecting from the unspecified address picks the route's own address.
            let ip = self.describe_alone(addr);
            format!("{}:same port", ip.split(':').next().unwrap_or_default())
        } else if addr == self.peer.addr {
            "the peer".to_owned()
        } else if addr == self.other.addr {
            "another peer".to_owned()
        } else {
            self.describe_alone(addr)
        }
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

    fn local(&self, made: &InState) -> String {
        value(
            made.socket
                .get_local_address()
                .map(|a| self.describe(made, a)),
        )
    }

    fn remote(&self, made: &InState) -> String {
        value(
            made.socket
                .get_remote_address()
                .map(|a| self.describe(made, a)),
        )
    }
}

fn peer(ip: IpAddr) -> Made<Peer> {
    let socket = ok(
        "create",
        UdpSocket::create(p3_net::family(&SocketAddr::new(ip, 0))),
    )?;
    ok("bind", socket.bind(to_wit(SocketAddr::new(ip, 0))))?;
    let addr = from_wit(ok("local", socket.get_local_address())?);
    Ok(Peer { socket, addr })
}

/// The next datagram `at` receives within the patience: `TEXT from WHO`, `nothing` or a code.
async fn heard(env: &Env, made: Option<&InState>, at: &UdpSocket) -> String {
    match within(PATIENCE_MS, at.receive()).await {
        None => "nothing".to_owned(),
        Some(Err(code)) => code_name(&code),
        Some(Ok((data, from))) => {
            let who = match made {
                Some(made) => env.describe(made, from),
                None => env.describe_alone(from_wit(from)),
            };
            format!("ok {} from {who}", String::from_utf8_lossy(&data))
        }
    }
}

/// Whether `peer` hears one datagram within the patience (what it is, it drops).
async fn arrives(peer: &Peer) -> &'static str {
    match within(PATIENCE_MS, peer.socket.receive()).await {
        Some(Ok(_)) => "arrives",
        Some(Err(_)) => "receive failed",
        None => "does not arrive",
    }
}

/// The rows every state has, each on a fresh socket in `state`.
async fn state_rows(env: &Env, state: &str) -> Made<()> {
    let made = env.make(state).await?;
    row(state, "get-local-address", env.local(&made));
    row(state, "get-remote-address", env.remote(&made));
    let family = made.socket.get_address_family() == env.family();
    row(
        state,
        "get-address-family",
        if family { "as created" } else { "other" },
    );

    let made = env.make(state).await?;
    row(state, "bind", code(made.socket.bind(to_wit(env.at(0)))));
    row(state, "bind, then get-local-address", env.local(&made));

    let made = env.make(state).await?;
    row(
        state,
        "connect another peer",
        code(made.socket.connect(to_wit(env.other.addr))),
    );
    row(state, "connect, then get-local-address", env.local(&made));
    row(state, "connect, then get-remote-address", env.remote(&made));

    let made = env.make(state).await?;
    let before = env.local(&made);
    row(state, "disconnect", code(made.socket.disconnect()));
    row(
        state,
        "disconnect, then get-remote-address",
        env.remote(&made),
    );
    let after = env.local(&made);
    let kept = if after == before {
        "as before".to_owned()
    } else {
        after
    };
    row(state, "disconnect, then get-local-address", kept);

    // Sends; each peer drains what a state's own making sent it first.
    let made = env.make(state).await?;
    drain(&env.peer).await;
    let sent = made
        .socket
        .send(b"to".to_vec(), Some(to_wit(env.peer.addr)))
        .await;
    row(state, "send to the peer", code(sent.clone()));
    if sent.is_ok() {
        row(
            state,
            "send to the peer, the datagram",
            arrives(&env.peer).await,
        );
    }
    row(state, "send, then get-local-address", env.local(&made));

    let made = env.make(state).await?;
    drain(&env.peer).await;
    let sent = made.socket.send(b"to".to_vec(), None).await;
    row(state, "send without an address", code(sent.clone()));
    if sent.is_ok() {
        row(
            state,
            "send without an address, the datagram",
            arrives(&env.peer).await,
        );
    }

    let made = env.make(state).await?;
    drain(&env.other).await;
    let sent = made
        .socket
        .send(b"to".to_vec(), Some(to_wit(env.other.addr)))
        .await;
    row(state, "send to another peer", code(sent.clone()));
    if sent.is_ok() {
        row(
            state,
            "send to another peer, the datagram",
            arrives(&env.other).await,
        );
    }

    // Receives: another peer sends first, then the peer.
    let made = env.make(state).await?;
    match made.socket.get_local_address() {
        Ok(local) if from_wit(local).port() == 0 => {
            row(state, "receive", "no port to send to");
        }
        Ok(local) => {
            let mut to = from_wit(local);
            if to.ip().is_unspecified() {
                to.set_ip(env.ip);
            }
            ok(
                "send",
                env.other
                    .socket
                    .send(b"other".to_vec(), Some(to_wit(to)))
                    .await,
            )?;
            ok(
                "send",
                env.peer
                    .socket
                    .send(b"peer".to_vec(), Some(to_wit(to)))
                    .await,
            )?;
            row(
                state,
                "receive",
                heard(env, Some(&made), &made.socket).await,
            );
        }
        Err(_) => row(
            state,
            "receive",
            heard(env, Some(&made), &made.socket).await,
        ),
    }

    option_rows(env, state).await
}

/// Reads whatever `peer` was sent, so the next row's datagram is the one it hears.
async fn drain(peer: &Peer) {
    while within(50, peer.socket.receive()).await.is_some() {}
}

/// Each option's setter with a valid value and the getter after it, and the setter with 0.
async fn option_rows(env: &Env, state: &str) -> Made<()> {
    let made = env.make(state).await?;
    let s = &made.socket;
    p3_net::setting_rows!(
        state,
        s,
        "unicast-hop-limit",
        get_unicast_hop_limit,
        set_unicast_hop_limit,
        42,
        0
    );

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

/// The addresses the docs name for `bind`, `connect` and `send`, each on a fresh unbound
/// socket; after a refused `connect` or `send` the socket is still unbound.
async fn argument_rows(env: &Env) -> Made<()> {
    const STATE: &str = "arguments";
    let other_family: IpAddr = if env.v6() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        Ipv6Addr::LOCALHOST.into()
    };
    let mapped: IpAddr = Ipv4Addr::LOCALHOST.to_ipv6_mapped().into();
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

    let mut binds = vec![
        ("bind the other family", SocketAddr::new(other_family, 0)),
        ("bind a foreign address", SocketAddr::new(unbindable, 0)),
        ("bind an address in use", env.peer.addr),
    ];
    if env.v6() {
        binds.push(("bind ipv4-mapped", SocketAddr::new(mapped, 0)));
    }
    for (call, addr) in binds {
        let socket = env.udp()?;
        row(STATE, call, code(socket.bind(to_wit(addr))));
        row(
            STATE,
            &format!("{call}, then bind"),
            code(socket.bind(to_wit(env.at(0)))),
        );
    }

    let port = env.peer.addr.port();
    let mut remotes = vec![
        ("the other family", SocketAddr::new(other_family, port)),
        ("unspecified", SocketAddr::new(unspecified, port)),
        ("port 0", env.at(0)),
    ];
    if env.v6() {
        remotes.push(("ipv4-mapped", SocketAddr::new(mapped, port)));
    }
    for (what, addr) in remotes {
        let socket = env.udp()?;
        row(
            STATE,
            &format!("connect {what}"),
            code(socket.connect(to_wit(addr))),
        );
        let local = socket
            .get_local_address()
            .map(|a| env.describe_alone(from_wit(a)));
        row(
            STATE,
            &format!("connect {what}, then get-local-address"),
            value(local),
        );
        let socket = env.udp()?;
        let sent = socket.send(b"x".to_vec(), Some(to_wit(addr))).await;
        row(STATE, &format!("send to {what}"), code(sent));
        let local = socket
            .get_local_address()
            .map(|a| env.describe_alone(from_wit(a)));
        row(
            STATE,
            &format!("send to {what}, then get-local-address"),
            value(local),
        );
    }
    let socket = env.udp()?;
    row(
        STATE,
        "send without an address",
        code(socket.send(b"x".to_vec(), None).await),
    );
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(
        STATE,
        "send without an address, then get-local-address",
        value(local),
    );

    let socket = env.udp()?;
    let big = vec![0u8; 65_535];
    let sent = socket.send(big, Some(to_wit(env.peer.addr))).await;
    row(STATE, "send 65535 bytes", code(sent));

    // A connected socket hears of a closed port (an ICMP error) at its next receive.
    let socket = env.udp()?;
    let closed = peer(env.ip)?.addr;
    ok("connect", socket.connect(to_wit(closed)))?;
    let sent = socket.send(b"anyone?".to_vec(), None).await;
    row("connected", "send to a closed port", code(sent));
    let heard = heard(env, None, &socket).await;
    row("connected", "send to a closed port, then receive", heard);

    // A connected socket takes its peer's address, and no other.
    let made = env.make("connected").await?;
    drain(&env.peer).await;
    let sent = made
        .socket
        .send(b"to".to_vec(), Some(to_wit(env.peer.addr)))
        .await;
    row("connected", "send to the peer named", code(sent));
    row(
        "connected",
        "send to the peer named, the datagram",
        arrives(&env.peer).await,
    );
    Ok(())
}

/// The policy's rows: the test denies `udp-bind` and `udp-send` on `LOOPBACK:1`.
async fn policy_rows(env: &Env) -> Made<()> {
    const STATE: &str = "policy";
    let denied = env.at(1);
    let socket = env.udp()?;
    row(
        STATE,
        "bind a denied address",
        code(socket.bind(to_wit(denied))),
    );
    let socket = env.udp()?;
    row(
        STATE,
        "connect a denied address",
        code(socket.connect(to_wit(denied))),
    );
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(
        STATE,
        "connect a denied address, then get-local-address",
        value(local),
    );
    let socket = env.udp()?;
    let sent = socket.send(b"x".to_vec(), Some(to_wit(denied))).await;
    row(STATE, "send to a denied address", code(sent));
    let local = socket
        .get_local_address()
        .map(|a| env.describe_alone(from_wit(a)));
    row(
        STATE,
        "send to a denied address, then get-local-address",
        value(local),
    );
    let made = env.make("bound").await?;
    let sent = made.socket.send(b"x".to_vec(), Some(to_wit(denied))).await;
    row(
        STATE,
        "send from a bound socket to a denied address",
        code(sent),
    );
    // A refused connect leaves a connected socket with the peer it had.
    let made = env.make("connected").await?;
    let refused = made.socket.connect(to_wit(denied));
    row(
        STATE,
        "connect a connected socket to a denied address",
        code(refused),
    );
    let call = "connect a connected socket to a denied address, then get-remote-address";
    row(STATE, call, env.remote(&made));
    Ok(())
}

struct States;

impl bindings::exports::wasi::cli::run::Guest for States {
    async fn run() -> Result<(), ()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let Some(ip) = args
            .first()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .filter(|ip| ip.is_loopback() && args.len() == 1)
        else {
            eprintln!("error: expected a loopback IP\nusage: p3-udp-states 127.0.0.1|::1");
            return Err(());
        };
        let rows = async {
            let env = Env {
                ip,
                peer: peer(ip)?,
                other: peer(ip)?,
            };
            for state in STATES {
                state_rows(&env, state).await?;
            }
            argument_rows(&env).await?;
            policy_rows(&env).await
        };
        rows.await.map_err(|why: String| eprintln!("error: {why}"))
    }
}

bindings::export!(States with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
