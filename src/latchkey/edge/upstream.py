"""Upstream connections: verified TLS, keep-alive, pooled per (host, port, tls).

``exchange`` sends a request head, then its body (bytes, or parts streamed from the client),
and answers with the whole ``Response`` when it is small or an error, else with a
``StreamedResponse`` whose body the caller relays as it arrives. A request with a streamed body
always gets a fresh connection (it cannot be replayed if a pooled one turns out closed).
Interim (1xx) responses a proxy forwards are handed to ``on_interim`` as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from latchkey.crypto.tls import client_ssl_context
from latchkey.http.conn import Conn, connect
from latchkey.http.h1 import (
    MAX_BODY_BYTES,
    BodyEnd,
    BodyPart,
    ProtocolError,
    Response,
    ResponseStreamParser,
)

IDLE_SECONDS = 30.0
READ_CHUNK = 65536
STREAM_OVER = 256 * 1024  # responses larger than this (or of unknown length) are streamed


class UpstreamError(Exception):
    """The upstream could not be reached or broke the protocol (message names host and cause)."""


class UpstreamTimeout(UpstreamError):
    """Connecting or waiting for the answer took longer than allowed (the edge answers 504)."""


class _ClosedBeforeAnswer(UpstreamError):
    """A kept-alive connection the server had already closed: safe to retry once."""


_Events = deque[Response | BodyPart | BodyEnd]
_Key = tuple[str, int, bool, bool, str | None]  # host, port, tls, verify, CA bundle
OnInterim = Callable[[Response], None]  # takes an interim (1xx) response to forward


def _parser(head_request: bool = False) -> ResponseStreamParser:
    return ResponseStreamParser(head_request=head_request, interims=True)


@dataclass(slots=True)
class _Conn:
    conn: Conn
    idle_since: float
    parser: ResponseStreamParser = field(default_factory=_parser)

    def usable(self) -> bool:
        conn = self.conn
        return (
            not conn.is_closing()
            and not conn.at_eof()
            and not conn.buffered()  # (bytes nobody asked for: not a clean keep-alive)
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class UpstreamPool:
    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        connect_timeout: float = 10.0,
        response_timeout: float = 60.0,
    ) -> None:
        self._ssl = ssl_context
        self._insecure: ssl.SSLContext | None = None
        self._bundles: dict[str, ssl.SSLContext] = {}  # CA bundle path -> verifying context
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._idle: dict[_Key, list[_Conn]] = defaultdict(list)
        self.handshakes = 0

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The verifying context (system store plus configured bundles)."""
        return self._ssl

    def _context(self, verify: bool, ca_bundle: str | None = None) -> ssl.SSLContext:
        if verify and ca_bundle is not None:
            found = self._bundles.get(ca_bundle)
            if found is None:  # the system store plus the bundle, as for the default context
                try:
                    found = client_ssl_context([Path(ca_bundle)])
                except (OSError, ssl.SSLError) as exc:
                    raise UpstreamError(f"cannot load the CA bundle {ca_bundle}: {exc}") from None
                self._bundles[ca_bundle] = found
            return found
        if verify:
            return self._ssl
        if self._insecure is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._insecure = ctx
        return self._insecure

    async def _connect(
        self, host: str, port: int, tls: bool, verify: bool, ca_bundle: str | None = None
    ) -> _Conn:
        context = self._context(verify, ca_bundle) if tls else None
        try:
            conn = await asyncio.wait_for(
                connect(
                    host,
                    port,
                    ssl_context=context,
                    server_hostname=host if tls else None,
                ),
                self._connect_timeout,
            )
        except TimeoutError:
            raise UpstreamTimeout(
                f"connecting to {host}:{port} took longer than {self._connect_timeout:g} s"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(
                f"TLS verification of {host}:{port} failed: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        if tls:
            self.handshakes += 1
        return _Conn(conn, time.monotonic())

    async def request(
        self,
        host: str,
        port: int,
        tls: bool,
        data: bytes,
        *,
        verify: bool = True,
        on_interim: OnInterim | None = None,
    ) -> Response:
        """Send one serialised request, return the whole response (bodies up to 8 MiB). The
        request line is ours, so it tells a HEAD, whose answer has no body whatever its head
        says."""
        head_request = data.startswith(b"HEAD ")
        answer = await self.exchange(
            host, port, tls, data, verify=verify, head_request=head_request, on_interim=on_interim
        )
        if isinstance(answer, Response):
            return answer
        parts = [answer.first]
        size = len(answer.first)
        async with contextlib.aclosing(answer.rest) as rest:
            async for part in rest:
                size += len(part)
                if size > MAX_BODY_BYTES:
                    raise UpstreamError("upstream response body too large")
                parts.append(part)
        answer.head.body = b"".join(parts)
        return answer.head

    async def exchange(
        self,
        host: str,
        port: int,
        tls: bool,
        head: bytes,
        *,
        body: AsyncIterator[bytes] | None = None,
        verify: bool = True,
        ca_bundle: str | None = None,
        head_request: bool = False,
        on_interim: OnInterim | None = None,
    ) -> Response | StreamedResponse:
        """Send ``head`` (a whole request, or its head when ``body`` streams the rest);
        ``ca_bundle`` is trusted beside the system store when verifying."""
        key = (host, port, tls, verify, ca_bundle)
        conn = self._pooled(key) if body is None else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(host, port, tls, verify, ca_bundle)
        try:
            await self._send(conn, head, body)
            return await self._receive(conn, key, head_request, on_interim)
        except _ClosedBeforeAnswer:
            conn.close()
            if not reused:
                raise
        except BaseException:
            conn.close()
            raise
        # A pooled connection the server had closed: retry once on a new one.
        conn = await self._connect(host, port, tls, verify, ca_bundle)
        try:
            await self._send(conn, head, None)
            return await self._receive(conn, key, head_request, on_interim)
        except BaseException:
            conn.close()
            raise

    def _pooled(self, key: _Key) -> _Conn | None:
        idle = self._idle[key]
        while idle:
            candidate = idle.pop()
            if candidate.usable():
                return candidate
            candidate.close()
        return None

    def _release(self, conn: _Conn, key: _Key, keep_alive: bool) -> None:
        if keep_alive:
            conn.idle_since = time.monotonic()
            self._idle[key].append(conn)
        else:
            conn.close()

    async def _send(self, conn: _Conn, head: bytes, body: AsyncIterator[bytes] | None) -> None:
        """Write the request; the body's own errors (the client's side) pass through as is."""
        try:
            conn.conn.write(head)
            if conn.conn.must_drain():
                await self._drain(conn)
            if body is None:
                return
            async for part in body:
                conn.conn.write(part)
                await self._drain(conn)
        except ConnectionResetError:
            raise UpstreamError(
                "upstream reset the connection while the request was sent"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"upstream connection failed: {exc}") from None

    async def _drain(self, conn: _Conn) -> None:
        try:
            async with asyncio.timeout(self._response_timeout):
                await conn.conn.drain()
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream did not take the request within {self._response_timeout:g} s"
            ) from None

    async def _read(
        self,
        conn: _Conn,
        parser: ResponseStreamParser,
        events: _Events,
        *,
        unanswered: bool = False,
    ) -> bool:
        """One read fed to the parser; False at the end of the stream. A reset is safe to retry
        only while nothing of the answer has come (``unanswered``): once the server began to
        answer, it acted on the request, and sending it again could act twice."""
        try:
            chunk = await conn.conn.read(READ_CHUNK, self._response_timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"no answer within {self._response_timeout:g} s") from None
        except ConnectionResetError:
            if unanswered:
                raise _ClosedBeforeAnswer("upstream reset the connection") from None
            raise UpstreamError("upstream reset the connection during its answer") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"upstream connection failed: {exc}") from None
        if not chunk:
            return False
        try:
            events.extend(parser.feed(chunk))
        except ProtocolError as exc:
            raise UpstreamError(f"upstream broke HTTP/1.1: {exc}") from None
        return True

    async def _final_head(
        self,
        conn: _Conn,
        parser: ResponseStreamParser,
        events: _Events,
        on_interim: OnInterim | None,
        first: Response | BodyPart | BodyEnd | None,
    ) -> Response:
        """The final response's head when the first read did not bring it (``first``: what it
        brought, an interim or nothing whole yet); the interims go to ``on_interim``. Part of
        the answer came already, so a close now is not safe to retry."""
        head = first
        interim = False
        while True:
            if head is not None:
                assert isinstance(head, Response)
                if head.status >= 200:
                    return head
                interim = True
                if on_interim is not None:
                    on_interim(head)
            while not events:
                if not await self._read(conn, parser, events):
                    what = "an interim response" if interim else "part of its answer"
                    raise UpstreamError(f"upstream closed the connection after {what}")
            head = events.popleft()

    async def _receive(
        self, conn: _Conn, key: _Key, head_request: bool, on_interim: OnInterim | None
    ) -> Response | StreamedResponse:
        # One parser serves every answer on a kept-alive connection, but not a HEAD answer: its
        # Content-Length is not followed by a body, which the parser cannot be told.
        parser = _parser(head_request=True) if head_request else conn.parser
        events: _Events = deque()
        if not await self._read(conn, parser, events, unanswered=True):
            raise _ClosedBeforeAnswer("upstream closed the connection before answering")
        arrived = events.popleft() if events else None
        if isinstance(arrived, Response) and arrived.status >= 200:
            head = arrived  # the usual answer: its head in the first read
        else:
            head = await self._final_head(conn, parser, events, on_interim, arrived)
        lengths = head.header_values("content-length")
        length = int(lengths[0]) if lengths else None
        chunked = bool(head.header_values("transfer-encoding"))
        # An answer to HEAD, a 204 and a 304 never have a body (RFC 9112 §6.3 rule 1; an
        # interim is not the answer): without a length they do not run to the close.
        no_body = head_request or head.status in (204, 304)
        until_close = length is None and not chunked and not no_body
        if until_close:
            head.keep_alive = False
        buffered = no_body or head.status >= 400 or (length is not None and length <= STREAM_OVER)
        body: list[bytes] = []
        size = 0
        while True:
            while events:
                event = events.popleft()
                if isinstance(event, BodyEnd):
                    head.body = b"".join(body)
                    self._release(conn, key, head.keep_alive)
                    return head
                assert isinstance(event, BodyPart)
                body.append(event.data)
                size += len(event.data)
            if not buffered:
                first = b"".join(body)
                rest = self._rest(conn, key, parser, events, head.keep_alive, until_close)
                return StreamedResponse(head, length, first, rest)
            if size > MAX_BODY_BYTES:
                raise UpstreamError("upstream error response body too large")
            if not await self._read(conn, parser, events):
                if until_close:
                    head.body = b"".join(body)
                    conn.close()
                    return head
                raise UpstreamError("upstream closed the connection in the middle of its answer")

    async def _rest(
        self,
        conn: _Conn,
        key: _Key,
        parser: ResponseStreamParser,
        events: _Events,
        keep_alive: bool,
        until_close: bool,
    ) -> AsyncGenerator[bytes, None]:
        complete = False
        try:
            while True:
                while events:
                    event = events.popleft()
                    if isinstance(event, BodyEnd):
                        complete = True
                        return
                    assert isinstance(event, BodyPart)
                    yield event.data
                if not await self._read(conn, parser, events):
                    if until_close:
                        return
                    raise UpstreamError(
                        "upstream closed the connection in the middle of its answer"
                    )
        finally:
            if complete:
                self._release(conn, key, keep_alive)
            else:
                conn.close()

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


@dataclass(slots=True)
class StreamedResponse:
    """A response whose body is still arriving: ``first`` is what came with the head, ``rest``
    yields the remainder (iterate it once, or ``aclose`` it; the connection is pooled again
    only when it ran to the end). ``length`` is the Content-Length, None when unknown."""

    head: Response
    length: int | None
    first: bytes
    rest: AsyncGenerator[bytes, None]
