"""``latchkey token-relay``: a loopback proxy beside a workload that presents the workload's
rotating token to the edge.

SDKs read ``HTTPS_PROXY=http://workload:TOKEN@edge:8000`` once, at start; a projected
Kubernetes token rotates hourly. The relay takes the CONNECT a workload sends to it, adds
``Proxy-Authorization: Bearer <token>`` with the token the file holds now (re-read when the file
changes), forwards it to the edge and then relays bytes both ways. TLS stays end to end between
the workload and the edge; the relay sees only the CONNECT head.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from latchkey.edge.tokenfile import TokenFile, TokenFileError
from latchkey.http.h1 import ProtocolError, Request, RequestParser, Response, encode_response
from latchkey.http.splice import splice

log = logging.getLogger("latchkey.relay")

READ_CHUNK = 65536
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


def connect_head(request: Request, token: str) -> bytes:
    """The CONNECT to send to the edge: the client's headers, its Proxy-Authorization replaced
    by the token (the token is printable ASCII without spaces; TokenFile checks it)."""
    lines = [f"CONNECT {request.target} HTTP/{request.http_version}"]  # 1.0 needs no Host
    for name, value in request.headers:
        if name.lower() not in ("proxy-authorization", "content-length", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    lines.append(f"Proxy-Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _plain(status: int, text: str) -> bytes:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    return encode_response(Response(status, headers, (text + "\n").encode(), keep_alive=False))


class TokenRelay:
    def __init__(self, token_file: TokenFile, edge: tuple[str, int]) -> None:
        self.token_file = token_file
        self.edge = edge
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_client, host, port)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("relay connection failed")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _head(self, reader: asyncio.StreamReader) -> Request | None:
        parser = RequestParser()
        async with asyncio.timeout(HEAD_TIMEOUT):
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    return None
                requests = parser.feed(data)
                if requests:
                    return requests[0]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._head(reader)
        except ProtocolError as err:
            writer.write(_plain(err.status, str(err)))
            return
        if request is None:
            return
        if request.method != "CONNECT":
            writer.write(_plain(405, "the token relay forwards CONNECT only (use an https URL)"))
            return
        try:
            token = self.token_file.current()
        except TokenFileError as exc:
            log.warning("%s", exc)
            writer.write(_plain(503, str(exc)))
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.edge), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            host, port = self.edge
            writer.write(_plain(502, f"cannot reach the edge at {host}:{port}: {exc}"))
            return
        up_writer.write(connect_head(request, token) + request.tail)
        await splice((reader, writer), (up_reader, up_writer))


async def run_relay(token_file: TokenFile, listen: tuple[str, int], edge: tuple[str, int]) -> None:
    """Serve until cancelled; prints where it listens."""
    relay = TokenRelay(token_file, edge)
    host, port = await relay.start(*listen)
    where = f"edge {edge[0]}:{edge[1]}, token file {token_file.path}"
    print(f"token relay on {host}:{port} ({where})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await relay.close()
