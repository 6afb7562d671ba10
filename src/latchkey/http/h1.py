"""HTTP/1.1 messages, sans-IO: bytes in, ``Request``/``Response`` values out, bytes out.

httptools (llhttp) does the tokenising; this module adds the limits and the framing rules it
leaves to us, and re-serialises every message we send (we never forward a peer's raw bytes).
Both the edge and the local cloud's servers use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

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


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what to answer it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    method: str
    target: str  # the request-target as sent (origin-form, absolute-form or authority-form)
    headers: list[tuple[str, str]]
    body: bytes = b""
    keep_alive: bool = True
    http_version: str = "1.1"
    tail: bytes = b""  # bytes after a CONNECT request: they belong to the tunnel

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class _Collector:
    """httptools callback target: accumulates one message at a time."""

    def __init__(self, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.reset()
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self.done: list[Request] = []

    def reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.headers_complete = False
        self.status = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if self.headers_complete:
            return  # a trailer field: never merged into the header section (RFC 9110 §6.5.1)
        self.headers.append((name.decode("latin-1"), value.decode("latin-1").strip(" \t")))

    def on_headers_complete(self) -> None:
        self.headers_complete = True
        _check_framing(self.headers)
        parser = self.parser
        if isinstance(parser, httptools.HttpResponseParser):
            self.status = parser.get_status_code()
        elif parser is not None:
            hosts = [v for k, v in self.headers if k.lower() == "host"]
            if len(hosts) > 1 or (not hosts and parser.get_http_version() == "1.1"):
                raise ProtocolError("an HTTP/1.1 request needs exactly one Host header")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.max_body_bytes:
            raise ProtocolError("request body too large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        method = ""
        if isinstance(parser, httptools.HttpRequestParser):
            method = parser.get_method().decode("ascii", "replace")
        self.done.append(
            Request(
                method or str(self.status),
                self.url.decode("latin-1"),
                self.headers,
                b"".join(self.body),
                bool(parser.should_keep_alive()),
                parser.get_http_version(),
            )
        )
        self.reset()

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.max_header_bytes:
            raise ProtocolError(
                "request header fields too large", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            )


def _check_framing(headers: list[tuple[str, str]]) -> None:
    """Refuse messages whose length is ambiguous (request smuggling)."""
    lengths = [v.strip() for k, v in headers if k.lower() == "content-length"]
    chunked = [v for k, v in headers if k.lower() == "transfer-encoding"]
    if lengths and chunked:
        raise ProtocolError("both Content-Length and Transfer-Encoding")
    if len(set(lengths)) > 1:
        raise ProtocolError("conflicting Content-Length headers")
    for value in lengths:
        if not value.isdigit():
            raise ProtocolError("invalid Content-Length")


class RequestParser:
    """Feed bytes, get complete requests. One instance per connection."""

    def __init__(
        self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._c = _Collector(max_header_bytes, max_body_bytes)
        self._parser = httptools.HttpRequestParser(self._c)
        self._c.parser = self._parser
        self._upgraded = False

    def feed(self, data: bytes) -> list[Request]:
        if self._upgraded:
            raise ProtocolError("data after CONNECT belongs to the tunnel")
        tail = b""
        try:
            self._parser.feed_data(data)
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
        requests = list(self._c.done)
        self._c.done.clear()
        if self._upgraded:
            if not requests or requests[-1].method != "CONNECT":
                raise ProtocolError("protocol upgrades are not supported")
            requests[-1].tail = tail
        return requests


class ResponseParser:
    """Feed bytes from a server, get complete responses."""

    def __init__(self, *, max_body_bytes: int = MAX_BODY_BYTES, head_request: bool = False) -> None:
        self._c = _Collector(MAX_HEADER_BYTES, max_body_bytes)
        self._parser = httptools.HttpResponseParser(self._c)
        self._c.parser = self._parser
        # httptools cannot be told a response has no body (HEAD); callers avoid HEAD for now.
        self._head = head_request

    def feed(self, data: bytes) -> list[Response]:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"malformed response: {exc}", HTTPStatus.BAD_GATEWAY) from None
        out = [Response(int(r.method), r.headers, r.body, r.keep_alive) for r in self._c.done]
        self._c.done.clear()
        return out


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    lines = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError("header contains a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


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
    drop = HOP_BY_HOP | connection_tokens(headers)
    return [(k, v) for k, v in headers if k.lower() not in drop]


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def encode_request(
    method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """Serialise a request with an exact Content-Length (framing headers are ours)."""
    if not method or not set(method) <= _TOKEN_CHARS:
        raise ValueError("invalid request method")
    if not target or any(not 0x21 <= ord(c) <= 0x7E for c in target):
        raise ValueError("invalid request target")
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP | {"content-length"}]
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        kept.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n" + body


def encode_response(response: Response) -> bytes:
    """Serialise a response with an exact Content-Length and our own Connection header."""
    kept = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP | {"content-length"}]
    status = response.status
    if status >= 200 and status not in (204, 304):
        kept.append(("Content-Length", str(len(response.body))))
    if not response.keep_alive:
        kept.append(("Connection", "close"))
    head = f"HTTP/1.1 {status} {_reason(status)}\r\n".encode("latin-1") + _encode_headers(kept)
    return head + b"\r\n" + response.body
