"""What the capnet Python 0.3 guests share: `wasi:sockets@0.3.0` addresses, the WIT names of
error codes, and the one-line error report `error: OPERATION ADDR: CODE`.

The guests call the bindings componentize-py generates from guest/rust/p3/wit (world
`command`): `wasi_sockets_types` is `wasi:sockets/types@0.3.0`, whose async functions are
coroutines and whose `stream` and `future` types are componentize-py's readers and writers.
"""

import ipaddress
import sys

from componentize_py_types import Err
from wit_world.imports import wasi_sockets_types as types


def args():
    """The guest's arguments after its name (componentize-py fills `sys.argv` at run time)."""
    return sys.argv[1:]


def fail(operation, addr, code):
    """Prints `error: OPERATION ADDR: CODE` and raises the failed exit of `wasi:cli/run`."""
    report(f"{operation} {addr}: {code_name(code)}")


def report(problem):
    """Prints `error: PROBLEM` to stderr and raises the failed exit of `wasi:cli/run`."""
    sys.stdout.flush()
    print(f"error: {problem}", file=sys.stderr, flush=True)
    raise Err(None)


def code_name(code):
    """The WIT name of an `error-code` (`access-denied`, `other(...)`), from an `Err` or a code."""
    if isinstance(code, Err):
        code = code.value
    if isinstance(code, types.ErrorCode_Other):
        return "other" if code.value is None else f"other({code.value})"
    name = type(code).__name__.removeprefix("ErrorCode_")
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def parse_addr(text):
    """`IP:PORT` or `[IPV6]:PORT` as a family and a `wasi:sockets` socket address."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text} is not IP:PORT")
    port = int(port)
    if host.startswith("[") and host.endswith("]"):
        ip = ipaddress.IPv6Address(host[1:-1])
        groups = tuple(int.from_bytes(ip.packed[i:i + 2], "big") for i in range(0, 16, 2))
        return types.IpAddressFamily.IPV6, types.IpSocketAddress_Ipv6(
            types.Ipv6SocketAddress(port, 0, groups, 0)
        )
    ip = ipaddress.IPv4Address(host)
    return types.IpAddressFamily.IPV4, types.IpSocketAddress_Ipv4(
        types.Ipv4SocketAddress(port, tuple(ip.packed))
    )


def format_addr(addr):
    """A `wasi:sockets` socket address as `IP:PORT` or `[IPV6]:PORT`."""
    value = addr.value
    if isinstance(addr, types.IpSocketAddress_Ipv4):
        return f"{ipaddress.IPv4Address(bytes(value.address))}:{value.port}"
    packed = b"".join(group.to_bytes(2, "big") for group in value.address)
    return f"[{ipaddress.IPv6Address(packed)}]:{value.port}"


async def settled(future):
    """The error a `future<result<_, error-code>>` settles with, or `None`."""
    result = await future.read()
    return result.value if isinstance(result, Err) else None
