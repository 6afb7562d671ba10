"""AWS Signature Version 4, sans-IO: sign and verify requests, header and presigned-query forms.

Pure functions over an ``HttpRequest`` value; nothing here does I/O or reads the clock (the
current time is always a parameter). The steps carry the names the spec gives them::

    canonical_request -> string_to_sign -> derive_signing_key -> signature

Canonicalization follows the non-S3 rules by default (what botocore's ``SigV4Auth`` and the
AWS test suite do): the raw wire path is normalized (optional) and URI-encoded once more, query
pairs are decoded and re-encoded, header values are trimmed with inner whitespace runs
collapsed. S3 (``S3SigV4Auth``) signs the wire path as it is: ``normalize_path=False,
encode_path=False``.

Streaming uploads (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``) chain one signature per
chunk from the seed (header) signature: ``sign_chunk`` and ``sign_trailer``.

Verifying a signed request is ``sigv4verify``'s, on the same steps.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from latchkey.http.headers import index_headers

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TERMINATOR = "aws4_request"
MAX_EXPIRES = 604800  # a week: the longest X-Amz-Expires AWS accepts

# fmt: off
# Hop-by-hop and proxy-mangled headers that are never signed by default.
DEFAULT_UNSIGNED: frozenset[str] = frozenset({
    "user-agent", "expect", "x-amzn-trace-id", "connection", "keep-alive", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
})
# Query parameters of the presigned form; X-Amz-Signature is the one left out of the signature.
QUERY_AUTH_PARAMS = frozenset({
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
    "X-Amz-Security-Token", "X-Amz-Signature",
})
# fmt: on

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_WHITESPACE_RUN = re.compile(r"\s+", re.ASCII)
_REPLACED_ON_SIGN = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


class SigV4Error(Exception):
    """Base of every verification failure; ``str(exc)`` is an AWS-style message."""

    reason: str = "sigv4-error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class MissingAuthentication(SigV4Error):
    reason = "missing-authentication"


class IncompleteSignature(SigV4Error):
    reason = "incomplete-signature"


class AmbiguousAuthentication(SigV4Error):
    reason = "ambiguous-authentication"


class UnsignedHeader(SigV4Error):
    reason = "unsigned-header"


class SignatureMismatch(SigV4Error):
    reason = "signature-mismatch"


class SignatureExpired(SigV4Error):
    reason = "expired"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as received. ``path`` and ``query`` (no '?') are the raw wire text, decoded
    as UTF-8 (with ``surrogateescape`` for bytes that are not)."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    # lowercase name -> values, built once on first use (see ``header_index``)
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CredentialScope:
    date: str
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True, slots=True)
class SignedRequestInfo:
    """What a verifier reads from a signed request before it knows the secret."""

    form: Literal["header", "query"]
    access_key: str
    scope: CredentialScope
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    expires: int | None
    session_token: str | None


# --- the spec's steps ---------------------------------------------------------------------


def _uri_encode(raw: str | bytes, safe: str = "") -> str:
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    return quote(data, safe=safe)  # keeps A-Za-z0-9-._~ and ``safe``; uppercase %XX


def _unquote(raw: str) -> bytes:
    """Decode one query key or value as a server would: %XX escapes, and '+' is a space."""
    return unquote_to_bytes(raw.replace("+", " ").encode("utf-8", "surrogateescape"))


def _query_component(raw: str) -> str:
    return _uri_encode(_unquote(raw))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal that also drops empty segments (botocore's rule)."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and out else ""
    return lead + "/".join(out) + trail


# The caches below are keyed by what clients send: only short keys are cached, so that their
# memory stays small whatever arrives (entries x CACHED_KEY_CHARS).
CACHED_KEY_CHARS = 512


def _canonical_uri(path: str, normalize: bool, encode: bool = True) -> str:
    if len(path) <= CACHED_KEY_CHARS:
        return _canonical_uri_cached(path, normalize, encode)
    return _canonical_uri_uncached(path, normalize, encode)


def _canonical_uri_uncached(path: str, normalize: bool, encode: bool) -> str:
    if not path:
        return "/"
    path = _remove_dot_segments(path) if normalize else path
    return _uri_encode(path, safe="/") if encode else path


_canonical_uri_cached = functools.lru_cache(maxsize=1024)(_canonical_uri_uncached)


def split_query(query: str) -> list[tuple[str, str]]:
    """Raw (key, value) pairs; empty segments are dropped, a missing '=' is an empty value."""
    return [(k, v) for k, _, v in (part.partition("=") for part in query.split("&") if part)]


def decode_query(raw: str) -> str:
    return _unquote(raw).decode("utf-8", "replace")


def _canonical_query(query: str, exclude: str | None) -> str:
    if not query:
        return ""
    pairs = sorted(
        (_query_component(key), _query_component(value))
        for key, value in split_query(query)
        if exclude is None or decode_query(key) != exclude
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def _trimall(value: str) -> str:
    # isprintable() is False for every whitespace character but the space (tab, CR, LF, ...)
    if "  " not in value and value.isprintable():
        return value.strip()  # the common case, without the regex
    return _WHITESPACE_RUN.sub(" ", value).strip()


def header_index(req: HttpRequest) -> dict[str, list[str]]:
    """Lowercase header name -> its values in order; computed once per request."""
    index = req._index
    if index is None:
        index = index_headers(req.headers)
        object.__setattr__(req, "_index", index)
    return index


def _sorted_names(signed_headers: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    if len(signed_headers) <= 64 and sum(map(len, signed_headers)) <= CACHED_KEY_CHARS:
        return _sorted_names_cached(signed_headers)
    return _sorted_names_uncached(signed_headers)


def _sorted_names_uncached(signed_headers: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    names = tuple(sorted({name.lower() for name in signed_headers}))
    return names, ";".join(names)


_sorted_names_cached = functools.lru_cache(maxsize=512)(_sorted_names_uncached)


def _joined(values: list[str] | None) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return _trimall(values[0])
    return ",".join([_trimall(value) for value in values])


def canonical_request(
    req: HttpRequest,
    signed_headers: Sequence[str],
    payload_hash: str,
    *,
    normalize_path: bool = True,
    exclude_query_param: str | None = None,
    encode_path: bool = True,
) -> str:
    key = signed_headers if isinstance(signed_headers, tuple) else tuple(signed_headers)
    names, joined = _sorted_names(key)
    index = header_index(req)
    header_block = "".join([f"{name}:{_joined(index.get(name))}\n" for name in names])
    return "\n".join(
        [
            req.method.upper(),
            _canonical_uri(req.path, normalize_path, encode_path),
            _canonical_query(req.query, exclude_query_param),
            header_block,
            joined,
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: CredentialScope, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest()
    return "\n".join([ALGORITHM, amz_date, str(scope), digest])


# ``hmac.digest`` (one shot) releases the GIL for every call, however short the message: on a
# loop that shares the GIL with a writer thread, each signature could then wait out a switch
# interval. An HMAC object's update and digest keep the GIL for short messages, and copying
# one keyed per signing key saves the key schedule too (1.7 vs 2.7 µs, measured).
def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), "sha256").digest()


@functools.lru_cache(maxsize=1024)  # one per signing key, as _signing_key below
def _keyed(signing_key: bytes) -> hmac.HMAC:
    return hmac.new(signing_key, digestmod="sha256")


@functools.lru_cache(maxsize=1024)  # one per (secret, day, region, service): 4 HMACs saved
def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def derive_signing_key(secret_key: str, scope: CredentialScope) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    return _signing_key(secret_key, scope.date, scope.region, scope.service)


def signature(signing_key: bytes, string_to_sign: str) -> str:
    mac = _keyed(signing_key).copy()
    mac.update(string_to_sign.encode("utf-8"))
    return mac.hexdigest()


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def chunk_string_to_sign(
    amz_date: str, scope: CredentialScope, previous_signature: str, chunk_hash: str
) -> str:
    """The string to sign of one aws-chunked chunk: chained from the previous signature."""
    return "\n".join(
        [CHUNK_ALGORITHM, amz_date, str(scope), previous_signature, EMPTY_SHA256, chunk_hash]
    )


def sign_chunk(
    signing_key: bytes,
    amz_date: str,
    scope: CredentialScope,
    previous_signature: str,
    data: bytes,
) -> str:
    """The ``chunk-signature`` of ``data`` (the seed signature is the first ``previous``)."""
    sts = chunk_string_to_sign(amz_date, scope, previous_signature, payload_hash(data))
    return signature(signing_key, sts)


def sign_trailer(
    signing_key: bytes,
    amz_date: str,
    scope: CredentialScope,
    previous_signature: str,
    canonical_trailer: bytes,
) -> str:
    """The ``x-amz-trailer-signature`` over the trailer fields, each ``name:value\\n``."""
    sts = "\n".join(
        [TRAILER_ALGORITHM, amz_date, str(scope), previous_signature,
         payload_hash(canonical_trailer)]
    )  # fmt: skip
    return signature(signing_key, sts)


# --- time ---------------------------------------------------------------------------------


def _is_amz_date(value: str) -> bool:
    """``YYYYMMDDTHHMMSSZ``, ASCII digits only."""
    return (
        len(value) == 16
        and value.isascii()
        and value[8] == "T"
        and value[15] == "Z"
        and value[:8].isdigit()
        and value[9:15].isdigit()
    )


@functools.lru_cache(maxsize=256)  # the same X-Amz-Date arrives many times within a second
def _parse_amz_date(value: str) -> datetime.datetime:
    if not _is_amz_date(value):
        raise ValueError(value)
    return datetime.datetime(  # YYYYMMDDTHHMMSSZ, by position (strptime is slow)
        int(value[0:4]), int(value[4:6]), int(value[6:8]),
        int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=datetime.UTC,
    )  # fmt: skip


def parse_amz_date(value: str) -> datetime.datetime:
    try:
        return _parse_amz_date(value)
    except ValueError:
        raise IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
            reason="bad-date",
        ) from None


_last_amz_date: tuple[int, str] = (0, "")  # (Unix second, its text): formatted once a second


def format_amz_date(moment: datetime.datetime) -> str:
    global _last_amz_date
    if moment.tzinfo is None:
        raise ValueError("format_amz_date needs a timezone-aware datetime")
    second = math.floor(moment.timestamp())
    cached_second, text = _last_amz_date
    if second == cached_second and text:
        return text
    text = moment.astimezone(datetime.UTC).strftime(_AMZ_DATE_FORMAT)
    _last_amz_date = (second, text)
    return text


# --- signing ------------------------------------------------------------------------------


def _header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _signing_parts(
    req: HttpRequest, now: datetime.datetime, region: str, service: str
) -> tuple[str, CredentialScope]:
    if not _header_values(req.headers, "host"):
        raise ValueError("the request needs a Host header before it can be signed")
    amz_date = format_amz_date(now)
    return amz_date, CredentialScope(amz_date[:8], region, service)


def _sign(
    req: HttpRequest,
    secret_key: str,
    amz_date: str,
    scope: CredentialScope,
    signed: Sequence[str],
    body_hash: str,
    normalize_path: bool,
    encode_path: bool = True,
) -> str:
    declared = _header_values(req.headers, "x-amz-content-sha256")
    body_hash = ",".join(declared) if declared else body_hash
    creq = canonical_request(
        req, signed, body_hash, normalize_path=normalize_path, encode_path=encode_path
    )
    return signature(derive_signing_key(secret_key, scope), string_to_sign(amz_date, scope, creq))


def _names_to_sign(headers: Iterable[tuple[str, str]], unsigned: Collection[str]) -> list[str]:
    skip = {name.lower() for name in unsigned} | {"authorization"}
    return sorted({name.lower() for name, _ in headers} - skip)


@dataclass(frozen=True, slots=True)
class _SignPlan:
    """What signing a request depends on only through its header names, worked out once per
    header-name sequence: which headers are kept, which are signed, where their values are."""

    keep: tuple[int, ...]  # positions in the request's headers that are kept
    lines: tuple[tuple[str, tuple[int, ...]], ...]  # ("name:", value positions), sorted
    signed: str  # SignedHeaders
    declared: tuple[int, ...]  # positions of x-amz-content-sha256
    has_host: bool


_PlanKey = tuple[tuple[str, ...], bool, frozenset[str]]
_PLANS: dict[_PlanKey, _SignPlan] = {}
_MAX_PLANS = 512


def _sign_plan(key: _PlanKey) -> _SignPlan:
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    names, with_token, unsigned = key
    lowered = [name.lower() for name in names]
    keep = tuple(i for i, name in enumerate(lowered) if name not in _REPLACED_ON_SIGN)
    final = [lowered[i] for i in keep] + ["x-amz-date"]
    if with_token:
        final.append("x-amz-security-token")
    skip = {name.lower() for name in unsigned} | {"authorization"}
    signed = sorted(set(final) - skip)
    lines = tuple(
        (f"{name}:", tuple(j for j, other in enumerate(final) if other == name)) for name in signed
    )
    declared = tuple(j for j, name in enumerate(final) if name == "x-amz-content-sha256")
    plan = _SignPlan(keep, lines, ";".join(signed), declared, "host" in lowered)
    if len(names) <= 64 and sum(map(len, names)) <= 4 * CACHED_KEY_CHARS:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def sign_request_headers(
    req: HttpRequest,
    creds: Credentials,
    *,
    region: str,
    service: str,
    now: datetime.datetime,
    payload_hash: str | None = None,
    normalize_path: bool = True,
    unsigned_headers: Collection[str] = DEFAULT_UNSIGNED,
    encode_path: bool = True,
) -> tuple[tuple[str, str], ...]:
    """Return the request's headers with X-Amz-Date, X-Amz-Security-Token, Authorization set.

    Every header not in ``unsigned_headers`` is signed. The payload hash signed is, in order:
    an x-amz-content-sha256 header already on the request, ``payload_hash``, sha256(body).
    S3 signs with ``normalize_path=False, encode_path=False``.
    """
    unsigned = (
        unsigned_headers if isinstance(unsigned_headers, frozenset) else frozenset(unsigned_headers)
    )
    source = req.headers
    token = creds.session_token
    plan = _sign_plan((tuple([name for name, _ in source]), token is not None, unsigned))
    if not plan.has_host:
        raise ValueError("the request needs a Host header before it can be signed")
    amz_date = format_amz_date(now)
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/{TERMINATOR}"  # str(CredentialScope(...))
    headers = [source[i] for i in plan.keep]
    headers.append(("X-Amz-Date", amz_date))
    if token is not None:
        headers.append(("X-Amz-Security-Token", token))
    if plan.declared:
        body_hash = ",".join([headers[j][1] for j in plan.declared])
    elif payload_hash is None:
        body_hash = hashlib.sha256(req.body).hexdigest()
    else:
        body_hash = payload_hash
    lines = []
    for prefix, at in plan.lines:
        if len(at) == 1:
            lines.append(f"{prefix}{_trimall(headers[at[0]][1])}\n")
        else:
            lines.append(f"{prefix}{_joined([headers[j][1] for j in at])}\n")
    block = "".join(lines)
    creq = "\n".join(
        [
            req.method.upper(),
            _canonical_uri(req.path, normalize_path, encode_path),
            _canonical_query(req.query, None),
            block,
            plan.signed,
            body_hash,
        ]
    )
    digest = hashlib.sha256(creq.encode("utf-8", "surrogateescape")).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"  # string_to_sign(...)
    sig = signature(_signing_key(creds.secret_key, date, region, service), to_sign)
    authorization = (
        f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={plan.signed}, Signature={sig}"
    )
    headers.append(("Authorization", authorization))
    return tuple(headers)


def presign_query(
    req: HttpRequest,
    creds: Credentials,
    *,
    region: str,
    service: str,
    now: datetime.datetime,
    expires: int,
    payload_hash: str = UNSIGNED_PAYLOAD,
    normalize_path: bool = True,
    unsigned_headers: Collection[str] = DEFAULT_UNSIGNED,
) -> str:
    """Return ``req.query`` with the X-Amz-* parameters appended, X-Amz-Signature last.

    Existing X-Amz-* auth parameters are dropped first; the rest of the query is kept verbatim.
    An x-amz-content-sha256 header on the request wins over ``payload_hash``.
    """
    if not 0 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be between 0 and {MAX_EXPIRES} seconds")
    amz_date, scope = _signing_parts(req, now, region, service)
    signed = _names_to_sign(req.headers, unsigned_headers)
    params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{creds.access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-SignedHeaders", ";".join(signed)),
        ("X-Amz-Expires", str(expires)),
    ]
    if creds.session_token is not None:
        params.append(("X-Amz-Security-Token", creds.session_token))
    kept = [
        part
        for part in req.query.split("&")
        if part and decode_query(part.partition("=")[0]) not in QUERY_AUTH_PARAMS
    ]
    query = "&".join([*kept, *(f"{key}={_uri_encode(value)}" for key, value in params)])
    signed_req = replace(req, query=query)
    sig = _sign(signed_req, creds.secret_key, amz_date, scope, signed, payload_hash, normalize_path)
    return f"{query}&X-Amz-Signature={sig}"
