"""HTTP/1.1 messages, sans-IO: bytes in, ``Request``/``Response`` values out, bytes out.

httptools (llhttp) does the tokenising; this module adds the limits and the framing rules it
leaves to us, and re-serialises every message we send (we never forward a peer's raw bytes).
Both the edge and the local cloud's servers use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools

from latchkey.http.headers import index_headers

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024

# Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy ones: never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


_NONE: Sequence[str] = ()


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what to answer it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _HeaderLookup:
    """Header lookups for a message: a lowercase index built on first use for the ``headers``
    list it was built from (a message whose list is replaced re-indexes)."""

    __slots__ = ()
    headers: list[tuple[str, str]]
    _index: dict[str, list[str]] | None
    _indexed: list[tuple[str, str]] | None

    def header_values(self, lname: str) -> Sequence[str]:
        """Every value of header ``lname`` (give it in lowercase), in order."""
        headers = self.headers
        index = self._index
        if index is None or self._indexed is not headers:
            index = _index_of(headers)
            object.__setattr__(self, "_index", index)  # the subclass's slot
            object.__setattr__(self, "_indexed", headers)
        return index.get(lname, _NONE)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name.lower())
        return values[0] if values else None


@dataclass(slots=True)
class Request(_HeaderLookup):
    method: str
    target: str  # the request-target as sent (origin-form, absolute-form or authority-form)
    headers: list[tuple[str, str]]
    body: bytes = b""
    keep_alive: bool = True
    http_version: str = "1.1"
    tail: bytes = b""  # bytes after a CONNECT request: they belong to the tunnel
    streamed: bool = False  # the body follows as BodyPart events and one BodyEnd
    # lowercase name -> values, built on first use for the ``headers`` list it was built from
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _indexed: list[tuple[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(slots=True)
class Response(_HeaderLookup):
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    keep_alive: bool = True
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _indexed: list[tuple[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class BodyPart:
    """A piece of a streamed body (decoded from chunked framing, if it had any)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """A streamed body is complete."""


_BODY_END = BodyEnd()  # (all alike: one instance serves)
Event = Request | BodyPart | BodyEnd
StreamIf = Callable[[list[tuple[str, str]]], bool]


