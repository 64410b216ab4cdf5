//! `p3-tcp-states LOOPBACK`, for `wasi:sockets@0.3.0`: what each state of a `tcp-socket` lets
//! a guest observe and do, from creation to closed, on the loopback address of one family.
//! It prints `ok: RULE` for each rule that holds and stops at the first broken one with
//! `broken rule: RULE: WHAT HAPPENED` (exit 1), as the 0.2 behaviour guests do.
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

use p3_net::wasi::sockets::types::{ErrorCode, IpAddressFamily, TcpSocket};
use p3_net::{code_name, from_wit, to_wit, wit_stream};
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};

/// Why a rule broke.
type Checked = Result<(), String>;

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

    fn tcp(&self) -> Result<TcpSocket, String> {
        ok("create", TcpSocket::create(self.family()))
    }

    /// A socket listening on an ephemeral port, and that port's address.
    fn listener(&self) -> Result<(TcpSocket, SocketAddr), String> {
        let socket = self.tcp()?;
        ok("bind", socket.bind(to_wit(self.at(0))))?;
        let accepted = ok("listen", socket.listen())?;
        // The stream of accepted sockets is not needed: connections wait in the backlog.
        drop(accepted);
        let local = from_wit(ok("local-address", socket.get_local_address())?);
        Ok((socket, local))
    }
}

fn ok<T>(call: &str, result: Result<T, ErrorCode>) -> Result<T, String> {
    result.map_err(|code| format!("{call} failed with {}", code_name(&code)))
}

fn fails<T: Debug>(call: &str, result: Result<T, ErrorCode>, want: ErrorCode) -> Checked {
    match result {
        Err(code) if code_name(&code) == code_name(&want) => Ok(()),
        Err(code) => Err(format!(
            "{call} failed with {}, not {}",
            code_name(&code),
            code_name(&want)
        )),
        Ok(value) => Err(format!(
            "{call} returned {value:?}, not {}",
            code_name(&want)
        )),
    }
}

fn holds(holds: bool, what: &str) -> Checked {
    if holds { Ok(()) } else { Err(what.to_owned()) }
}

/// Shared by the states without a peer: `get-remote-address` is `invalid-state`.
fn no_peer(socket: &TcpSocket) -> Checked {
    fails(
        "get-remote-address",
        socket.get_remote_address(),
        ErrorCode::InvalidState,
    )
}

/// A new socket is unbound: no addresses, not listening.
async fn unbound(env: &Env) -> Checked {
    let socket = env.tcp()?;
    fails(
        "get-local-address",
        socket.get_local_address(),
        ErrorCode::InvalidState,
    )?;
    holds(!socket.get_is_listening(), "get-is-listening")?;
    no_peer(&socket)
}

