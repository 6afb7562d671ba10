"""The aws-chunked body of streaming SigV4 uploads, sans-IO: decode, encode, re-sign.

A ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body is a run of chunks, each signed with a signature
chained from the previous one (the first from the request's seed signature)::

    <hex size>;chunk-signature=<64 hex>\\r\\n<data>\\r\\n ... 0;chunk-signature=<64 hex>\\r\\n\\r\\n

The ``-TRAILER`` variant ends with trailer fields and their own signature instead of the last
empty line::

    0;chunk-signature=<sig>\\r\\nx-amz-checksum-crc32:<b64>\\r\\nx-amz-trailer-signature:<sig>\\r\\n\\r\\n

``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` has the same shape without any signature.

``ChunkResigner`` reads a client's body (signed with a key the edge cannot check) and writes the
same chunks signed with another key, chained from another seed. A signature line keeps its
length (64 hex digits), so the re-signed body is exactly as long as the original and
``Content-Length`` / ``x-amz-decoded-content-length`` stay true.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from latchkey.aws import sigv4

MAX_LINE = 4096  # a size line or a trailer field
MAX_TRAILER_FIELDS = 16
_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE = re.compile(rb"[0-9a-f]{64}")
_EXTENSION = b";chunk-signature="
_TRAILER_SIGNATURE = b"x-amz-trailer-signature:"
_CRLF = b"\r\n"


class ChunkFormatError(ValueError):
    """The body is not well-formed aws-chunked (the edge answers 400; nothing names secrets)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One decoded chunk; ``size`` is the hex size as sent (kept, so lengths stay exact)."""

    size: bytes
    data: bytes
    signature: str | None


@dataclass(frozen=True, slots=True)
class Trailer:
    """The trailer fields (raw lines without CRLF, the signature line excluded)."""

    fields: tuple[bytes, ...]
    signature: str | None


class _State(enum.Enum):
    SIZE = enum.auto()
    DATA = enum.auto()
    LAST_LINE = enum.auto()
    TRAILER = enum.auto()
    DONE = enum.auto()


def canonical_trailer(fields: Iterable[bytes]) -> bytes:
    """What a trailer signature covers: each field as ``name:value\\n``, name lower-cased."""
    out = bytearray()
    for line in fields:
        name, _, value = line.partition(b":")
        out += name.strip().lower() + b":" + value.strip() + b"\n"
    return bytes(out)


class AwsChunkedDecoder:
    """Feed body bytes, get complete ``Chunk`` and ``Trailer`` values (the final, empty chunk
    included). Memory is bounded by one chunk (``max_chunk_bytes``)."""

    def __init__(self, *, signed: bool, trailer: bool, max_chunk_bytes: int) -> None:
        self._signed = signed
        self._trailer = trailer
        self._max_chunk = max_chunk_bytes
        self._buf = bytearray()
        self._state = _State.SIZE
        self._need = 0
        self._size = b""
        self._sig: str | None = None
        self._fields: list[bytes] = []
        self._trailer_sig: str | None = None
        self.decoded_length = 0

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes) -> list[Chunk | Trailer]:
        self._buf += data
        out: list[Chunk | Trailer] = []
        while True:
            state = self._state
            if state is _State.SIZE:
                line = self._line()
                if line is None:
                    break
                self._size_line(line, out)
            elif state is _State.DATA:
                if len(self._buf) < self._need + 2:
                    break
                if self._buf[self._need : self._need + 2] != _CRLF:
                    raise ChunkFormatError("aws-chunked: chunk data is not followed by CRLF")
                data_bytes = bytes(self._buf[: self._need])
                del self._buf[: self._need + 2]
                self.decoded_length += len(data_bytes)
                out.append(Chunk(self._size, data_bytes, self._sig))
                self._state = _State.SIZE
            elif state is _State.LAST_LINE:
                line = self._line()
                if line is None:
                    break
                if line:
                    raise ChunkFormatError("aws-chunked: the final chunk is not followed by CRLF")
                out.append(Chunk(self._size, b"", self._sig))
                self._state = _State.DONE
            elif state is _State.TRAILER:
                line = self._line()
                if line is None:
                    break
                self._trailer_line(line, out)
            else:
                if self._buf:
                    raise ChunkFormatError("aws-chunked: data after the final chunk")
                break
        return out

    def finish(self) -> None:
        """The body ended: raise unless the final chunk (and trailer) arrived."""
        if self._state is not _State.DONE:
            raise ChunkFormatError("aws-chunked: the body ended before the final chunk")

    def _line(self) -> bytes | None:
        end = self._buf.find(_CRLF)
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise ChunkFormatError("aws-chunked: line too long")
            return None
        if end > MAX_LINE:
            raise ChunkFormatError("aws-chunked: line too long")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _size_line(self, line: bytes, out: list[Chunk | Trailer]) -> None:
        if self._signed:
            size, ext, sig = line.partition(_EXTENSION)
            if not ext or not _SIGNATURE.fullmatch(sig):
                raise ChunkFormatError("aws-chunked: a chunk needs ';chunk-signature=<64 hex>'")
            self._sig = sig.decode("ascii")
        else:
            size = line
        if not _SIZE.fullmatch(size):
            raise ChunkFormatError("aws-chunked: bad chunk size")
        length = int(size, 16)
        if length > self._max_chunk:
            raise ChunkFormatError(f"aws-chunked: chunk larger than {self._max_chunk} bytes")
        self._size = size
        if length:
            self._need = length
            self._state = _State.DATA
        elif self._trailer:
            out.append(Chunk(size, b"", self._sig))
            self._state = _State.TRAILER
        else:
            self._state = _State.LAST_LINE

    def _trailer_line(self, line: bytes, out: list[Chunk | Trailer]) -> None:
        if not line:
            if self._signed and self._trailer_sig is None:
                raise ChunkFormatError("aws-chunked: the trailer has no x-amz-trailer-signature")
            out.append(Trailer(tuple(self._fields), self._trailer_sig))
            self._state = _State.DONE
            return
        if self._trailer_sig is not None:
            raise ChunkFormatError("aws-chunked: a field after the trailer signature")
        if line.lower().startswith(_TRAILER_SIGNATURE) and self._signed:
            sig = line[len(_TRAILER_SIGNATURE) :]
            if not line.startswith(_TRAILER_SIGNATURE) or not _SIGNATURE.fullmatch(sig):
                raise ChunkFormatError("aws-chunked: bad x-amz-trailer-signature")
            self._trailer_sig = sig.decode("ascii")
            return
        name, colon, _value = line.partition(b":")
        if not colon or not name.strip() or len(self._fields) >= MAX_TRAILER_FIELDS:
            raise ChunkFormatError("aws-chunked: bad trailer field")
        self._fields.append(line)


def encode_chunk(size: bytes, data: bytes, signature: str | None) -> bytes:
    """One chunk on the wire (the final chunk of a body without trailer adds ``\\r\\n``)."""
    ext = _EXTENSION + signature.encode("ascii") if signature is not None else b""
    return size + ext + _CRLF + data + (_CRLF if data else b"")


def encode_trailer(fields: Sequence[bytes], signature: str | None) -> bytes:
    out = b"".join(line + _CRLF for line in fields)
    if signature is not None:
        out += _TRAILER_SIGNATURE + signature.encode("ascii") + _CRLF
    return out + _CRLF


@dataclass(frozen=True, slots=True)
class ChunkSigning:
    """What chains the chunk signatures of one request: key, date, scope and seed."""

    signing_key: bytes
    amz_date: str
    scope: sigv4.CredentialScope
    seed_signature: str


def sign_chunks(
    chunks: Iterable[bytes], signing: ChunkSigning, *, trailer: Sequence[bytes] | None = None
) -> bytes:
    """A whole signed aws-chunked body for ``chunks`` (an empty final chunk is added)."""
    out = bytearray()
    previous = signing.seed_signature
    for data in [*(c for c in chunks if c), b""]:
        previous = sigv4.sign_chunk(
            signing.signing_key, signing.amz_date, signing.scope, previous, data
        )
        out += encode_chunk(f"{len(data):x}".encode(), data, previous)
    if trailer is None:
        return bytes(out + _CRLF)
    sig = sigv4.sign_trailer(
        signing.signing_key, signing.amz_date, signing.scope, previous, canonical_trailer(trailer)
    )
    return bytes(out + encode_trailer(trailer, sig))


class ChunkResigner:
    """Feed the client's signed aws-chunked body, get the same body signed under ``signing``.

    Nothing of the client's signatures is checked (they were made with a placeholder key);
    their framing is. Output has exactly the input's length once ``finish`` passed."""

    def __init__(self, signing: ChunkSigning, *, trailer: bool, max_chunk_bytes: int) -> None:
        self._signing = signing
        self._previous = signing.seed_signature
        self._decoder = AwsChunkedDecoder(
            signed=True, trailer=trailer, max_chunk_bytes=max_chunk_bytes
        )
        self._trailer = trailer

    @property
    def decoded_length(self) -> int:
        return self._decoder.decoded_length

    def feed(self, data: bytes) -> bytes:
        s = self._signing
        out = bytearray()
        for item in self._decoder.feed(data):
            if isinstance(item, Chunk):
                self._previous = sigv4.sign_chunk(
                    s.signing_key, s.amz_date, s.scope, self._previous, item.data
                )
                out += encode_chunk(item.size, item.data, self._previous)
                if not item.data and not self._trailer:
                    out += _CRLF
            else:
                canonical = canonical_trailer(item.fields)
                sig = sigv4.sign_trailer(
                    s.signing_key, s.amz_date, s.scope, self._previous, canonical
                )
                out += encode_trailer(item.fields, sig)
        return bytes(out)

    def finish(self) -> None:
        self._decoder.finish()
