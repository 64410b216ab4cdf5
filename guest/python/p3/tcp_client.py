"""`tcp-client ADDR MESSAGE` for `wasi:sockets@0.3.0`: connects to ADDR, sends MESSAGE through a
`stream<u8>`, ends it, and prints everything the peer sends back until it ends.

The program is the component's `wasi:cli/run@0.3.0`, an `async def`. A failure prints
`error: OPERATION ADDR: CODE` (`error: connect 127.0.0.1:9: access-denied`) and exits 1; the
operations are `create`, `connect`, `send` and `receive`.
"""

import sys

from componentize_py_types import Err
import wit_world
from wit_world import exports
from wit_world.imports import wasi_sockets_types as types

import p3_guest as guest

USAGE = "tcp-client ADDR MESSAGE"


class Run(exports.Run):
    async def run(self) -> None:
        args = guest.args()
        if len(args) != 2:
            guest.report(f"expected two arguments\nusage: {USAGE}")
        text, message = args
        try:
            family, peer = guest.parse_addr(text)
        except ValueError as problem:
            guest.report(f"{problem}\nusage: {USAGE}")
        reply = await exchange(family, peer, text, message.encode())
        sys.stdout.buffer.write(reply)
        sys.stdout.flush()


async def exchange(family, peer, text, message):
    """Connects, sends `message`, ends the sending side, and returns all that came back."""
    try:
        socket = types.TcpSocket.create(family)
    except Err as error:
        guest.fail("create", text, error)
    with socket:
        try:
            await socket.connect(peer)
        except Err as error:
            guest.fail("connect", text, error)
        to_peer, outgoing = wit_world.byte_stream()
        sent = socket.send(outgoing)
        from_peer, received = socket.receive()
        with from_peer, received, sent:
            with to_peer:
                delivered = await to_peer.write_all(message)
            if delivered != len(message):
                guest.report(f"send {text}: the stream closed")
            if (code := await guest.settled(sent)) is not None:
                guest.fail("send", text, code)
            reply = bytearray()
            while not from_peer.writer_dropped:
                reply += await from_peer.read(64 * 1024)
            if (code := await guest.settled(received)) is not None:
                guest.fail("receive", text, code)
    return bytes(reply)