class _Collector:
    """httptools callback target: accumulates one message at a time.

    With ``stream_if`` (requests) or ``stream_all`` (responses), a message whose head qualifies
    is handed over when its head is complete (``streamed=True``), then as ``BodyPart`` events
    and one ``BodyEnd``: no body limit applies, the consumer bounds its memory. With
    ``interims`` too, a response's interim heads a client should see are handed over as well."""

    def __init__(self, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.stream_if: StreamIf | None = None
        # a predicate may answer from the lowercase index too (``stream_request_if``'s does)
        self.stream_by_index: Callable[[dict[str, list[str]]], bool] | None = None
        self.stream_all = False
        self.interims = False
        self.head_request = False
        self.progress = 0  # heads completed, body pieces and messages completed, ever
        self.stalled = 0  # bytes fed since the last progress
        self.reset()
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self.done: list[Event | Response] = []

    def reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.headers_complete = False
        self.status = 0
        self.streaming = False
        self.skip = False
        self.index: dict[str, list[str]] | None = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.max_header_bytes:
            self._count(0)
        if self.headers_complete:
            return  # a trailer field: never merged into the header section (RFC 9110 §6.5.1)
        self.headers.append((name.decode("latin-1"), value.decode("latin-1").strip(" \t")))

    def on_headers_complete(self) -> None:
        self.progress += 1
        self.headers_complete = True
        self.index = index = _index_of(self.headers)
        _check_framing_index(index)
        parser = self.parser
        if isinstance(parser, httptools.HttpResponseParser):
            self.status = parser.get_status_code()
            if self.stream_all:
                self._stream_response_head(parser)
        elif parser is not None:
            hosts = index.get("host", ())
            if len(hosts) > 1 or (not hosts and parser.get_http_version() == "1.1"):
                raise ProtocolError("an HTTP/1.1 request needs exactly one Host header")
            by_index = self.stream_by_index
            if by_index is not None:
                wanted = by_index(index)
            else:
                wanted = self.stream_if is not None and self.stream_if(self.headers)
            if wanted:
                self.streaming = True
                request = Request(
                    parser.get_method().decode("ascii", "replace"),
                    self.url.decode("latin-1"),
                    self.headers,
                    b"",
                    bool(parser.should_keep_alive()),
                    parser.get_http_version(),
                    streamed=True,
                )
                request._index, request._indexed = index, self.headers
                self.done.append(request)

    def _stream_response_head(self, parser: httptools.HttpResponseParser) -> None:
        status = self.status
        if status < 200:
            self.skip = True  # an interim response: not the answer
            # A proxy forwards the interims it did not ask for (RFC 9110 §15.2); a 100 is for
            # the edge, which answers a client's Expect itself, and a 101 is never solicited.
            if self.interims and status not in (100, 101):
                self.done.append(Response(status, self.headers, b"", True))
            return
        self.streaming = True
        if self.head_request:
            # llhttp, not told of the HEAD, takes a response without a length for one whose
            # body runs to the close, and so one that cannot keep the connection alive.
            keep_alive = _keeps_alive(parser.get_http_version(), self.index or {})
        else:
            keep_alive = bool(parser.should_keep_alive())
        response = Response(status, self.headers, b"", keep_alive)
        if self.index is not None:
            response._index, response._indexed = self.index, self.headers
        self.done.append(response)
        if self.head_request:
            self.done.append(_BODY_END)
            self.skip = True  # whatever length it names, a HEAD response has no body

    def on_body(self, body: bytes) -> None:
        self.progress += 1
        if self.streaming:
            if not self.skip:
                self.done.append(BodyPart(body))
            return
        self.body_bytes += len(body)
        if self.body_bytes > self.max_body_bytes:
            raise ProtocolError("request body too large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.progress += 1
        parser = self.parser
        assert parser is not None
        if self.streaming or self.skip:
            if not self.skip:
                self.done.append(_BODY_END)
            self.reset()
            return
        method = ""
        if isinstance(parser, httptools.HttpRequestParser):
            method = parser.get_method().decode("ascii", "replace")
        body = self.body
        request = Request(
            method or str(self.status),
            self.url.decode("latin-1"),
            self.headers,
            body[0] if len(body) == 1 else b"".join(body),
            bool(parser.should_keep_alive()),
            parser.get_http_version(),
        )
        if self.index is not None:
            request._index, request._indexed = self.index, self.headers
        self.done.append(request)
        self.reset()

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.max_header_bytes:
            raise _too_large()

    def feed(self, data: bytes) -> None:
        """Feed the parser, refusing a head that outgrows the limit before it is complete.

        llhttp gathers an unfinished field line by repeated concatenation (quadratic) and hands
        it over only once whole, so counting the fields alone notices a huge one too late. Here
        every byte fed while nothing progresses (no head completed, no body bytes, no message
        completed) counts: past the limit, the bytes are refused before llhttp sees them. (A
        head, or trailer section, begun in a piece that also made progress counts from the next
        piece on: at most a piece, the limit, is fed uncounted.)"""
        parser = self.parser
        assert parser is not None
        limit = self.max_header_bytes
        fed = 0
        while True:
            room = limit - self.stalled
            if fed == 0 and len(data) <= room:
                piece: bytes | memoryview = data  # the usual case: all of it at once
            else:
                piece = memoryview(data)[fed : fed + max(room, 0)]
            progress = self.progress
            try:
                parser.feed_data(piece)
            except httptools.HttpParserUpgrade as exc:  # its offset is into this piece
                offset = exc.args[0] if exc.args else len(piece)
                raise httptools.HttpParserUpgrade(fed + offset) from None
            self.stalled = 0 if self.progress != progress else self.stalled + len(piece)
            fed += len(piece)
            if fed >= len(data):
                return
            if self.stalled >= limit:
                raise _too_large()


def _too_large() -> ProtocolError:
    return ProtocolError("header fields too large", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)


def _keeps_alive(version: str, index: dict[str, list[str]]) -> bool:
    """Whether a message's version and Connection header keep its connection alive."""
    tokens = {t.strip().lower() for value in index.get("connection", ()) for t in value.split(",")}
    if version == "1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


_index_of = index_headers


def _check_framing(headers: list[tuple[str, str]]) -> None:
    """Refuse messages whose length is ambiguous (request smuggling)."""
    _check_framing_index(_index_of(headers))


def _check_framing_index(index: dict[str, list[str]]) -> None:
    lengths = [v.strip() for v in index.get("content-length", ())]
    codings = index.get("transfer-encoding")
    if lengths and codings:
        raise ProtocolError("both Content-Length and Transfer-Encoding")
    if codings:
        _check_codings(codings)
    if len(set(lengths)) > 1:
        raise ProtocolError("conflicting Content-Length headers")
    for value in lengths:
        if not value.isdigit():
            raise ProtocolError("invalid Content-Length")


def _check_codings(values: list[str]) -> None:
    """Chunked is the only transfer coding we decode, so the only one accepted: a coding we
    cannot decode must not reach the other side as if it were the content (RFC 9112 §6.1)."""
    # (empty list elements are ignored, RFC 9110 §5.6.1)
    codings = [c.strip(" \t").lower() for value in values for c in value.split(",")]
    codings = [c for c in codings if c]
    if codings == ["chunked"]:
        return
    if not codings or codings[-1] != "chunked" or codings.count("chunked") > 1:
        # the length cannot be told (RFC 9112 §6.3)
        raise ProtocolError("invalid Transfer-Encoding")
    raise ProtocolError(
        f"transfer coding not implemented: {', '.join(codings[:-1])}",
        HTTPStatus.NOT_IMPLEMENTED,
    )


class RequestParser:
    """Feed bytes, get complete requests. One instance per connection."""

    def __init__(
        self,
        *,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        stream_if: StreamIf | None = None,
    ) -> None:
        self._c = _Collector(max_header_bytes, max_body_bytes)
        self._c.stream_if = stream_if
        self._c.stream_by_index = getattr(stream_if, "by_index", None)
        self._parser = httptools.HttpRequestParser(self._c)
        self._c.parser = self._parser
        self._upgraded = False

    def feed(self, data: bytes) -> list[Request]:
        """Complete requests (for a parser without ``stream_if``: no body events)."""
        if self._c.stream_if is not None:
            raise ValueError("a streaming parser hands out events: use feed_events")
        return cast(list[Request], self.feed_events(data))

    def feed_events(self, data: bytes) -> list[Event]:
        """Requests, and for streamed ones (``Request.streamed``) their body events."""
        if self._upgraded:
            raise ProtocolError("data after CONNECT belongs to the tunnel")
        tail = b""
        try:
            self._c.feed(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            tail = data[offset:]
            self._upgraded = True
        except ProtocolError:
            raise
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(f"malformed request: {exc}") from None
        events = cast(list[Event], list(self._c.done))  # a request parser makes no Response
        self._c.done.clear()
        if self._upgraded:
            last = events[-1] if events else None
            if not isinstance(last, Request) or last.method != "CONNECT":
                raise ProtocolError("protocol upgrades are not supported")
            last.tail = tail
        return events


class ResponseParser:
    """Feed bytes from a server, get complete responses."""

    def __init__(self, *, max_body_bytes: int = MAX_BODY_BYTES, head_request: bool = False) -> None:
        self._c = _Collector(MAX_HEADER_BYTES, max_body_bytes)
        self._parser = httptools.HttpResponseParser(self._c)
        self._c.parser = self._parser
        # httptools cannot be told a response has no body (HEAD); callers avoid HEAD for now.
        self._head = head_request

    def feed(self, data: bytes) -> list[Response]:
        _feed_response(self._c, data)
        out = [
            Response(int(r.method), r.headers, r.body, r.keep_alive)
            for r in self._c.done
            if isinstance(r, Request)
        ]
        self._c.done.clear()
        return out


class ResponseStreamParser:
    """Feed bytes from a server, get the final response's head (a ``Response`` with an empty
    body) as soon as it is complete, then ``BodyPart`` events and one ``BodyEnd``. Interim
    (1xx) responses are skipped, but with ``interims`` those a proxy forwards (not 100, not
    101) come first as a ``Response`` each (status < 200, no body events); a HEAD response
    ends at its head."""

    def __init__(self, *, head_request: bool = False, interims: bool = False) -> None:
        self._c = _Collector(MAX_HEADER_BYTES, MAX_BODY_BYTES)
        self._c.stream_all = True
        self._c.interims = interims
        self._c.head_request = head_request
        self._parser = httptools.HttpResponseParser(self._c)
        self._c.parser = self._parser

    def feed(self, data: bytes) -> list[Response | BodyPart | BodyEnd]:
        try:  # (_feed_response, inline: this one runs for every upstream read)
            self._c.feed(data)
        except (ProtocolError, httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise _bad_gateway(exc) from None
        out: list[Response | BodyPart | BodyEnd] = []
        for event in self._c.done:
            assert not isinstance(event, Request)
            out.append(event)
        self._c.done.clear()
        return out


def _feed_response(collector: _Collector, data: bytes) -> None:
    """Feed a response parser: any fault of the server's is a bad gateway."""
    try:
        collector.feed(data)
    except (ProtocolError, httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
        raise _bad_gateway(exc) from None


def _bad_gateway(exc: Exception) -> ProtocolError:
    """What a response parser's failure means to the proxy's client: a 502 saying why."""
    bad = HTTPStatus.BAD_GATEWAY
    if isinstance(exc, ProtocolError):
        return ProtocolError(str(exc), bad)
    if isinstance(exc, httptools.HttpParserUpgrade):  # (we never ask for an upgrade)
        return ProtocolError("unsolicited 101 Switching Protocols", bad)
    cause = exc.__context__
    if isinstance(cause, ProtocolError):
        return ProtocolError(str(cause), bad)
    return ProtocolError(f"malformed response: {exc}", bad)


def body_framing(headers: Iterable[tuple[str, str]]) -> int | None:
    """The Content-Length of a message, or None (chunked, or delimited by the close)."""
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    return None


_REASONS = {status.value: status.phrase for status in HTTPStatus}
# framing headers are always ours: never copied from the message we re-serialise
_NOT_COPIED = HOP_BY_HOP | {"content-length"}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def _encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"{name}: {value}\r\n" for name, value in headers]
    text = "".join(lines)
    # a CR or LF inside a name or a value shows as more of them than the lines' own ends
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("header contains a line break")
    return text.encode("latin-1")


def extra_hop_by_hop(connection: Iterable[str]) -> frozenset[str]:
    """Header names the ``Connection`` values mark as hop-by-hop beyond ``HOP_BY_HOP`` (which
    every encoder here drops anyway); empty in the common case (``keep-alive``, ``close``)."""
    tokens = {t.strip().lower() for value in connection for t in value.split(",")}
    tokens.discard("")
    return frozenset(tokens - HOP_BY_HOP)


def connection_tokens(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names a ``Connection`` header marks as hop-by-hop (RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers a proxy may forward: hop-by-hop ones and those named by Connection removed."""
    headers = list(headers)
    lowered = [k.lower() for k, _ in headers]
    drop = HOP_BY_HOP
    if "connection" in lowered:
        drop = HOP_BY_HOP | connection_tokens(headers)
    return [pair for pair, lname in zip(headers, lowered, strict=True) if lname not in drop]


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


_GOOD_METHODS: set[str] = set()  # methods already checked (bounded by the check below)


def _check_request_line(method: str, target: str) -> None:
    if method not in _GOOD_METHODS:
        if not method or not set(method) <= _TOKEN_CHARS:
            raise ValueError("invalid request method")
        if len(_GOOD_METHODS) < 64 and len(method) <= 16:
            _GOOD_METHODS.add(method)
    # visible ASCII (0x21-0x7e): printable ASCII without the space
    if not target or not target.isascii() or not target.isprintable() or " " in target:
        raise ValueError("invalid request target")


def encode_request(
    method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """Serialise a request with an exact Content-Length (framing headers are ours)."""
    _check_request_line(method, target)
    kept = [(k, v) for k, v in headers if k.lower() not in _NOT_COPIED]
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        kept.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n" + body


def encode_request_head(
    method: str, target: str, headers: Iterable[tuple[str, str]], length: int | None
) -> bytes:
    """A request head whose body follows: ``length`` bytes, or chunked when None."""
    _check_request_line(method, target)
    kept = [(k, v) for k, v in headers if k.lower() not in _NOT_COPIED]
    if length is None:
        kept.append(("Transfer-Encoding", "chunked"))
    elif length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        kept.append(("Content-Length", str(length)))
    return f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + _encode_headers(kept) + b"\r\n"


def encode_response_head(response: Response, length: int | None, *, no_body: bool = False) -> bytes:
    """A response head whose body follows: ``length`` bytes, or chunked when None. With
    ``no_body`` (an answer to HEAD, 204, 304) a given length is only announced."""
    kept = [(k, v) for k, v in response.headers if k.lower() not in _NOT_COPIED]
    if length is not None:
        kept.append(("Content-Length", str(length)))
    elif not no_body:
        kept.append(("Transfer-Encoding", "chunked"))
    if not response.keep_alive:
        kept.append(("Connection", "close"))
    status = response.status
    head = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n"


def encode_interim(response: Response) -> bytes:
    """An interim (1xx) response to forward: its end-to-end headers, no framing (RFC 9110 §15.2;
    an HTTP/1.0 client must not be sent one)."""
    status = response.status
    if not 100 <= status < 200:
        raise ValueError("not an interim status")
    kept = [(k, v) for k, v in end_to_end(response.headers) if k.lower() != "content-length"]
    head = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n"


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``LAST_CHUNK`` ends it)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""


LAST_CHUNK = b"0\r\n\r\n"


def encode_response(response: Response) -> bytes:
    """Serialise a response with an exact Content-Length and our own Connection header."""
    kept = [(k, v) for k, v in response.headers if k.lower() not in _NOT_COPIED]
    status = response.status
    if status >= 200 and status not in (204, 304):
        kept.append(("Content-Length", str(len(response.body))))
    if not response.keep_alive:
        kept.append(("Connection", "close"))
    head = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n" + response.body
