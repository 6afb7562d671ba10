"""The edge bench's load generator: one asyncio (uvloop) process, raw sockets, closed loop.

Each client connection either goes straight to the TLS upstream or sends ``CONNECT host:port``
to a proxy first; then it does a real TLS handshake, verifying the certificate against the CA
the target names (the bench CA, latchkey's CA, mitmproxy's CA) and the host name (or IP), and
sends HTTP/1.1 requests on it. An answer counts only when it is a 200 whose body holds
``marker``; anything else is an error. Every window is bounded by its clock and a request cap.

CPU is read from ``/proc/<pid>/stat`` (utime + stime of every thread) for the processes a
window watches (the proxy, the upstream), and from ``time.process_time`` for the generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RESPONSE_TIMEOUT = 30.0  # a window not done this long after its end fails
MAX_REQUESTS_PER_WINDOW = 5_000_000
OPEN_CONCURRENCY = 32  # connections opened at once while setting up a fleet
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the generator's TCP connections go and what their TLS must verify."""

    name: str
    address: tuple[str, int]  # the upstream itself, or the proxy
    tls: ssl.SSLContext  # verifies against this target's CA
    hostname: str  # what the certificate must name (SNI unless an IP literal)
    connect: str | None = None  # "host:port" to CONNECT to; None: no proxy
    pid: int | None = None  # the proxy process, whose CPU and RSS are read


def client_context(cafile: Path) -> ssl.SSLContext:
    """A verifying client context (hostname checks, TLS >= 1.2, ALPN http/1.1)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ConnectionLost(Exception):
    pass


class Client(asyncio.Protocol):
    """One client connection: the proxy's CONNECT answer first (if any), then HTTP/1.1
    answers with a Content-Length, one at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._tunnel_pending = False  # reading the answer to CONNECT (a head, no body)
        self._need = -1
        self._head_end = 0
        self._status = 0
        self._close_after = False
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        self._fail(f"connection lost: {exc or 'closed by the server'}")

    def _fail(self, why: str) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(why))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self._status = int(head[9:12])
            self._head_end = end + 4
            if self._tunnel_pending:
                self._need = self._head_end
            else:
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    self._fail(f"{self._status} without Content-Length")
                    if self.transport is not None:
                        self.transport.close()
                    return
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop > 0 else len(head)])
                self._need = self._head_end + length
                self._close_after = b"\r\nconnection: close" in head
        if len(buf) >= self._need:
            body = bytes(buf[self._head_end : self._need])
            del buf[: self._need]
            self._need = -1
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self._status, body))
            if self._close_after and self.transport is not None:
                self.closed = True
                self.transport.close()

    def send(self, raw: bytes, *, tunnel: bool = False) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        if self.closed:
            waiter.set_exception(ConnectionLost("connection already closed"))
            return waiter
        self._tunnel_pending = tunnel
        self._waiter = waiter
        self.transport.write(raw)
        return waiter


