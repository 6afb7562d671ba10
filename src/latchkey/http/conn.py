"""A connection as an ``asyncio.Protocol``, with the few stream calls the edge needs.

Cheaper per request than ``StreamReader``/``StreamWriter`` plus a new ``asyncio.timeout()`` per
read: what arrives is kept as the chunks it came in (one chunk is handed over without a copy),
a read that must wait waits on one future, and the read deadline is one timer per connection.
That timer is re-armed only when a read needs an earlier deadline than the armed one; a later
deadline is noticed when the timer fires (and it is armed again for it), so a busy keep-alive
connection creates no timer per request.

The calls mirror the streams' (``read``, ``write``, ``drain``, ``write_eof``, ``close``,
``wait_closed``, ``get_extra_info``), so ``splice`` and the streamed-body helpers take either.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

HIGH_WATER = 256 * 1024  # buffered bytes beyond which the transport stops reading
LOW_WATER = 64 * 1024  # ... and below which it reads again
_EARLY = 0.001  # a timer may fire this much before its time (the loop's clock resolution)


class Conn(asyncio.Protocol):
    """One connection. ``on_made`` is called with it once the transport exists."""

    def __init__(self, on_made: Callable[[Conn], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._lost = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._over_ssl = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._read_paused and self.transport is not None:
            try:
                self.transport.pause_reading()
                self._read_paused = True
            except (AttributeError, NotImplementedError, RuntimeError):
                pass
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return not self._over_ssl  # keep a TCP half-close open for our answer (not for TLS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        if exc is not None:
            self._exc = exc
        self._wake()
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(ConnectionResetError("Connection lost"))
        self._drain_waiters.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- reading ------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        waiter = self._waiter
        if waiter is None or waiter.done() or self._deadline == math.inf:
            return
        if self._deadline > self._loop.time() + _EARLY:  # a later deadline: wait for it
            self._arm(self._deadline)
            return
        waiter.set_exception(TimeoutError())

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline

    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def buffered(self) -> bool:
        return bool(self._chunks)

    async def read(self, n: int = -1, within: float | None = None) -> bytes:
        """Up to ``n`` bytes (all that is buffered when ``n`` < 0), waiting for some when none
        is buffered; ``b""`` at the end of the stream. ``TimeoutError`` when nothing arrived
        within ``within`` seconds (the connection's one timer, not a new ``asyncio.timeout``)."""
        if not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self._eof:
                return b""
            if self._waiter is not None:
                raise RuntimeError("two reads at once on one connection")
            waiter = self._waiter = self._loop.create_future()
            if within is None:
                self._deadline = math.inf
            else:
                deadline = self._deadline = self._loop.time() + within
                if deadline < self._timer_at:
                    self._arm(deadline)
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._chunks:
                if self._exc is not None:
                    raise self._exc
                return b""
        return self._take(n)

    def _take(self, n: int) -> bytes:
        chunks = self._chunks
        first = chunks[0]
        if len(chunks) == 1 and (n < 0 or len(first) <= n):
            chunks.clear()
            data = first
        else:
            data = b"".join(chunks)
            chunks.clear()
            if 0 <= n < len(data):
                chunks.append(data[n:])
                data = data[:n]
        self._size -= len(data)
        if self._read_paused and self._size <= LOW_WATER and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    def pause_reading(self) -> None:
        """Stop taking bytes from the socket (so a ClientHello stays there for TLS)."""
        assert self.transport is not None
        self.transport.pause_reading()

    # -- writing ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        assert self.transport is not None
        self.transport.writelines(parts)

    def must_drain(self) -> bool:
        """Whether ``drain`` would wait (or fail): callers may skip it otherwise."""
        return self._write_paused or self._lost

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._write_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def write_eof(self) -> None:
        assert self.transport is not None
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport is not None and self.transport.can_write_eof()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    async def start_tls(self, context: ssl.SSLContext, *, handshake_timeout: float = 60.0) -> None:
        """The server side of a TLS handshake on this connection; reads go through TLS after."""
        assert self.transport is not None
        transport = await self._loop.start_tls(
            self.transport,
            self,
            context,
            server_side=True,
            ssl_handshake_timeout=handshake_timeout,
        )
        if transport is None:  # (the connection closed during the handshake)
            raise ConnectionResetError("the connection closed during the TLS handshake")
        self.transport = transport
        self._over_ssl = True


async def connect(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Conn:
    """A client connection (TCP, then TLS when ``ssl_context`` is given)."""
    loop = asyncio.get_running_loop()
    conn = Conn()
    await loop.create_connection(
        lambda: conn, host, port, ssl=ssl_context, server_hostname=server_hostname
    )
    return conn


async def accept(sock: Any, context: ssl.SSLContext | None, *, handshake_timeout: float) -> Conn:
    """A connection over an accepted socket; with ``context`` the server side of TLS, which
    reads the ClientHello still in the socket. (The protocol is kept here: uvloop answers
    its TLS wrapper, not ours, as the protocol of an accepted TLS socket.)"""
    loop = asyncio.get_running_loop()
    conn = Conn()
    if context is None:
        await loop.connect_accepted_socket(lambda: conn, sock)
    else:
        await loop.connect_accepted_socket(
            lambda: conn, sock, ssl=context, ssl_handshake_timeout=handshake_timeout
        )
    return conn
