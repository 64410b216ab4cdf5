"""One fetch, the nano-process example's unit of work in Python: connect to `IP:PORT`, send
`weather?`, shut down sending, read the reply to its end. A failure raises `Err` with the WIT
`error-code` (`access-denied`), or with the problem with the address."""

from componentize_py_types import Err
from wit_world.imports import instance_network, streams, tcp, tcp_create_socket

import capnet_guest as guest


def fetch(text):
    """The whole reply of the server at `text`, through this component's own network."""
    try:
        family, addr = guest.parse_addr(text)
    except ValueError as problem:
        raise Err(str(problem))
    try:
        with instance_network.instance_network() as net:
            socket = tcp_create_socket.create_tcp_socket(family)
            with socket:
                with socket.subscribe() as ready:
                    socket.start_connect(net, addr)
                    input, output = guest.block_on(ready, socket.finish_connect)
                with input, output:
                    output.blocking_write_and_flush(b"weather?\n")
                    socket.shutdown(tcp.ShutdownType.SEND)
                    reply = b""
                    while True:
                        try:
                            reply += input.blocking_read(64 * 1024)
                        except Err as error:
                            if isinstance(error.value, streams.StreamError_Closed):
                                break
                            raise
    except Err as error:
        raise Err(guest.code_name(error))
    return reply.decode()
