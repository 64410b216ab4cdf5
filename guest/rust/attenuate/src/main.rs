//! `attenuate STEP...`: derives narrower networks with `capnet:sockets/attenuate`, uses them,
//! and revokes them, one STEP per argument, each reported on one stdout line as
//! `STEP: ok [DETAIL]` or `STEP: error CODE`:
//!
//! - `derive NAME FROM RULE...`: derives network NAME from network FROM (`root` is the
//!   instance's own). A RULE is `+USE:TARGET` to allow or `-USE:TARGET` to deny, handed over
//!   as the rule text `USE TARGET` (`+connect:127.0.0.1:8080`). A rule the host cannot read
//!   is reported as `error rule "TEXT": MESSAGE`.
//! - `connect NET ADDR`: opens a TCP connection to ADDR through NET and keeps it, numbered
//!   from 0 in the order opened.
//! - `revoke NAME`: revokes derived network NAME.
//! - `read CONN`: reads connection CONN to its end: `ok eof`, or the stream error.
//!
//! Exits 0 when every step ran, whatever they returned; 2 on a bad command line.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use wasi_net::capnet::sockets::attenuate::{Revoker, derive};
use wasi_net::wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi_net::wasi::sockets::instance_network::instance_network;
use wasi_net::wasi::sockets::network::Network;
use wasi_net::wasi::sockets::tcp::TcpSocket;
use wasi_net::wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi_net::{block_on, error_name, to_wasi};

const USAGE: &str =
    "attenuate (derive NAME FROM RULE... | connect NET ADDR | revoke NAME | read CONN)...";

#[derive(Default)]
struct State {
    networks: HashMap<String, Network>,
    revokers: HashMap<String, Revoker>,
    connections: Vec<(TcpSocket, InputStream, OutputStream)>,
}

fn main() -> ExitCode {
    let mut state = State::default();
    state.networks.insert("root".into(), instance_network());
    for step in std::env::args().skip(1) {
        let words: Vec<&str> = step.split_whitespace().collect();
        let outcome = match words.as_slice() {
            ["derive", name, from, rules @ ..] => state.derive(name, from, rules),
            ["connect", net, addr] => state.connect(net, addr),
            ["revoke", name] => state.revoke(name),
            ["read", conn] => state.read(conn),
            _ => {
                eprintln!("error: bad step {step:?}\nusage: {USAGE}");
                return ExitCode::from(2);
            }
        };
        match outcome {
            Ok(detail) => println!("{step}: ok{detail}"),
            Err(error) => println!("{step}: error {error}"),
        }
    }
    ExitCode::SUCCESS
}

impl State {
    fn network(&self, name: &str) -> Result<&Network, String> {
        self.networks
            .get(name)
            .ok_or_else(|| format!("no network {name}"))
    }

    fn derive(&mut self, name: &str, from: &str, rules: &[&str]) -> Result<String, String> {
        let (mut allow, mut deny) = (Vec::new(), Vec::new());
        for rule in rules {
            let (list, text) = match rule.split_at_checked(1) {
                Some(("+", text)) => (&mut allow, text),
                Some(("-", text)) => (&mut deny, text),
                _ => return Err(format!("rule {rule:?} does not start with + or -")),
            };
            list.push(match text.split_once(':') {
                Some((use_, target)) => format!("{use_} {target}"),
                None => text.to_owned(),
            });
        }
        let parent = self.network(from)?;
        let (network, revoker) = derive(parent, &allow, &deny)
            .map_err(|e| format!("rule {:?}: {}", e.rule, e.message))?;
        self.networks.insert(name.to_owned(), network);
        self.revokers.insert(name.to_owned(), revoker);
        Ok(String::new())
    }

    fn connect(&mut self, net: &str, addr: &str) -> Result<String, String> {
        let addr: SocketAddr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
        let family = wasi_net::family(&addr);
        let socket = create_tcp_socket(family).map_err(|c| error_name(c).to_owned())?;
        let ready = socket.subscribe();
        let (input, output) = socket
            .start_connect(self.network(net)?, to_wasi(addr))
            .and_then(|()| block_on(&ready, || socket.finish_connect()))
            .map_err(|c| error_name(c).to_owned())?;
        self.connections.push((socket, input, output));
        Ok(format!(" {}", self.connections.len() - 1))
    }

    fn revoke(&mut self, name: &str) -> Result<String, String> {
        let revoker = self
            .revokers
            .get(name)
            .ok_or_else(|| format!("no derived network {name}"))?;
        revoker.revoke();
        Ok(String::new())
    }

    fn read(&mut self, conn: &str) -> Result<String, String> {
        let index: usize = conn.parse().map_err(|_| format!("bad connection {conn}"))?;
        let (_, input, _) = self
            .connections
            .get(index)
            .ok_or_else(|| format!("no connection {index}"))?;
        let mut total = 0;
        loop {
            match input.blocking_read(64 * 1024) {
                Ok(bytes) => total += bytes.len(),
                Err(StreamError::Closed) => return Ok(format!(" eof after {total} bytes")),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("stream failed: {}", e.to_debug_string()));
                }
            }
        }
    }
}
