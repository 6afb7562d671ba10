"""Re-signing a client's request with real credentials (pure: time is passed in).

The payload hash the client declared (``x-amz-content-sha256``) picks how the body is handled:

=========================================  ==================================================
none                                       the edge hashes the body (buffered, capped: 413)
64 hex digits                              reused as declared (the upstream checks it)
``UNSIGNED-PAYLOAD``                       headers signed, body streamed as is
``STREAMING-UNSIGNED-PAYLOAD-TRAILER``     headers signed, chunks and trailer streamed as is
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``     each chunk re-signed while streaming (``aws.chunked``)
``...-PAYLOAD-TRAILER``                    the same, and the trailer signature too
=========================================  ==================================================

Presigned URLs and compressed request bodies are refused (``Refusal``) with the workaround.
The S3 family (``S3_FAMILY``) signs its path as sent (encoded once); every other service
encodes it once more.

The credential scope (region, service) is the placeholder signature's; a request that has none
takes it from the AWS endpoint name it is sent to (``aws/endpoints.host_scope``), or is
refused.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote
from xml.sax.saxutils import escape

from latchkey.aws import sigv4
from latchkey.aws.chunked import ChunkResigner, ChunkSigning
from latchkey.aws.endpoints import host_scope
from latchkey.control.model import normalize_host
from latchkey.http.h1 import HOP_BY_HOP, Request, Response, connection_tokens

# Headers of the client's placeholder signature: removed before re-signing.
PLACEHOLDER_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
# Never sent upstream: the edge writes the framing, and answers 100-continue itself.
_DROPPED = PLACEHOLDER_HEADERS | {"content-length", "expect"}
# SigV4 query auth, and SigV2's (AWSAccessKeyId, still used by S3 presigned URLs)
_PRESIGN_PARAMS = frozenset(
    {"x-amz-signature", "x-amz-credential", "x-amz-algorithm", "awsaccesskeyid"}
)
_IDENTITY_CODINGS = frozenset({"", "identity", "aws-chunked"})
# The signing names botocore signs with S3's rules (S3SigV4Auth: the path as sent, neither
# normalized nor encoded again, and an x-amz-content-sha256 header): every name the endpoint
# rules of its s3 and s3control clients give, both of which sign with "s3v4".
S3_FAMILY = frozenset({"s3", "s3-object-lambda", "s3-outposts", "s3express"})


def signs_like_s3(service: str) -> bool:
    return service in S3_FAMILY


class PayloadMode(enum.Enum):
    HASH_BODY = "hash-body"
    DECLARED_HASH = "declared-hash"
    UNSIGNED = sigv4.UNSIGNED_PAYLOAD
    UNSIGNED_TRAILER = sigv4.STREAMING_UNSIGNED_TRAILER
    SIGNED_CHUNKS = sigv4.STREAMING_PAYLOAD
    SIGNED_CHUNKS_TRAILER = sigv4.STREAMING_PAYLOAD_TRAILER

    @property
    def resigns_chunks(self) -> bool:
        return self in (PayloadMode.SIGNED_CHUNKS, PayloadMode.SIGNED_CHUNKS_TRAILER)


class Refusal(Exception):
    """A request the edge cannot re-sign; ``message`` says why and what to do instead."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class SignedHead:
    """The headers to send upstream, and how the body must be treated."""

    headers: list[tuple[str, str]]
    mode: PayloadMode
    chunks: ChunkSigning | None = None  # set when the chunk chain must be re-signed


def _declared_scope(request: Request) -> tuple[str, str] | None:
    """(region, service) of the placeholder signature's credential scope, if well formed."""
    auth = request.header("Authorization") or ""
    if "Credential=" in auth:
        cred = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
        parts = cred.split("/")
        if len(parts) == 5 and parts[4] == "aws4_request":
            return parts[2], parts[3]
    return None


def signing_scope(request: Request, host: str) -> tuple[str, str]:
    """(region, service) to sign for: the placeholder's credential scope, else the host's;
    ``Refusal`` if neither says it."""
    scope = _declared_scope(request) or host_scope(normalize_host(host))
    if scope is None:
        raise Refusal(
            "InvalidRequest",
            f"latchkey cannot tell which region and service to sign this unsigned request to "
            f"{host} for: sign it with placeholder keys (any access key id and secret) and the "
            "right region, so that the edge reads both from the placeholder signature.",
        )
    return scope


