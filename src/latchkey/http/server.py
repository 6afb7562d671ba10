"""A small asyncio HTTP/1.1 server for latchkey's own apps (the local cloud, the idp).

An app is ``async def app(request, peer) -> Response``. Requests on one connection are answered
in order; reading pauses while a request is being handled (no unbounded pipelining queue).
Unknown exceptions in an app become a bare 500; the traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from latchkey.http.h1 import ProtocolError, Request, RequestParser, Response, encode_response

log = logging.getLogger("latchkey.http")


@dataclass(frozen=True, slots=True)
class Peer:
    host: str
    port: int
    secure: bool = False  # the connection is TLS (the condition key aws:SecureTransport)


App = Callable[[Request, Peer], Awaitable[Response]]


class _Connection(asyncio.Protocol):
    def __init__(self, app: App, tasks: set[asyncio.Task[None]], live: set[_Connection]) -> None:
        self._app = app
        self._tasks = tasks
        self._live = live
        self._parser = RequestParser()
        self._pending: deque[Request] = deque()
        self._transport: asyncio.Transport | None = None
        self._peer = Peer("", 0)
        self._busy = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        self._live.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            secure = transport.get_extra_info("sslcontext") is not None
            self._peer = Peer(str(peer[0]), int(peer[1]), secure)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._transport = None
        self._live.discard(self)

    def close(self) -> None:
        """Hard close at shutdown: a graceful TLS close would wait for the peer."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._pending.extend(self._parser.feed(data))
        except ProtocolError as err:
            self._pending.clear()
            self._fail(err)
            return
        if self._pending and not self._busy:
            self._busy = True
            assert self._transport is not None
            self._transport.pause_reading()
            task = asyncio.get_running_loop().create_task(self._serve())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fail(self, err: ProtocolError) -> None:
        body = (str(err) + "\n").encode()
        resp = Response(err.status, [("Content-Type", "text/plain")], body, keep_alive=False)
        self._write(resp)

    def _write(self, resp: Response) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_response(resp))
        if not resp.keep_alive:
            self._closing = True
            transport.close()

    async def _serve(self) -> None:
        try:
            while self._pending and not self._closing:
                request = self._pending.popleft()
                if request.method == "CONNECT":
                    self._fail(ProtocolError("CONNECT is not served here", 405))
                    return
                try:
                    resp = await self._app(request, self._peer)
                except Exception:
                    log.exception("unhandled error in %s %s", request.method, request.path)
                    resp = Response(500, [("Content-Type", "text/plain")], b"internal error\n")
                resp.keep_alive = resp.keep_alive and request.keep_alive
                self._write(resp)
        finally:
            self._busy = False
            if self._transport is not None and not self._closing:
                self._transport.resume_reading()


class HttpServer:
    """One listening socket serving one app, optionally over TLS."""

    def __init__(self, app: App, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._app = app
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: set[_Connection] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._app, self._tasks, self._live),
            host,
            port,
            ssl=self._ssl,
            reuse_address=True,
            backlog=1024,
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._live):  # Server.close() leaves accepted connections open
            conn.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        await asyncio.sleep(0)  # let the transports finish closing
