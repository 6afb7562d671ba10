"""Transparent mode (Linux): connections that iptables ``REDIRECT`` sends to the edge.

A redirected connection arrives at the transparent listener with its original destination
kept by the kernel's connection tracking: ``SO_ORIGINAL_DST`` (IPv4) or
``IP6T_SO_ORIGINAL_DST`` (IPv6) reads it. The listener then looks at the first bytes without
consuming them (``MSG_PEEK``, bounded in time and size): a TLS ClientHello names its server
(SNI), a plain HTTP request its Host. The edge (``server.py``) decides what to do with that
:class:`Redirected` connection and opens streams on it with :func:`open_streams`, with TLS
when it intercepts; the peeked bytes are still in the socket for whoever reads next.

Loop protection: a connection whose original destination is the listener itself (the address
it was accepted on, or any local address of a wildcard listener) was not redirected, and one
opened by this very process (the edge's own upstream connection, redirected because the rules
did not exempt the edge's uid) would loop forever; both are closed with a log line. The
connections the transparent side opens itself (:func:`open_outbound`) are kept in a registry
while they are open, so that check is a set lookup; any other connection of the edge's is
found by asking the kernel for the client's socket (in any state, as the edge may already have
passed a FIN on) and looking for it among this process's file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import ipaddress
import logging
import os
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from latchkey.edge.clienthello import ClientHello, NeedMore, looks_like_tls, parse_client_hello
from latchkey.edge.peer import PROC, find_tcp_socket, normal_address

log = logging.getLogger("latchkey.edge.transparent")

SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv4.h>
IP6T_SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv6/ip6_tables.h>
FIRST_BYTE_WAIT = 1.0  # no byte by then: a protocol where the server speaks first; tunnel
PEEK_WAIT = 5.0  # a ClientHello or request head that has begun must be whole by then
PEEK_LIMIT = 16 * 1024 + 64  # bytes looked at; a larger hello or head is treated as opaque
PEEK_POLL = 0.01  # pause between peeks while a partial hello grows

Address = tuple[str, int]
_METHOD = re.compile(rb"^[A-Z]{3,10} ")
_HEAD_END = re.compile(rb"\r?\n\r?\n")  # the blank line that ends a head (CRLF or bare LF)
_LINE_END = re.compile(r"\r?\n")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$")


class Kind(enum.Enum):
    TLS = "tls"
    HTTP = "http"
    OPAQUE = "opaque"


@dataclass(frozen=True, slots=True)
class FirstBytes:
    """What the start of a redirected connection says: its kind and the server it names."""

    kind: Kind
    name: str | None = None
    why: str = ""  # for OPAQUE: why no name was read


@dataclass(frozen=True, slots=True)
class Redirected:
    """An accepted, redirected connection, not yet read from."""

    sock: socket.socket
    peer: Address  # the real client
    original: Address  # where the client was connecting to
    listener: Address  # the transparent listener it reached
    first: FirstBytes


# -- pure parts ----------------------------------------------------------------------------------


def decode_sockaddr_in(raw: bytes) -> Address:
    """A ``struct sockaddr_in`` as ``getsockopt(SO_ORIGINAL_DST)`` returns it."""
    if len(raw) < 8:
        raise ValueError("short sockaddr_in")
    family = struct.unpack("=H", raw[:2])[0]
    if family != socket.AF_INET:
        raise ValueError(f"address family {family}, not AF_INET")
    port = struct.unpack("!H", raw[2:4])[0]
    return str(ipaddress.IPv4Address(raw[4:8])), port


def decode_sockaddr_in6(raw: bytes) -> Address:
    """A ``struct sockaddr_in6`` as ``getsockopt(IP6T_SO_ORIGINAL_DST)`` returns it."""
    if len(raw) < 24:
        raise ValueError("short sockaddr_in6")
    family = struct.unpack("=H", raw[:2])[0]
    if family != socket.AF_INET6:
        raise ValueError(f"address family {family}, not AF_INET6")
    port = struct.unpack("!H", raw[2:4])[0]
    return ipaddress.IPv6Address(raw[8:24]).compressed, port


def http_host(head: bytes) -> str | None:
    """The host named by the one Host header of a complete request head (port dropped,
    lower-cased); ``None`` when absent, repeated or malformed."""
    try:
        lines = _LINE_END.split(head.decode("latin-1"))
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    hosts = [
        line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("host:")
    ]
    if len(hosts) != 1 or not _HOST.match(hosts[0]):
        return None
    value = hosts[0]
    if value.startswith("["):
        return value[1 : value.index("]")].lower()
    return value.rsplit(":", 1)[0].lower() if ":" in value else value.lower()


def classify(data: bytes, *, final: bool) -> FirstBytes | None:
    """What ``data`` (the connection's first bytes) holds; ``None`` while more could tell.
    ``final``: no more bytes will come (time or size limit, or the client stopped)."""
    if not data:
        return FirstBytes(Kind.OPAQUE, why="no data") if final else None
    if looks_like_tls(data):
        found = parse_client_hello(data)
        if isinstance(found, ClientHello):
            return FirstBytes(Kind.TLS, found.server_name, "" if found.server_name else "no SNI")
        if isinstance(found, NeedMore):
            return FirstBytes(Kind.OPAQUE, why="incomplete ClientHello") if final else None
        return FirstBytes(Kind.OPAQUE, why=found.reason)
    if _METHOD.match(data[:11]) and not data.startswith(b"CONNECT "):
        end = _HEAD_END.search(data)
        if end is None:
            return FirstBytes(Kind.OPAQUE, why="incomplete request head") if final else None
        name = http_host(data[: end.start()])
        return FirstBytes(Kind.HTTP, name, "" if name else "no usable Host header")
    if len(data) < 11 and not final and re.match(rb"^[A-Z]+$", data):
        return None  # perhaps a method still arriving
    return FirstBytes(Kind.OPAQUE, why="neither TLS nor HTTP")


# -- the socket side -----------------------------------------------------------------------------


def original_destination(sock: socket.socket) -> Address:
    """Where a redirected connection was going (``OSError`` when the kernel has no record:
    the connection was not redirected, or conntrack is not loaded)."""
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
        return decode_sockaddr_in6(raw)
    return decode_sockaddr_in(sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))


# (local, remote) of every connection open_outbound has opened and not yet closed, normalised
_OUTBOUND: set[tuple[Address, Address]] = set()


def is_own_outbound(local: Address, remote: Address) -> bool:
    """Whether ``local`` -> ``remote`` is an open connection made by :func:`open_outbound`."""
    try:
        return (normal_address(local), normal_address(remote)) in _OUTBOUND
    except ValueError:
        return False


class _Outbound(asyncio.StreamReaderProtocol):
    """Forgets its connection in the registry when the connection is lost."""

    key: tuple[Address, Address] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.key is not None:
            _OUTBOUND.discard(self.key)
            self.key = None
        super().connection_lost(exc)


async def open_outbound(
    address: Address, *, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` to an IP address, for the connections the transparent side
    opens (a tunnel to a redirected connection's original destination). The connection is in
    the loop guard's registry from the moment the kernel picks its local address, before its
    handshake, until it is closed: if the rules send it back to the edge, the edge knows it."""
    loop = asyncio.get_running_loop()
    host, port = address
    try:
        family = socket.AF_INET6 if _plain_ip(host).version == 6 else socket.AF_INET
    except ValueError:
        raise OSError(errno.EINVAL, f"not an IP address: {host!r}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    key: tuple[Address, Address] | None = None
    try:
        sock.setblocking(False)
        code = sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, f"connect to {host}:{port}: {os.strerror(code)}")
        key = (normal_address(sock.getsockname()[:2]), normal_address(address))
        _OUTBOUND.add(key)
        if code:
            await _ready(sock, None, write=True)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, f"connect to {host}:{port}: {os.strerror(code)}")
        reader = asyncio.StreamReader(limit=limit)
        protocol = _Outbound(reader)
        protocol.key = key
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
    except BaseException:
        if key is not None:
            _OUTBOUND.discard(key)
        sock.close()
        raise
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def opened_by_this_process(peer: Address, original: Address, proc: Path = PROC) -> bool:
    """Whether the client end of a redirected connection is a socket this process holds:
    one :func:`open_outbound` opened, or any other found in the kernel's socket table (in
    any state that holds a connection) whose inode is among this process's descriptors."""
    if is_own_outbound(peer, original):
        return True
    try:
        entry = find_tcp_socket(peer, original, proc=proc)
    except ValueError:
        return False
    if entry is None or entry.inode == 0:
        return False
    if entry.uid not in (os.geteuid(), os.getuid()):
        return False  # a socket is its creator's: another user's is not this process's
    target = f"socket:[{entry.inode}]"
    try:
        with os.scandir(proc / "self" / "fd") as fds:
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) == target:
                        return True
    except OSError:
        return False
    return False


