//! The harness of the behaviour guests (`tcp-bind`, `udp-states`, ...): each guest is a list
//! of rules from the `wasi:sockets` docs, checked in order on one loopback address.
//!
//! The command line is `GUEST LOOPBACK`, where `LOOPBACK` is `127.0.0.1` or `::1`: the rules are
//! checked for that address family. Each rule that holds prints `ok: RULE` to stdout; the first
//! broken one prints `broken rule: RULE: WHAT HAPPENED` to stderr and exits 1. A bad command
//! line exits 2.

use std::fmt::{Debug, Display};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use crate::wasi::io::poll::Pollable;
use crate::wasi::io::streams::{InputStream, OutputStream};
use crate::wasi::sockets::instance_network::instance_network;
use crate::wasi::sockets::network::{ErrorCode, IpAddressFamily, Network};
use crate::wasi::sockets::tcp::TcpSocket;
use crate::wasi::sockets::tcp_create_socket::create_tcp_socket;
use crate::wasi::sockets::udp::{
    IncomingDatagram, IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket,
};
use crate::wasi::sockets::udp_create_socket::create_udp_socket;
use crate::{error_name, from_wasi};
pub use crate::{tcp_accept, tcp_bind, tcp_connect, tcp_listen, udp_bind};

/// What a rule found wrong.
pub type Broken = String;

/// The outcome of checking one rule.
pub type Checked = Result<(), Broken>;

/// A rule: its statement, and the function that checks it.
pub type Rule = (&'static str, fn(&Env) -> Checked);

/// What every rule gets: the loopback address under test and the instance's network.
pub struct Env {
    /// The loopback address (`127.0.0.1` or `::1`).
    pub ip: IpAddr,
    /// The instance's network.
    pub net: Network,
}

impl Env {
    /// The address family under test.
    pub fn family(&self) -> IpAddressFamily {
        match self.ip {
            IpAddr::V4(_) => IpAddressFamily::Ipv4,
            IpAddr::V6(_) => IpAddressFamily::Ipv6,
        }
    }

    /// The loopback address with `port`.
    pub fn at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, port)
    }

    /// The unspecified address of the family under test, with `port`.
    pub fn unspecified(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, port).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, port).into(),
        }
    }

    /// The loopback address of the other family, with `port`.
    pub fn other_family(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V4(_) => (Ipv6Addr::LOCALHOST, port).into(),
            IpAddr::V6(_) => (Ipv4Addr::LOCALHOST, port).into(),
        }
    }

    /// A multicast address of the family under test, with `port`.
    pub fn multicast(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V4(_) => (Ipv4Addr::new(224, 0, 0, 1), port).into(),
            IpAddr::V6(_) => (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), port).into(),
        }
    }

    /// A documentation address (TEST-NET-1, 2001:db8::) no interface of this machine has.
    pub fn foreign(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V4(_) => (Ipv4Addr::new(192, 0, 2, 1), port).into(),
            IpAddr::V6(_) => (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), port).into(),
        }
    }

    /// A fresh TCP socket of the family under test.
    pub fn tcp(&self) -> Result<TcpSocket, Broken> {
        ok("create-tcp-socket", create_tcp_socket(self.family()))
    }

    /// A fresh UDP socket of the family under test.
    pub fn udp(&self) -> Result<UdpSocket, Broken> {
        ok("create-udp-socket", create_udp_socket(self.family()))
    }

    /// A TCP socket listening on the loopback address, and its address.
    pub fn listener(&self) -> Result<(TcpSocket, SocketAddr), Broken> {
        let socket = self.tcp()?;
        ok("bind", tcp_bind(&socket, &self.net, self.at(0)))?;
        ok("listen", tcp_listen(&socket))?;
        let addr = from_wasi(ok("local-address", socket.local_address())?);
        Ok((socket, addr))
    }

    /// A TCP connection over loopback: the client and the server's accepted end, each with its
    /// streams.
    pub fn connection(&self) -> Result<(Connected, Connected), Broken> {
        let (listener, addr) = self.listener()?;
        let client = self.tcp()?;
        let (input, output) = ok("connect", tcp_connect(&client, &self.net, addr))?;
        let (server, server_in, server_out) = ok("accept", tcp_accept(&listener))?;
        Ok((
            Connected {
                input,
                output,
                socket: client,
            },
            Connected {
                input: server_in,
                output: server_out,
                socket: server,
            },
        ))
    }

    /// A UDP socket bound to the loopback address, and its address.
    pub fn bound_udp(&self) -> Result<(UdpSocket, SocketAddr), Broken> {
        let socket = self.udp()?;
        ok("bind", udp_bind(&socket, &self.net, self.at(0)))?;
        let addr = from_wasi(ok("local-address", socket.local_address())?);
        Ok((socket, addr))
    }
}

