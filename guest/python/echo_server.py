"""`echo-server ADDR [MAX_CONNS]`: a TCP echo server on the `wasi:sockets` bindings.

Binds and listens on `ADDR`, prints `listening on <actual local address>` (port 0 reports the
port the host chose), then serves connections one at a time: every byte a client sends is
written back until the client shuts down its sending side, and then the connection is closed.
After `MAX_CONNS` connections it exits 0 (default: serve forever).

A failure prints one line `error: OPERATION ADDR: CODE` to stderr, with the WIT `error-code`
(`error: bind 127.0.0.1:0: access-denied`), and exits 1.
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import instance_network, streams, tcp_create_socket

import capnet_guest as guest

USAGE = "echo-server ADDR [MAX_CONNS]"


class Run(exports.Run):
    def run(self) -> None:
        args = guest.args()
        if not 1 <= len(args) <= 2:
            guest.usage(USAGE, "expected ADDR and an optional MAX_CONNS")
        text = args[0]
        try:
            family, addr = guest.parse_addr(text)
            max_conns = int(args[1]) if len(args) == 2 else None
        except ValueError as problem:
            guest.usage(USAGE, problem)
        serve(family, addr, text, max_conns)


def serve(family, addr, text, max_conns):
    with instance_network.instance_network() as net:
        try:
            listener = tcp_create_socket.create_tcp_socket(family)
        except Err as error:
            guest.fail("create-tcp-socket", text, guest.code_name(error))
        with listener, listener.subscribe() as ready:
            try:
                listener.start_bind(net, addr)
                guest.block_on(ready, listener.finish_bind)
            except Err as error:
                guest.fail("bind", text, guest.code_name(error))
            try:
                listener.start_listen()
                guest.block_on(ready, listener.finish_listen)
            except Err as error:
                guest.fail("listen", text, guest.code_name(error))
            local = guest.format_addr(listener.local_address())
            print(f"listening on {local}", flush=True)
            served = 0
            while max_conns is None or served < max_conns:
                try:
                    client, input, output = guest.block_on(ready, listener.accept)
                except Err as error:
                    guest.fail("accept", local, guest.code_name(error))
                with client:
                    peer = guest.format_addr(client.remote_address())
                    with input, output:
                        echo(input, output, peer)
                served += 1


def echo(input, output, peer):
    """Writes back everything read from `input` until the peer closes its sending side."""
    while True:
        try:
            data = input.blocking_read(64 * 1024)
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                return
            guest.fail("read", peer, guest.code_name(error))
        guest.write_all(output, data, peer)
