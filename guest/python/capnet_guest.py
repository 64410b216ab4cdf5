"""What the capnet Python guests share: the command line, `wasi:sockets` addresses, waiting on
a pollable, and the one-line error report `error: OPERATION ADDR: CODE`.

The guests call the `wasi:sockets` bindings that componentize-py generates from the project's
WIT (`wit_world.imports.*`) directly, so every failure names the exact WIT `error-code`.
"""

import ipaddress
import sys

from componentize_py_types import Err
from wit_world.imports import environment, exit, network, poll, streams


def args():
    """The guest's arguments after its name."""
    return environment.get_arguments()[1:]


def fail(operation, addr, cause):
    """Prints `error: OPERATION ADDR: CAUSE` to stderr and exits 1."""
    print(f"error: {operation} {addr}: {cause}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    exit.exit(Err(None))


def usage(text, problem):
    """Reports a bad command line and exits 1 (WASI 0.2 carries only success or failure)."""
    print(f"error: {problem}\nusage: {text}", file=sys.stderr, flush=True)
    exit.exit(Err(None))


def code_name(error):
    """The WIT name of a `wasi:sockets` error, e.g. `access-denied`."""
    value = error.value if isinstance(error, Err) else error
    if isinstance(value, network.ErrorCode):
        return value.name.lower().replace("_", "-")
    if isinstance(value, streams.StreamError_Closed):
        return "closed"
    if isinstance(value, streams.StreamError_LastOperationFailed):
        return value.value.to_debug_string()
    return str(value)


def parse_addr(text):
    """`IP:PORT` or `[IPV6]:PORT` as a `wasi:sockets` socket address and its family."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"ADDR {text!r} is not IP:PORT or [IPV6]:PORT")
    port = int(port)
    if host.startswith("[") and host.endswith("]"):
        ip = ipaddress.IPv6Address(host[1:-1])
        return network.IpAddressFamily.IPV6, network.IpSocketAddress_Ipv6(
            network.Ipv6SocketAddress(port, 0, tuple(int.from_bytes(ip.packed[i:i + 2], "big") for i in range(0, 16, 2)), 0)
        )
    ip = ipaddress.IPv4Address(host)
    return network.IpAddressFamily.IPV4, network.IpSocketAddress_Ipv4(
        network.Ipv4SocketAddress(port, tuple(ip.packed))
    )


def format_addr(addr):
    """A `wasi:sockets` socket address as `IP:PORT` or `[IPV6]:PORT`."""
    value = addr.value
    if isinstance(addr, network.IpSocketAddress_Ipv4):
        return f"{ipaddress.IPv4Address(bytes(value.address))}:{value.port}"
    packed = b"".join(part.to_bytes(2, "big") for part in value.address)
    return f"[{ipaddress.IPv6Address(packed)}]:{value.port}"


def write_all(output, data, addr):
    """Writes `data` in pieces `blocking-write-and-flush` takes (at most 4096 bytes each)."""
    for start in range(0, len(data), 4096):
        try:
            output.blocking_write_and_flush(data[start:start + 4096])
        except Err as error:
            fail("write", addr, code_name(error))


def block_on(pollable, attempt):
    """Calls `attempt` until it stops failing with `would-block`, waiting on `pollable` between
    tries; returns its result or raises its other error."""
    while True:
        try:
            return attempt()
        except Err as error:
            if error.value != network.ErrorCode.WOULD_BLOCK:
                raise
        pollable.block()