async def open_client(target: Target) -> Client:
    """TCP (+ CONNECT) + a verified TLS handshake; raises on any failure."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(Client, *target.address)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if target.connect is not None:
            line = f"CONNECT {target.connect} HTTP/1.1\r\nHost: {target.connect}\r\n\r\n"
            status, _ = await client.send(line.encode(), tunnel=True)
            if status != 200:
                raise ConnectionLost(f"CONNECT {target.connect}: {status}")
            client._tunnel_pending = False
        tls = await loop.start_tls(transport, client, target.tls, server_hostname=target.hostname)
    except BaseException:
        transport.abort()
        raise
    assert tls is not None
    client.transport = tls
    return client


async def close_all(clients: Sequence[Client], wait: float = 1.0) -> None:
    """Close gracefully (TLS close_notify); abort what has not closed within ``wait``."""
    for c in clients:
        if c.transport is not None and not c.transport.is_closing():
            c.transport.close()
    pending = [c.lost for c in clients if not c.lost.done()]
    if pending:
        await asyncio.wait(pending, timeout=wait)
    for c in clients:
        if not c.lost.done() and c.transport is not None:
            c.transport.abort()
    await asyncio.sleep(0)


async def open_fleet(target: Target, count: int) -> list[Client]:
    clients: list[Client] = []
    for start in range(0, count, OPEN_CONCURRENCY):
        batch = min(OPEN_CONCURRENCY, count - start)
        clients += await asyncio.gather(*(open_client(target) for _ in range(batch)))
    return clients


def _discard(clients: set[Client], client: Client, _: object) -> None:
    clients.discard(client)


# -- windows ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    """One timed window: latencies of good answers (seconds), errors, CPU of each process."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    generator_cpu: float = 0.0  # seconds of this process's CPU in the window
    cpu: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds (proxy, upstream)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def cpu_per_request(self, name: str) -> float:
        """CPU seconds of process ``name`` per good answer (nan if not watched)."""
        if name not in self.cpu or not self.latencies:
            return float("nan")
        return self.cpu[name] / len(self.latencies)

    def error(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why


class _Meter:
    """CPU of the watched processes and of this one, between ``start`` and ``stop``."""

    def __init__(self, watch: Mapping[str, int]) -> None:
        self._watch = dict(watch)
        self._before: dict[str, float] = {}
        self._process = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self._watch.items()}
        self._process = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self, window: Window) -> None:
        window.seconds = time.perf_counter() - self._t0
        window.generator_cpu = time.process_time() - self._process
        for name, pid in self._watch.items():
            window.cpu[name] = cpu_seconds(pid) - self._before[name]


async def keepalive(
    target: Target,
    request: bytes,
    marker: bytes,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    watch: Mapping[str, int] | None = None,
    max_requests: int = MAX_REQUESTS_PER_WINDOW,
) -> Window:
    """``concurrency`` keep-alive connections, each sending ``request`` as soon as the last
    answer is in; a warm-up on the same connections first, then the timed window."""
    clients = await open_fleet(target, concurrency)
    window = Window()
    budget = [max_requests]
    perf = time.perf_counter

    async def worker(index: int, until: float, record: bool) -> None:
        lat = window.latencies
        while perf() < until and budget[0] > 0:
            client = clients[index]
            t0 = perf()
            try:
                status, body = await client.send(request)
            except ConnectionLost as exc:
                if record:
                    window.error(str(exc))
                clients[index] = await open_client(target)
                continue
            if record:
                budget[0] -= 1
                if status == 200 and marker in body:
                    lat.append(perf() - t0)
                else:
                    window.error(f"{status}: {body[:300]!r}")
            if client.closed:
                clients[index] = await open_client(target)

    async def phase(seconds: float, record: bool) -> None:
        until = perf() + seconds
        await asyncio.wait_for(
            asyncio.gather(*(worker(i, until, record) for i in range(concurrency))),
            seconds + RESPONSE_TIMEOUT,
        )

    meter = _Meter(watch or {})
    try:
        if warmup > 0:
            await phase(warmup, record=False)
        meter.start()
        await phase(duration, record=True)
        meter.stop(window)
    finally:
        await close_all(clients)
    return window


