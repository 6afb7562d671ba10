"""Upstream connections: verified TLS, keep-alive, pooled per (host, port, tls)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass

from latchkey.http.h1 import ProtocolError, Response, ResponseParser

IDLE_SECONDS = 30.0
READ_CHUNK = 65536


class UpstreamError(Exception):
    """The upstream could not be reached or broke the protocol (message names host and cause)."""


class _ClosedBeforeAnswer(UpstreamError):
    """A kept-alive connection the server had already closed: safe to retry once."""


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float

    def usable(self) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


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
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._idle: dict[tuple[str, int, bool, bool], list[_Conn]] = defaultdict(list)
        self.handshakes = 0

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The verifying context (system store plus configured bundles)."""
        return self._ssl

    def _context(self, verify: bool) -> ssl.SSLContext:
        if verify:
            return self._ssl
        if self._insecure is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._insecure = ctx
        return self._insecure

    async def _connect(self, host: str, port: int, tls: bool, verify: bool) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=self._context(verify) if tls else None,
                    server_hostname=host if tls else None,
                ),
                self._connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(f"connecting to {host}:{port} timed out") from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(
                f"TLS verification of {host}:{port} failed: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        if tls:
            self.handshakes += 1
        return _Conn(reader, writer, time.monotonic())

    async def request(
        self, host: str, port: int, tls: bool, data: bytes, *, verify: bool = True
    ) -> Response:
        """Send one serialised request, return the whole response."""
        key = (host, port, tls, verify)
        idle = self._idle[key]
        conn = None
        while idle:
            candidate = idle.pop()
            if candidate.usable():
                conn = candidate
                break
            candidate.close()
        reused = conn is not None
        if conn is None:
            conn = await self._connect(host, port, tls, verify)
        try:
            response = await self._exchange(conn, data)
        except _ClosedBeforeAnswer:
            conn.close()
            if not reused:
                raise
            # A pooled connection the server had closed: retry once on a new one.
            conn = await self._connect(host, port, tls, verify)
            try:
                response = await self._exchange(conn, data)
            except UpstreamError:
                conn.close()
                raise
        except UpstreamError:
            conn.close()
            raise
        if response.keep_alive:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()
        return response

    async def _exchange(self, conn: _Conn, data: bytes) -> Response:
        parser = ResponseParser()
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            async with asyncio.timeout(self._response_timeout):
                while True:
                    chunk = await conn.reader.read(READ_CHUNK)
                    if not chunk:
                        raise _ClosedBeforeAnswer("upstream closed the connection before answering")
                    # Interim (1xx) responses are not the answer: keep reading.
                    final = [r for r in parser.feed(chunk) if r.status >= 200]
                    if final:
                        return final[0]
        except TimeoutError:
            raise UpstreamError("upstream did not answer in time") from None
        except ConnectionResetError:
            raise _ClosedBeforeAnswer("upstream reset the connection") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"upstream connection failed: {exc}") from None
        except ProtocolError as exc:
            raise UpstreamError(f"upstream broke HTTP/1.1: {exc}") from None

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