def scope_of(request: Request, host: str) -> tuple[str, str]:
    """(region, service) as well as the request tells: ``signing_scope``, else a guess from
    the host name's first label (enough to shape an error or name an action, not to sign)."""
    scope = _declared_scope(request) or host_scope(normalize_host(host))
    return scope or ("us-east-1", normalize_host(host).split(".", 1)[0])


def placeholder_access_key(request: Request) -> str | None:
    """The access key id of the client's placeholder signature (it selects a provider)."""
    auth = request.header("Authorization") or ""
    if "Credential=" not in auth:
        return None
    return auth.split("Credential=", 1)[1].split("/", 1)[0].strip() or None


def payload_mode(request: Request, service: str) -> PayloadMode:
    """How the body is signed; ``Refusal`` for what the edge cannot re-sign."""
    query = request.query
    query_keys = (
        {unquote(part.partition("=")[0]).lower() for part in query.split("&")} if query else ()
    )
    if not _PRESIGN_PARAMS.isdisjoint(query_keys):
        raise Refusal(
            "InvalidRequest",
            "latchkey cannot re-sign a presigned URL (a signature in the query): the edge "
            "holds the real keys, so send the request header-signed with the placeholder keys "
            "through the edge instead of presigning it.",
        )
    codings = {
        token.strip().lower()
        for value in request.header_values("content-encoding")
        for token in value.split(",")
    }
    if service not in S3_FAMILY and codings - _IDENTITY_CODINGS:  # S3: object metadata
        raise Refusal(
            "InvalidRequest",
            "latchkey does not re-sign compressed request bodies (Content-Encoding: "
            f"{', '.join(sorted(codings - _IDENTITY_CODINGS))}): disable request compression "
            "in the client (AWS_DISABLE_REQUEST_COMPRESSION=true, or "
            "disable_request_compression = true in the AWS config file).",
        )
    declared = [v.strip() for v in request.header_values("x-amz-content-sha256")]
    if not declared:
        return PayloadMode.HASH_BODY
    if len(declared) > 1:
        raise Refusal("InvalidRequest", "more than one x-amz-content-sha256 header")
    value = declared[0]
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        return PayloadMode.DECLARED_HASH
    try:
        mode = PayloadMode(value)
    except ValueError:
        raise Refusal(
            "InvalidRequest",
            "latchkey cannot re-sign this x-amz-content-sha256 value (supported: a hex "
            f"SHA-256, {', '.join(m.value for m in list(PayloadMode)[2:])})",
        ) from None
    if mode.resigns_chunks and "aws-chunked" not in codings:
        raise Refusal("InvalidRequest", "a streaming signed payload needs aws-chunked encoding")
    return mode


_KeepKey = tuple[tuple[str, ...], tuple[str, ...]]
_KEPT: dict[_KeepKey, tuple[tuple[int, ...], bool]] = {}


def _kept_headers(
    names: tuple[str, ...], connection: tuple[str, ...]
) -> tuple[tuple[int, ...], bool]:
    """Positions of the headers that go upstream (end-to-end, not the placeholder's, not
    framing), and whether Host is among them: per header-name sequence (and Connection
    value), worked out once."""
    key = (names, connection)
    found = _KEPT.get(key)
    if found is not None:
        return found
    drop = HOP_BY_HOP | connection_tokens([("connection", value) for value in connection])
    lowered = [name.lower() for name in names]
    keep = tuple(i for i, name in enumerate(lowered) if name not in drop and name not in _DROPPED)
    found = (keep, any(lowered[i] == "host" for i in keep))
    if len(names) <= 64 and sum(map(len, names)) + sum(map(len, connection)) <= 2048:
        if len(_KEPT) >= 512:  # (only modest keys are kept: they come from clients)
            _KEPT.clear()
        _KEPT[key] = found
    return found