async def new_connections(
    target: Target,
    request: bytes,
    marker: bytes,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    watch: Mapping[str, int] | None = None,
    max_requests: int = MAX_REQUESTS_PER_WINDOW,
) -> Window:
    """``concurrency`` workers, each opening a new connection (TCP, CONNECT, full TLS
    handshake: no session resumption) for every request and closing it after the answer.
    The latency covers all of it."""
    window = Window()
    budget = [max_requests]
    perf = time.perf_counter
    closing: set[Client] = set()

    async def worker(until: float, record: bool) -> None:
        lat = window.latencies
        while perf() < until and budget[0] > 0:
            t0 = perf()
            try:
                client = await open_client(target)
            except (OSError, ssl.SSLError, ConnectionLost) as exc:
                if record:
                    window.error(f"open: {exc!r}")
                continue
            try:
                status, body = await client.send(request)
            except ConnectionLost as exc:
                if record:
                    window.error(str(exc))
                continue
            finally:
                if client.transport is not None:
                    client.transport.close()
                if not client.lost.done():
                    closing.add(client)
                    client.lost.add_done_callback(functools.partial(_discard, closing, client))
            if record:
                budget[0] -= 1
                if status == 200 and marker in body:
                    lat.append(perf() - t0)
                else:
                    window.error(f"{status}: {body[:300]!r}")

    async def phase(seconds: float, record: bool) -> None:
        until = perf() + seconds
        await asyncio.wait_for(
            asyncio.gather(*(worker(until, record) for _ in range(concurrency))),
            seconds + RESPONSE_TIMEOUT,
        )

    meter = _Meter(watch or {})
    try:
        if warmup > 0:
            await phase(warmup, record=False)
        meter.start()
        await phase(duration, record=True)
        meter.stop(window)
    finally:
        await close_all(list(closing))
    return window


# -- the leaf cache and idle connections ------------------------------------------------------


@dataclass(slots=True)
class Handshakes:
    """CONNECT + TLS handshake times (seconds) to fresh host names and to a cached one."""

    miss: list[float] = field(default_factory=list)
    hit: list[float] = field(default_factory=list)


async def time_handshake(target: Target) -> float:
    t0 = time.perf_counter()
    client = await open_client(target)
    took = time.perf_counter() - t0
    await close_all([client])
    return took


async def leaf_handshakes(proxy: Target, hosts: Sequence[str], port: int) -> Handshakes:
    """One connection to each of ``hosts`` (fresh names: a leaf is minted), then as many to
    the first of them again (its leaf is cached), one at a time."""
    out = Handshakes()
    for host in hosts:
        fresh = Target(proxy.name, proxy.address, proxy.tls, host, f"{host}:{port}", proxy.pid)
        out.miss.append(await time_handshake(fresh))
    cached = Target(proxy.name, proxy.address, proxy.tls, hosts[0], f"{hosts[0]}:{port}")
    for _ in hosts:
        out.hit.append(await time_handshake(cached))
    return out


@dataclass(frozen=True, slots=True)
class IdleResult:
    connections: int
    rss_before: int  # bytes
    rss_after: int
    errors: int
    first_error: str


async def idle_connections(
    target: Target, request: bytes, marker: bytes, count: int, settle: float = 1.0
) -> IdleResult:
    """Open ``count`` keep-alive connections through the proxy, one request on each, leave
    them all open and idle, then read the proxy's RSS."""
    assert target.pid is not None
    before = rss_bytes(target.pid)
    clients: list[Client] = []
    errors = [0]
    first = [""]

    async def one() -> None:
        try:
            client = await open_client(target)
        except (OSError, ssl.SSLError, ConnectionLost) as exc:
            errors[0] += 1
            first[0] = first[0] or f"open: {exc!r}"
            return
        clients.append(client)
        try:
            status, body = await asyncio.wait_for(client.send(request), RESPONSE_TIMEOUT)
        except (ConnectionLost, TimeoutError) as exc:
            errors[0] += 1
            first[0] = first[0] or repr(exc)
            return
        if status != 200 or marker not in body:
            errors[0] += 1
            first[0] = first[0] or f"{status}: {body[:300]!r}"

    try:
        for start in range(0, count, OPEN_CONCURRENCY):
            await asyncio.gather(*(one() for _ in range(min(OPEN_CONCURRENCY, count - start))))
        await asyncio.sleep(settle)
        open_now = sum(1 for c in clients if not c.closed)
        after = rss_bytes(target.pid)
    finally:
        with contextlib.suppress(Exception):
            await close_all(clients, wait=3.0)
    return IdleResult(open_now, before, after, errors[0], first[0])
