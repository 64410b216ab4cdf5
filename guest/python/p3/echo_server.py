"""`echo-server ADDR [MAX_CONNS]` for `wasi:sockets@0.3.0`: listens on ADDR, prints
`listening on <addr>`, and echoes every connection, all of them at once: each accepted
socket's `receive` stream is written back into its `send` stream by an asyncio task of its
own. After MAX_CONNS connections it waits for them to end and exits 0 (default: serve forever).

The program is the component's `wasi:cli/run@0.3.0`, an `async def`. A failure prints
`error: OPERATION ADDR: CODE` (`error: bind 127.0.0.1:0: access-denied`) and exits 1.
"""

import asyncio

from componentize_py_types import Err
import wit_world
from wit_world import exports
from wit_world.imports import wasi_sockets_types as types

import p3_guest as guest

USAGE = "echo-server ADDR [MAX_CONNS]"


class Run(exports.Run):
    async def run(self) -> None:
        args = guest.args()
        if not 1 <= len(args) <= 2:
            guest.report(f"expected ADDR [MAX_CONNS]\nusage: {USAGE}")
        text = args[0]
        try:
            family, local = guest.parse_addr(text)
            max_conns = int(args[1]) if len(args) == 2 else None
        except ValueError as problem:
            guest.report(f"{problem}\nusage: {USAGE}")
        await serve(family, local, text, max_conns)


async def serve(family, local, text, max_conns):
    try:
        listener = types.TcpSocket.create(family)
    except Err as error:
        guest.fail("create", text, error)
    with listener:
        try:
            listener.bind(local)
        except Err as error:
            guest.fail("bind", text, error)
        try:
            connections = listener.listen()
        except Err as error:
            guest.fail("listen", text, error)
        with connections:
            try:
                bound = guest.format_addr(listener.get_local_address())
            except Err as error:
                guest.fail("local-address", text, error)
            print(f"listening on {bound}", flush=True)
            # The connections being served: a task leaves the set when it ends, so a server
            # that runs forever does not keep one per connection it ever had.
            serving = set()
            count = 0
            while max_conns is None or count < max_conns:
                accepted = await connections.read(1)
                if not accepted:
                    break
                count += 1
                task = asyncio.create_task(echo(accepted[0]))
                serving.add(task)
                task.add_done_callback(serving.discard)
            await asyncio.gather(*serving)


async def echo(client):
    """Writes everything `client` sends back to it, until it ends its side. The streams are
    closed before the socket (`with` blocks, children first)."""
    with client:
        from_peer, received = client.receive()
        to_peer, outgoing = wit_world.byte_stream()
        sent = client.send(outgoing)
        with received, sent:
            # Both streams end before their futures are awaited: ending `to_peer` ends the
            # sending side, and closing `from_peer` (when the peer stopped reading first) ends
            # the receiving side, so neither future waits on the other direction.
            with from_peer, to_peer:
                while not from_peer.writer_dropped and not to_peer.reader_dropped:
                    chunk = await from_peer.read(64 * 1024)
                    if chunk:
                        await to_peer.write_all(chunk)
            await guest.settled(sent)
            await guest.settled(received)
