"""The server name in a TLS ClientHello, read from buffered bytes without consuming them.

Sans-IO and bounds-checked: the caller peeks at the first bytes of a connection and asks
:func:`parse_client_hello` what they hold. The answer is :class:`NeedMore` (a ClientHello has
begun and is not whole yet), :class:`NotClientHello` (not TLS, or TLS this parser will not
trust: the caller treats the connection as opaque) or :class:`ClientHello` with the SNI
``host_name`` (RFC 6066, section 3), lower-cased, or ``None`` when the client sent none.

Only the framing is read (RFC 8446 sections 5.1 and 4.1.2; TLS 1.0-1.2 share it): handshake
records, reassembled across records, then the ClientHello's fixed fields and its extensions.
Every length is checked against what encloses it; nothing is decrypted or validated beyond that.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

CONTENT_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
EXTENSION_SERVER_NAME = 0
NAME_TYPE_HOST_NAME = 0
MAX_RECORD_PAYLOAD = 1 << 14  # a TLSPlaintext fragment is at most 2^14 bytes
MAX_CLIENT_HELLO = 1 << 14  # larger ClientHellos are not inspected (real ones are a few KiB)
RECORD_HEADER = 5
HANDSHAKE_HEADER = 4

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class NeedMore:
    """A ClientHello has begun; more bytes are needed to read it."""


@dataclass(frozen=True, slots=True)
class NotClientHello:
    """Not a TLS ClientHello, or one that breaks the framing rules; ``reason`` says which."""

    reason: str


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A whole ClientHello; ``size`` counts the record bytes it took."""

    server_name: str | None
    size: int


class _Malformed(Exception):
    pass


class _Cursor:
    """Bounds-checked reads over one byte string."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise _Malformed(f"{what} runs past its enclosing length")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_size: int, what: str) -> _Cursor:
        return _Cursor(self.take(self.uint(length_size, f"{what} length"), what))


def looks_like_tls(data: bytes) -> bool:
    """Whether ``data`` starts like a TLS handshake record (needs at least one byte)."""
    if not data or data[0] != CONTENT_HANDSHAKE:
        return False
    return len(data) < 2 or data[1] == 3


def _handshake_bytes(data: bytes) -> tuple[bytes, int] | NeedMore:
    """The handshake bytes of the leading records (as many as the message needs), with the
    count of record bytes they took."""
    out = bytearray()
    pos = 0
    want: int | None = None  # the whole handshake message's size, once its header is known
    while want is None or len(out) < want:
        if len(data) - pos < RECORD_HEADER:
            return NeedMore()
        content_type, major, _minor = data[pos], data[pos + 1], data[pos + 2]
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != CONTENT_HANDSHAKE:
            raise _Malformed(f"record type {content_type} where a handshake record belongs")
        if major != 3:
            raise _Malformed(f"record version {major}.{_minor}")
        if length == 0:
            raise _Malformed("empty handshake record")
        if length > MAX_RECORD_PAYLOAD:
            raise _Malformed(f"record of {length} bytes exceeds 2^14")
        if len(data) - pos - RECORD_HEADER < length:
            return NeedMore()
        out += data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if want is None and len(out) >= HANDSHAKE_HEADER:
            if out[0] != HANDSHAKE_CLIENT_HELLO:
                raise _Malformed(f"handshake message type {out[0]}, not ClientHello")
            body = int.from_bytes(out[1:4], "big")
            if body > MAX_CLIENT_HELLO:
                raise _Malformed(f"ClientHello of {body} bytes exceeds {MAX_CLIENT_HELLO}")
            want = HANDSHAKE_HEADER + body
    assert want is not None
    if len(out) > want:
        # the last record also carries the start of another handshake message: not a
        # first flight any client sends
        raise _Malformed("data after the ClientHello in its record")
    return bytes(out[HANDSHAKE_HEADER:want]), pos


def normalize_host_name(raw: bytes) -> str:
    """An SNI host_name as a lower-case DNS name; ``_Malformed`` for anything else (RFC 6066:
    ASCII, no trailing dot, no IP literal)."""
    try:
        name = raw.decode("ascii").lower()
    except UnicodeDecodeError:
        raise _Malformed("server name is not ASCII") from None
    if not name or len(name) > 253 or name.endswith("."):
        raise _Malformed("server name length or trailing dot")
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise _Malformed("server name is not a DNS name")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    raise _Malformed("server name is an IP literal")


def _server_name(extension: _Cursor) -> str | None:
    names = extension.vector(2, "server_name_list")
    if extension.remaining:
        raise _Malformed("bytes after server_name_list")
    if not names.remaining:
        raise _Malformed("empty server_name_list")
    found: str | None = None
    while names.remaining:
        name_type = names.uint(1, "name_type")
        value = names.vector(2, "host_name").rest()
        if name_type != NAME_TYPE_HOST_NAME:
            raise _Malformed(f"unknown SNI name_type {name_type}")
        if found is not None:
            raise _Malformed("two host_name entries")
        found = normalize_host_name(value)
    return found


def _parse_body(body: bytes) -> str | None:
    hello = _Cursor(body)
    version = hello.uint(2, "legacy_version")
    if version >> 8 != 3:
        raise _Malformed(f"ClientHello version {version:#06x}")
    hello.take(32, "random")
    session_id = hello.vector(1, "legacy_session_id")
    if session_id.remaining > 32:
        raise _Malformed("session id longer than 32 bytes")
    suites = hello.vector(2, "cipher_suites")
    if suites.remaining == 0 or suites.remaining % 2:
        raise _Malformed("cipher_suites length")
    if hello.vector(1, "compression_methods").remaining == 0:
        raise _Malformed("no compression method")
    if not hello.remaining:
        return None  # a hello without extensions (TLS 1.0 style): no SNI
    extensions = hello.vector(2, "extensions")
    if hello.remaining:
        raise _Malformed("bytes after the extensions")
    seen: set[int] = set()
    server_name: str | None = None
    while extensions.remaining:
        ext_type = extensions.uint(2, "extension type")
        data = extensions.vector(2, f"extension {ext_type}")
        if ext_type in seen:
            raise _Malformed(f"extension {ext_type} appears twice")
        seen.add(ext_type)
        if ext_type == EXTENSION_SERVER_NAME:
            server_name = _server_name(data)
    return server_name


def parse_client_hello(data: bytes) -> ClientHello | NeedMore | NotClientHello:
    """What the first bytes of a connection hold (see the module docstring)."""
    if not data:
        return NeedMore()
    if not looks_like_tls(data):
        return NotClientHello("not a TLS handshake record")
    try:
        found = _handshake_bytes(data)
        if isinstance(found, NeedMore):
            return found
        body, size = found
        return ClientHello(_parse_body(body), size)
    except _Malformed as exc:
        return NotClientHello(str(exc))