/// A bound socket has a local address with the port the system chose, is not listening, and
/// cannot be bound again.
async fn bound(env: &Env) -> Checked {
    let socket = env.tcp()?;
    ok("bind", socket.bind(to_wit(env.at(0))))?;
    let local = from_wit(ok("get-local-address", socket.get_local_address())?);
    holds(
        local.ip() == env.ip && local.port() != 0,
        "the bound address",
    )?;
    holds(!socket.get_is_listening(), "get-is-listening")?;
    fails(
        "bind again",
        socket.bind(to_wit(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    no_peer(&socket)
}

/// A listening socket says so, has a local address and no peer; bind, listen and connect are
/// `invalid-state`.
async fn listening(env: &Env) -> Checked {
    let (socket, local) = env.listener()?;
    holds(socket.get_is_listening(), "get-is-listening")?;
    fails(
        "bind",
        socket.bind(to_wit(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    fails("listen again", socket.listen(), ErrorCode::InvalidState)?;
    fails(
        "connect",
        socket.connect(to_wit(local)).await,
        ErrorCode::InvalidState,
    )?;
    no_peer(&socket)
}

/// A connected socket has both addresses and is not listening; bind, listen and connect are
/// `invalid-state`, and so are a second `send` and a second `receive`.
async fn connected(env: &Env) -> Checked {
    let (_listener, addr) = env.listener()?;
    let socket = env.tcp()?;
    ok("connect", socket.connect(to_wit(addr)).await)?;
    ok("get-local-address", socket.get_local_address())?;
    let remote = from_wit(ok("get-remote-address", socket.get_remote_address())?);
    holds(remote == addr, "the remote address is the listener's")?;
    holds(!socket.get_is_listening(), "get-is-listening")?;
    fails(
        "bind",
        socket.bind(to_wit(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    fails("listen", socket.listen(), ErrorCode::InvalidState)?;
    fails(
        "connect again",
        socket.connect(to_wit(addr)).await,
        ErrorCode::InvalidState,
    )?;
    let (first, outgoing) = wit_stream::new::<u8>();
    let _sending = socket.send(outgoing);
    let (second, outgoing) = wit_stream::new::<u8>();
    let refused = socket.send(outgoing);
    fails("a second send", refused.await, ErrorCode::InvalidState)?;
    drop((first, second));
    let (_bytes, _receiving) = socket.receive();
    let (_, refused) = socket.receive();
    fails("a second receive", refused.await, ErrorCode::InvalidState)
}

/// `send` and `receive` on a socket that is not connected settle `invalid-state`.
async fn streams_need_a_connection(env: &Env) -> Checked {
    let socket = env.tcp()?;
    let (_writer, outgoing) = wit_stream::new::<u8>();
    fails("send", socket.send(outgoing).await, ErrorCode::InvalidState)?;
    let (_, receiving) = socket.receive();
    fails("receive", receiving.await, ErrorCode::InvalidState)
}

/// After a refused connect the socket is closed: no addresses, no bind, listen or connect.
async fn closed(env: &Env) -> Checked {
    let addr = env.listener()?.1;
    let socket = env.tcp()?;
    fails(
        "connect",
        socket.connect(to_wit(addr)).await,
        ErrorCode::ConnectionRefused,
    )?;
    fails(
        "get-local-address",
        socket.get_local_address(),
        ErrorCode::InvalidState,
    )?;
    fails(
        "bind",
        socket.bind(to_wit(env.at(0))),
        ErrorCode::InvalidState,
    )?;
    fails("listen", socket.listen(), ErrorCode::InvalidState)?;
    fails(
        "connect again",
        socket.connect(to_wit(addr)).await,
        ErrorCode::InvalidState,
    )?;
    no_peer(&socket)?;
    holds(
        socket.get_address_family() == env.family(),
        "get-address-family",
    )
}

/// `get-address-family` is the one the socket was created with, in every state.
async fn family(env: &Env) -> Checked {
    let socket = env.tcp()?;
    holds(socket.get_address_family() == env.family(), "unbound")?;
    ok("bind", socket.bind(to_wit(env.at(0))))?;
    holds(socket.get_address_family() == env.family(), "bound")?;
    let (listener, addr) = env.listener()?;
    holds(listener.get_address_family() == env.family(), "listening")?;
    let client = env.tcp()?;
    ok("connect", client.connect(to_wit(addr)).await)?;
    holds(client.get_address_family() == env.family(), "connected")
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
            eprintln!("error: expected a loopback IP\nusage: p3-tcp-states 127.0.0.1|::1");
            return Err(());
        };
        let env = Env { ip };
        let rules = [
            "unbound: no addresses, not listening",
            "bound: a local address, no remote one, no second bind",
            "listening: a local address, no peer, no bind, listen or connect",
            "connected: both addresses, no bind, listen, connect, second send or receive",
            "send and receive need a connection",
            "closed after a refused connect: nothing but its family",
            "get-address-family is the one created with, in every state",
        ];
        for (i, rule) in rules.iter().enumerate() {
            let checked = match i {
                0 => unbound(&env).await,
                1 => bound(&env).await,
                2 => listening(&env).await,
                3 => connected(&env).await,
                4 => streams_need_a_connection(&env).await,
                5 => closed(&env).await,
                _ => family(&env).await,
            };
            match checked {
                Ok(()) => println!("ok: {rule}"),
                Err(what) => {
                    println!("broken rule: {rule}: {what}");
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

bindings::export!(States with_types_in bindings);

/// std's `wasi:cli/run@0.2.0`: never the program.
fn main() {
    p3_net::wrong_entry_point()
}