def resign_head(
    request: Request,
    creds: sigv4.Credentials,
    *,
    host: str,
    now: dt.datetime,
    scope: tuple[str, str] | None = None,
    mode: PayloadMode | None = None,
) -> SignedHead:
    """Sign the request's head anew. For ``HASH_BODY`` ``request.body`` must be the whole body;
    for every other mode the body is not read. ``scope`` and ``mode``, when the caller has
    them already, are ``signing_scope(request, host)`` and ``payload_mode(request, service)``."""
    region, service = scope if scope is not None else signing_scope(request, host)
    if mode is None:
        mode = payload_mode(request, service)
    headers = request.headers
    keep, has_host = _kept_headers(
        tuple([name for name, _ in headers]), tuple(request.header_values("connection"))
    )
    kept = [headers[i] for i in keep]
    if not has_host:
        kept.insert(0, ("Host", host))
    s3 = service in S3_FAMILY  # (signs_like_s3, without the call on every request)
    if s3 and mode is PayloadMode.HASH_BODY:  # S3 wants the hash as a header
        kept.append(("x-amz-content-sha256", sigv4.payload_hash(request.body)))
    unsigned = sigv4.HttpRequest(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=tuple(kept),
        body=request.body if mode is PayloadMode.HASH_BODY else b"",
    )
    signed = sigv4.sign_request_headers(
        unsigned,
        creds,
        region=region,
        service=service,
        now=now,
        payload_hash=None if mode is PayloadMode.HASH_BODY else sigv4.UNSIGNED_PAYLOAD,
        normalize_path=not s3,
        encode_path=not s3,
    )
    chunks = None
    if mode.resigns_chunks:
        chain = sigv4.CredentialScope(sigv4.format_amz_date(now)[:8], region, service)
        seed = dict(signed)["Authorization"].rsplit("Signature=", 1)[1]
        key = sigv4.derive_signing_key(creds.secret_key, chain)
        chunks = ChunkSigning(key, sigv4.format_amz_date(now), chain, seed)
    return SignedHead(list(signed), mode, chunks)


def resign(
    request: Request, creds: sigv4.Credentials, *, host: str, now: dt.datetime
) -> list[tuple[str, str]]:
    """The headers to send upstream: placeholder auth and hop-by-hop removed, signed anew."""
    return resign_head(request, creds, host=host, now=now).headers


def _resigner(signed: SignedHead, max_chunk_bytes: int) -> ChunkResigner:
    if signed.chunks is None:
        raise ValueError("this request has no chunk chain to re-sign")
    trailer = signed.mode is PayloadMode.SIGNED_CHUNKS_TRAILER
    return ChunkResigner(signed.chunks, trailer=trailer, max_chunk_bytes=max_chunk_bytes)


def resign_body(body: bytes, signed: SignedHead, max_chunk_bytes: int) -> bytes:
    """A whole aws-chunked body, its chunk chain re-signed (``ChunkFormatError`` if bad)."""
    resigner = _resigner(signed, max_chunk_bytes)
    out = resigner.feed(body)
    resigner.finish()
    return out


async def resigned_body(
    parts: AsyncIterator[bytes], signed: SignedHead, max_chunk_bytes: int
) -> AsyncGenerator[bytes, None]:
    """The same, while streaming: memory is bounded by one chunk."""
    resigner = _resigner(signed, max_chunk_bytes)
    async for part in parts:
        out = resigner.feed(part)
        if out:
            yield out
    resigner.finish()


def aws_error(code: str, message: str, request: Request, host: str) -> tuple[str, bytes]:
    """(content type, body) of an AWS error in the protocol the client speaks: JSON for JSON
    services (``X-Amz-Target``), S3's XML, the query protocol's ``ErrorResponse`` XML."""
    _region, service = scope_of(request, host)
    content_type = (request.header("Content-Type") or "").lower()
    json_service = request.header("X-Amz-Target") is not None or "json" in content_type
    if signs_like_s3(service):
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<Error>"
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        )
        return "application/xml", body.encode()
    if not json_service:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            "</Error></ErrorResponse>"
        )
        return "text/xml", body.encode()
    return "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message}).encode()


def refusal_response(refusal: Refusal, request: Request, host: str) -> Response:
    """The refusal in the error shape the client parses: XML for S3 and query APIs, else JSON."""
    content_type, body = aws_error(refusal.code, refusal.message, request, host)
    headers = [("x-latchkey-reason", "cannot-resign"), ("Content-Type", content_type)]
    return Response(refusal.status, headers, body, keep_alive=True)