async def _ready(sock: socket.socket, within: float | None, *, write: bool = False) -> bool:
    """Wait until ``sock`` is readable (or writable), at most ``within`` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(None if within is None else max(within, 0)):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def peek_first_bytes(
    sock: socket.socket,
    *,
    first_wait: float = FIRST_BYTE_WAIT,
    total_wait: float = PEEK_WAIT,
    limit: int = PEEK_LIMIT,
) -> FirstBytes:
    """Classify the connection's first bytes, leaving them in the socket."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_wait
    data = b""
    while True:
        wait = first_wait if not data else deadline - loop.time()
        if not await _ready(sock, wait):
            return classify(data, final=True) or FirstBytes(Kind.OPAQUE, why="timeout")
        try:
            peeked = sock.recv(limit, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        final = not peeked or len(peeked) >= limit
        found = classify(peeked or data, final=final)
        if found is not None:
            return found
        if peeked == data:  # nothing new yet: the socket stays readable, so wait a little
            await asyncio.sleep(PEEK_POLL)
        data = peeked


async def open_streams(
    sock: socket.socket,
    context: object | None = None,
    *,
    handshake_timeout: float = 30.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket; with ``context`` (an ``ssl.SSLContext``) the server
    side of a TLS handshake, which reads the ClientHello still in the socket."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16)
    protocol = asyncio.StreamReaderProtocol(reader)
    if context is None:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
    else:
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol,
            sock,
            ssl=context,  # type: ignore[arg-type]
            ssl_handshake_timeout=handshake_timeout,
        )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class TransparentListener:
    """Accepts redirected connections and hands each to ``handler`` as :class:`Redirected`."""

    def __init__(self, handler: Callable[[Redirected], Awaitable[None]]) -> None:
        self._handler = handler
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: Address = ("", 0)

    async def start(self, host: str, port: int) -> Address:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        bound = sock.getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        self._accepting = asyncio.create_task(self._accept_loop(sock))
        return self.address

    async def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._sock is not None:
            self._sock.close()
        for task in list(self._tasks):
            task.cancel()

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(listening)
            except OSError as exc:  # EMFILE and the like: do not spin
                log.warning("transparent listener %s: accept failed: %s", self.address, exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        peer = ("", 0)
        try:
            conn.setblocking(False)
            peer_raw = conn.getpeername()
            peer = (str(peer_raw[0]), int(peer_raw[1]))
            try:
                original = original_destination(conn)
            except (OSError, ValueError) as exc:
                log.warning("transparent: connection from %s has no original destination "
                            "(not redirected?): %s", peer[0], exc)  # fmt: skip
                return
            own = conn.getsockname()  # not redirected: it went where it was accepted
            if normal_address(original) == normal_address((str(own[0]), int(own[1]))) or (
                is_listener_address(original, self.address)
            ):
                log.warning("transparent: %s connected to the listener itself, not redirected; "
                            "closed", peer[0])  # fmt: skip
                return
            if is_own_outbound(peer, original) or await asyncio.to_thread(
                opened_by_this_process, peer, original
            ):
                log.error("transparent: the edge's own connection to %s:%d was redirected back "
                          "to it; closed (exempt the edge's uid: `latchkey edge iptables`)",
                          *original)  # fmt: skip
                return
            first = await peek_first_bytes(conn)
            await self._handler(Redirected(conn, peer, original, self.address, first))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except OSError as exc:  # e.g. a TLS handshake the client gave up
            log.info("transparent connection from %s: %s", peer[0], exc)
        except Exception:
            log.exception("transparent connection failed")
        finally:
            conn.close()


def _plain_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_local_address(address: str) -> bool:
    """Whether ``address`` is one of this machine's (in this network namespace): the kernel
    routes it locally, so it picks the address itself as the source for reaching it (a
    ``connect`` of a throwaway UDP socket, which sends nothing). Unlike a test ``bind``, this
    is not fooled by ``ip_nonlocal_bind``."""
    try:
        ip = _plain_ip(address)
    except ValueError:
        return False
    if ip.is_unspecified or ip.is_multicast:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(ip), 9))
            source = probe.getsockname()[0]
        return _plain_ip(str(source)) == ip
    except (OSError, ValueError):
        return False


def is_listener_address(address: Address, listening: Address) -> bool:
    """Whether a connection to ``address`` would reach a socket listening on ``listening``
    (a wildcard listener: any loopback, unspecified or other local address on its port)."""
    if address[1] != listening[1]:
        return False
    try:
        ip, bound = _plain_ip(address[0]), _plain_ip(listening[0])
    except ValueError:
        return address[0] == listening[0]
    if bound.is_unspecified:
        if ip.is_loopback or ip.is_unspecified:
            return True
        return ip.version == bound.version and is_local_address(str(ip))
    return ip == bound