/// A connected TCP socket and its streams; the streams drop before the socket.
pub struct Connected {
    /// Its input stream.
    pub input: InputStream,
    /// Its output stream.
    pub output: OutputStream,
    /// The socket.
    pub socket: TcpSocket,
}

/// Checks `rules` in order on the loopback address given on the command line.
pub fn run(guest: &str, rules: &[Rule]) -> ExitCode {
    let mut args = std::env::args().skip(1);
    let ip = match (args.next().map(|a| a.parse::<IpAddr>()), args.next()) {
        (Some(Ok(ip)), None) if ip.is_loopback() => ip,
        _ => return guest_cli::usage(&format!("{guest} 127.0.0.1|::1"), "expected a loopback IP"),
    };
    let env = Env {
        ip,
        net: instance_network(),
    };
    for (rule, check) in rules {
        match check(&env) {
            Ok(()) => println!("ok: {rule}"),
            Err(broken) => {
                eprintln!("broken rule: {rule}: {broken}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// `result` must be `Ok`; its value.
pub fn ok<T>(call: &str, result: Result<T, ErrorCode>) -> Result<T, Broken> {
    result.map_err(|code| format!("{call} failed with {}", error_name(code)))
}

/// `result` must be the error `want`.
pub fn fails<T>(call: &str, result: Result<T, ErrorCode>, want: ErrorCode) -> Checked {
    match result {
        Err(code) if code == want => Ok(()),
        Err(code) => Err(format!(
            "{call} failed with {}, not {}",
            error_name(code),
            error_name(want)
        )),
        Ok(_) => Err(format!("{call} succeeded, not {}", error_name(want))),
    }
}

/// `got` must equal `want`.
pub fn same<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Checked {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} is {got:?}, not {want:?}"))
    }
}

/// `holds` must be true, else `what` is the complaint.
pub fn holds(holds: bool, what: impl Display) -> Checked {
    if holds { Ok(()) } else { Err(what.to_string()) }
}

/// Waits until `pollable` is ready, at most `ms` milliseconds; whether it was.
pub fn ready_within(pollable: &Pollable, ms: u64) -> bool {
    let timer = crate::wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000);
    let ready = crate::wasi::io::poll::poll(&[pollable, &timer]);
    ready.contains(&0)
}

/// Receives up to `max` datagrams, waiting up to five seconds for the first.
pub fn udp_receive(
    incoming: &IncomingDatagramStream,
    max: u64,
) -> Result<Vec<IncomingDatagram>, Broken> {
    let ready = incoming.subscribe();
    for _ in 0..2 {
        let got = ok("receive", incoming.receive(max))?;
        if !got.is_empty() {
            return Ok(got);
        }
        ready_within(&ready, 5_000);
    }
    Err("no datagram arrived within 5 s".to_owned())
}

/// Sends `datagrams` once `check-send` permits them all.
pub fn udp_send(
    outgoing: &OutgoingDatagramStream,
    datagrams: &[OutgoingDatagram],
) -> Result<u64, ErrorCode> {
    let ready = outgoing.subscribe();
    while outgoing.check_send()? < datagrams.len() as u64 {
        ready.block();
    }
    outgoing.send(datagrams)
}
