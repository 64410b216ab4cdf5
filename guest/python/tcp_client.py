"""`tcp-client ADDR MESSAGE`: connects to `ADDR` (`IP:PORT` or `[IPV6]:PORT`), sends `MESSAGE`,
shuts down its sending side, and prints everything that comes back until the peer closes.

A failure prints one line `error: OPERATION ADDR: CODE` to stderr, where `CODE` is the WIT
`error-code` (`error: connect 127.0.0.1:9: access-denied`), and exits 1. The operations are
`create-tcp-socket`, `connect`, `write`, `shutdown` and `read`.
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import instance_network, streams, tcp, tcp_create_socket

import capnet_guest as guest

USAGE = "tcp-client ADDR MESSAGE"


class Run(exports.Run):
    def run(self) -> None:
        args = guest.args()
        if len(args) != 2:
            guest.usage(USAGE, "expected two arguments")
        text, message = args
        try:
            family, addr = guest.parse_addr(text)
        except ValueError as problem:
            guest.usage(USAGE, problem)
        exchange(family, addr, text, message.encode())


def exchange(family, addr, text, message):
    """Connects, sends `message`, and copies the answer to stdout; resources are dropped
    children first (streams, pollable, socket, network)."""
    with instance_network.instance_network() as net:
        try:
            socket = tcp_create_socket.create_tcp_socket(family)
        except Err as error:
            guest.fail("create-tcp-socket", text, guest.code_name(error))
        with socket:
            with socket.subscribe() as ready:
                try:
                    socket.start_connect(net, addr)
                    input, output = guest.block_on(ready, socket.finish_connect)
                except Err as error:
                    guest.fail("connect", text, guest.code_name(error))
            with input, output:
                guest.write_all(output, message, text)
                try:
                    socket.shutdown(tcp.ShutdownType.SEND)
                except Err as error:
                    guest.fail("shutdown", text, guest.code_name(error))
                while True:
                    try:
                        data = input.blocking_read(64 * 1024)
                    except Err as error:
                        if isinstance(error.value, streams.StreamError_Closed):
                            break
                        guest.fail("read", text, guest.code_name(error))
                    sys.stdout.buffer.write(data)
    sys.stdout.flush()
