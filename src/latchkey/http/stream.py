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

from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from latchkey.http.conn import Conn
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
from latchkey.http.splice import Sink

READ_CHUNK = 65536
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientGone(ConnectionError):
    """The client closed its connection in the middle of a request body."""


class _StreamIf:
    """The predicate a ``RequestParser`` asks once a request head is complete; ``by_index``
    answers the same from the parser's lowercase header index (no second pass)."""

    __slots__ = ("declared_hash_streams",)

    def __init__(self, declared_hash_streams: bool) -> None:
        self.declared_hash_streams = declared_hash_streams

    def __call__(self, headers: list[tuple[str, str]]) -> bool:
        index: dict[str, list[str]] = {}
        for name, value in headers:
            index.setdefault(name.lower(), []).append(value)
        return self.by_index(index)

    def by_index(self, index: Mapping[str, list[str]]) -> bool:
        if "transfer-encoding" in index:
            return True
        expect = index.get("expect")
        if expect and any(value.strip().lower() == "100-continue" for value in expect):
            return True
        if not self.declared_hash_streams or "x-amz-content-sha256" not in index:
            return False
        lengths = index.get("content-length")
        if not lengths:
            return False
        return lengths[-1].strip() not in ("", "0")


def stream_request_if(*, declared_hash_streams: bool) -> StreamIf:
    """The predicate a ``RequestParser`` asks once a request head is complete."""
    return _StreamIf(declared_hash_streams)


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
        conn: Conn,
        parser: RequestParser,
        events: list[Event],
        request: Request,
        *,
        timeout: float,
    ) -> None:
        self._conn = conn
        self._parser = parser
        self._events = events
        self._timeout = timeout
        expect = (request.header("Expect") or "").strip().lower()
        self._continue = expect == "100-continue"
        self.finished = False

    async def parts(self) -> AsyncGenerator[bytes, None]:
        if self._continue:
            self._continue = False
            self._conn.write(CONTINUE)
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
                data = await self._conn.read(READ_CHUNK, self._timeout)
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
    writer: Sink,
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
