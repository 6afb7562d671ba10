"""Streamed bodies: a client's request body read only as it is consumed, a response relayed.

Which requests stream is decided from the head alone (``stream_request_if``): a chunked body,
``Expect: 100-continue`` (the client waits before sending its body, so the edge must answer
before it can have the body), and for SigV4 workloads a non-empty body whose payload hash is
declared (``x-amz-content-sha256``: the edge never needs to hash it). Everything else is
buffered, up to the body limit (413).

``Expect: 100-continue`` is answered by the edge itself, with ``100 Continue`` the moment it
first reads the body, which it does only after the policy allowed the request and credentials
were ready. A refusal is answered without it, and the connection is then closed (the body was
never read). The upstream does not see ``Expect``: the edge sends the body right away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from latchkey.http.h1 import (
    LAST_CHUNK,
    BodyEnd,
    BodyPart,
    Event,
    ProtocolError,
    Request,
    RequestParser,
    Response,
    StreamIf,
    encode_chunk,
    encode_response_head,
)

READ_CHUNK = 65536
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientGone(ConnectionError):
    """The client closed its connection in the middle of a request body."""


def stream_request_if(*, declared_hash_streams: bool) -> StreamIf:
    """The predicate a ``RequestParser`` asks once a request head is complete."""

    def stream(headers: list[tuple[str, str]]) -> bool:
        length = ""
        declared = False
        for name, value in headers:
            lname = name.lower()
            if lname == "transfer-encoding":
                return True
            if lname == "expect" and value.strip().lower() == "100-continue":
                return True
            if lname == "content-length":
                length = value.strip()
            elif lname == "x-amz-content-sha256":
                declared = True
        return declared_hash_streams and declared and length not in ("", "0")

    return stream


async def encode_chunked(parts: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """``parts`` framed as a chunked body (for a body of unknown length)."""
    async for part in parts:
        if part:
            yield encode_chunk(part)
    yield LAST_CHUNK


def content_length(request: Request) -> int | None:
    value = request.header("Content-Length")
    return int(value) if value is not None else None


class ClientBody:
    """The body of one streamed request. ``parts`` yields it once; ``finished`` tells whether
    it was read to the end (if not, the connection cannot carry another request)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: RequestParser,
        events: list[Event],
        request: Request,
        *,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._events = events
        self._timeout = timeout
        expect = (request.header("Expect") or "").strip().lower()
        self._continue = expect == "100-continue"
        self.finished = False

    async def parts(self) -> AsyncGenerator[bytes, None]:
        if self._continue:
            self._continue = False
            self._writer.write(CONTINUE)
        while True:
            while self._events:
                event = self._events[0]
                if isinstance(event, Request):
                    raise ProtocolError("a request began before the last body ended")
                del self._events[0]
                if isinstance(event, BodyEnd):
                    self.finished = True
                    return
                assert isinstance(event, BodyPart)
                if event.data:
                    yield event.data
            try:
                async with asyncio.timeout(self._timeout):
                    data = await self._reader.read(READ_CHUNK)
            except TimeoutError:
                raise ProtocolError("the request body did not arrive in time", 408) from None
            if not data:
                raise ClientGone("the client closed the connection during the request body")
            self._events.extend(self._parser.feed_events(data))

    async def collect(self, limit: int) -> bytes:
        """The whole body, for what must be hashed or inspected: 413 beyond ``limit``."""
        out = bytearray()
        async for part in self.parts():
            out += part
            if len(out) > limit:
                raise ProtocolError("request body too large", 413)
        return bytes(out)


async def write_streamed_response(
    writer: asyncio.StreamWriter,
    head: Response,
    length: int | None,
    first: bytes,
    rest: AsyncIterator[bytes],
    *,
    http10: bool = False,
) -> None:
    """Relay a response as it arrives: with its Content-Length when known, else chunked (or
    delimited by the close for an HTTP/1.0 client)."""
    chunked = length is None and not http10
    if length is None and http10:
        head.keep_alive = False
    writer.write(encode_response_head(head, length, no_body=length is None and http10))
    if first:
        writer.write(encode_chunk(first) if chunked else first)
    await writer.drain()
    async for part in rest:
        writer.write(encode_chunk(part) if chunked else part)
        await writer.drain()
    if chunked:
        writer.write(LAST_CHUNK)
