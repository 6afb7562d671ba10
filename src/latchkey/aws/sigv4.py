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

Verification is split so a caller can look up the secret between steps::

    info = parse_signed_request(req)          # strict shape checks, no secret needed
    check_request_time(info, now, max_skew=...)
    verify_signature(req, info, secret_key)
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
_QUERY_AUTH_PARAMS = frozenset({
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
    "X-Amz-Security-Token", "X-Amz-Signature",
})
_QUERY_REQUIRED = (
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders",
    "X-Amz-Date", "X-Amz-Expires",
)
# fmt: on

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_WHITESPACE_RUN = re.compile(r"\s+", re.ASCII)
_QUERY_SHA256 = "X-Amz-Content-Sha256"
_QUERY_AUTH_MARKERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
_REPLACED_ON_SIGN = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


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
    # lowercase name -> values, built once on first use (see ``_header_index``)
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


def _split_query(query: str) -> list[tuple[str, str]]:
    """Raw (key, value) pairs; empty segments are dropped, a missing '=' is an empty value."""
    return [(k, v) for k, _, v in (part.partition("=") for part in query.split("&") if part)]


def _decode_query(raw: str) -> str:
    return _unquote(raw).decode("utf-8", "replace")


def _canonical_query(query: str, exclude: str | None) -> str:
    if not query:
        return ""
    pairs = sorted(
        (_query_component(key), _query_component(value))
        for key, value in _split_query(query)
        if exclude is None or _decode_query(key) != exclude
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def _trimall(value: str) -> str:
    # isprintable() is False for every whitespace character but the space (tab, CR, LF, ...)
    if "  " not in value and value.isprintable():
        return value.strip()  # the common case, without the regex
    return _WHITESPACE_RUN.sub(" ", value).strip()


def _header_index(req: HttpRequest) -> dict[str, list[str]]:
    """Lowercase header name -> its values in order; computed once per request."""
    index = req._index
    if index is None:
        index = {}
        for name, value in req.headers:
            lname = name.lower()
            values = index.get(lname)
            if values is None:
                index[lname] = [value]
            else:
                values.append(value)
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
    index = _header_index(req)
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


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode("utf-8"), "sha256")


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
    return hmac.digest(signing_key, string_to_sign.encode("utf-8"), "sha256").hex()


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
        if part and _decode_query(part.partition("=")[0]) not in _QUERY_AUTH_PARAMS
    ]
    query = "&".join([*kept, *(f"{key}={_uri_encode(value)}" for key, value in params)])
    signed_req = replace(req, query=query)
    sig = _sign(signed_req, creds.secret_key, amz_date, scope, signed, payload_hash, normalize_path)
    return f"{query}&X-Amz-Signature={sig}"


# --- verification -------------------------------------------------------------------------


def _is_scope_part(value: str) -> bool:
    """A region or service: printable ASCII (0x21-0x7e), no spaces."""
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


def _well_formed_credential(value: str) -> tuple[str, CredentialScope] | None:
    """The Credential parameter's parts when its shape, region, service and terminator are
    right (the date is checked against X-Amz-Date by the caller); None otherwise."""
    if len(value) <= CACHED_KEY_CHARS:
        return _well_formed_credential_cached(value)
    return _well_formed_credential_uncached(value)


def _well_formed_credential_uncached(value: str) -> tuple[str, CredentialScope] | None:
    parts = value.split("/")
    if len(parts) != 5 or not parts[0]:
        return None
    access_key, date, region, service, terminator = parts
    if not (_is_scope_part(region) and _is_scope_part(service) and terminator == TERMINATOR):
        return None
    return access_key, CredentialScope(date, region, service)


# one entry per (access key, day, region, service) in use
_well_formed_credential_cached = functools.lru_cache(maxsize=1024)(_well_formed_credential_uncached)


def _parse_credential(value: str, amz_date: str) -> tuple[str, CredentialScope]:
    found = _well_formed_credential(value)
    if found is not None and found[1].date == amz_date[:8]:
        return found
    parts = value.split("/")
    if len(parts) != 5 or not parts[0]:
        raise IncompleteSignature(
            "Error parsing the Credential parameter; the Credential is mal-formed; "
            f'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/{TERMINATOR}".',
            reason="malformed-credential",
        )
    access_key, date, region, service, terminator = parts
    problems = []
    if date != amz_date[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if not _is_scope_part(region):
        problems.append("Credential should be scoped to a valid region.")
    if not _is_scope_part(service):
        problems.append("Credential should be scoped to correct service.")
    if terminator != TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'."
        )
    if problems:
        raise IncompleteSignature(" ".join(problems), reason="malformed-credential")
    return access_key, CredentialScope(date, region, service)


def _signed_header_names(value: str) -> tuple[str, ...] | None:
    if len(value) <= CACHED_KEY_CHARS:
        return _signed_header_names_cached(value)
    return _signed_header_names_uncached(value)


def _signed_header_names_uncached(value: str) -> tuple[str, ...] | None:
    names = tuple(value.split(";"))
    if any(not name or name != name.lower() or name != name.strip() for name in names):
        return None
    return names


# the same few SignedHeaders lists arrive again and again
_signed_header_names_cached = functools.lru_cache(maxsize=256)(_signed_header_names_uncached)


def _parse_signed_headers(value: str) -> tuple[str, ...]:
    names = _signed_header_names(value)
    if names is None:
        raise IncompleteSignature(
            f"SignedHeaders must be a ';'-separated list of lowercase header names: '{value}'.",
            reason="malformed-signed-headers",
        )
    return names


def _single(values: list[str], what: str) -> str | None:
    if len(values) > 1:
        raise IncompleteSignature(f"Only one {what} is allowed.", reason="duplicate-parameter")
    return values[0] if values else None


def _parse_header_form(req: HttpRequest, authorization: str) -> SignedRequestInfo:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(
            f"Unsupported AWS 'algorithm': '{algorithm}'. Use {ALGORITHM}.",
            reason="unsupported-algorithm",
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise IncompleteSignature(
                f"'{item}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{authorization}'.",
                reason="malformed-authorization",
            )
        if key.strip() in fields:
            raise IncompleteSignature(f"Duplicate '{key.strip()}' in Authorization header.")
        fields[key.strip()] = value.strip()
    index = _header_index(req)
    amz_date = _single(index.get("x-amz-date", []), "X-Amz-Date header")
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    if amz_date is None:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if missing or amz_date is None:
        raise IncompleteSignature(
            " ".join([*missing, f"Authorization={authorization}"]),
            reason="malformed-authorization",
        )
    parse_amz_date(amz_date)
    access_key, scope = _parse_credential(fields["Credential"], amz_date)
    token = _single(index.get("x-amz-security-token", []), "X-Amz-Security-Token")
    names = _parse_signed_headers(fields["SignedHeaders"])
    return SignedRequestInfo(
        "header", access_key, scope, amz_date, names, fields["Signature"], None, token
    )


def _parse_query_form(req: HttpRequest, query: list[tuple[str, str]]) -> SignedRequestInfo:
    params: dict[str, str] = {}
    for key, value in query:
        if key in _QUERY_AUTH_PARAMS:
            if key in params:
                raise IncompleteSignature(
                    f"Only one '{key}' query parameter is allowed.", reason="duplicate-parameter"
                )
            params[key] = value
    missing = [
        f"AWS query-string parameters must include '{name}'."
        for name in _QUERY_REQUIRED
        if not params.get(name)
    ]
    if missing:
        raise IncompleteSignature(
            " ".join([*missing, "Re-examine the query-string parameters."]),
            reason="malformed-query-auth",
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(
            f"X-Amz-Algorithm only supports '{ALGORITHM}'", reason="unsupported-algorithm"
        )
    amz_date = params["X-Amz-Date"]
    parse_amz_date(amz_date)
    if not re.fullmatch(r"[0-9]{1,7}", params["X-Amz-Expires"]):
        raise IncompleteSignature("X-Amz-Expires should be a number", reason="bad-expires")
    expires = int(params["X-Amz-Expires"])
    if expires > MAX_EXPIRES:
        raise IncompleteSignature(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}",
            reason="bad-expires",
        )
    access_key, scope = _parse_credential(params["X-Amz-Credential"], amz_date)
    token = params.get("X-Amz-Security-Token")
    header_token = _single(_header_index(req).get("x-amz-security-token", []), "security token")
    if token is not None and header_token is not None and token != header_token:
        raise IncompleteSignature(
            "The X-Amz-Security-Token header and query parameter differ.", reason="token-conflict"
        )
    token = token if token is not None else header_token
    names = _parse_signed_headers(params["X-Amz-SignedHeaders"])
    sig = params["X-Amz-Signature"]
    return SignedRequestInfo("query", access_key, scope, amz_date, names, sig, expires, token)


def parse_signed_request(req: HttpRequest) -> SignedRequestInfo:
    """Read the signature parameters and enforce which headers must be signed.

    'host' and every x-amz-* header present must be signed (so an X-Amz-Security-Token header
    added after signing is refused). The header form needs X-Amz-Date; a bare Date header is
    not accepted. Any of X-Amz-Algorithm/-Credential/-Signature in the query selects the
    query form.
    """
    index = _header_index(req)
    authorization = index.get("authorization", [])
    query = [(_decode_query(k), _decode_query(v)) for k, v in _split_query(req.query)]
    query_auth = any(key in _QUERY_AUTH_MARKERS for key, _ in query)
    if authorization and query_auth:
        raise AmbiguousAuthentication(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified"
        )
    if len(authorization) > 1:
        raise IncompleteSignature(
            "Only one Authorization header is allowed.", reason="duplicate-parameter"
        )
    if authorization:
        info = _parse_header_form(req, authorization[0])
    elif query_auth:
        info = _parse_query_form(req, query)
    else:
        raise MissingAuthentication("Missing Authentication Token")
    signed = set(info.signed_headers)
    if "host" not in signed:
        raise UnsignedHeader(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            reason="host-not-signed",
        )
    unsigned = sorted(name for name in index if name.startswith("x-amz-") and name not in signed)
    if unsigned:
        raise UnsignedHeader(
            "There were headers present in the request which were not signed: "
            + ", ".join(unsigned)
        )
    return info


def verify_signature(
    req: HttpRequest,
    info: SignedRequestInfo,
    secret_key: str,
    *,
    normalize_path: bool = True,
    encode_path: bool = True,
) -> None:
    """Raise ``SignatureMismatch`` unless ``info.signature`` signs ``req`` under ``secret_key``.

    A declared payload hash (x-amz-content-sha256 header, or X-Amz-Content-Sha256 in a
    presigned query) is used as signed and, unless it is UNSIGNED-PAYLOAD, must match the
    body. A presigned request without one may have signed either UNSIGNED-PAYLOAD (S3 style)
    or the body's sha256 (botocore and the test suite for other services); both are tried.
    """
    declared = _header_index(req).get("x-amz-content-sha256", [])
    if info.form == "query":
        in_query = [v for k, v in _split_query(req.query) if _decode_query(k) == _QUERY_SHA256]
        declared = [_decode_query(v) for v in in_query] or declared
    actual = hashlib.sha256(req.body).hexdigest()
    if declared:
        candidates = [",".join(declared)]
    elif info.form == "query":
        candidates = [UNSIGNED_PAYLOAD, actual]
    else:
        candidates = [actual]
    exclude = "X-Amz-Signature" if info.form == "query" else None
    key = derive_signing_key(secret_key, info.scope)
    provided = info.signature.encode("utf-8", "surrogateescape")
    for candidate in candidates:
        creq = canonical_request(
            req,
            info.signed_headers,
            candidate,
            normalize_path=normalize_path,
            exclude_query_param=exclude,
            encode_path=encode_path,
        )
        expected = signature(key, string_to_sign(info.amz_date, info.scope, creq))
        if hmac.compare_digest(expected.encode(), provided):
            break
    else:
        raise SignatureMismatch(_MISMATCH_MESSAGE)
    if candidate in (UNSIGNED_PAYLOAD, actual):
        return
    if not (len(candidate) == 64 and _is_hex(candidate)):
        raise SignatureMismatch(
            f"Unsupported x-amz-content-sha256 value: '{candidate}'.",
            reason="unsupported-payload-hash",
        )
    if candidate.lower() != actual:
        raise SignatureMismatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            reason="content-sha256-mismatch",
        )


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _is_hex(value: str) -> bool:
    return _HEX_DIGITS.issuperset(value)


def _describe_skew(skew: datetime.timedelta) -> str:
    seconds = int(skew.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} sec"


def check_request_time(
    info: SignedRequestInfo, now: datetime.datetime, *, max_skew: datetime.timedelta
) -> None:
    """Header form: the signing time is within ``max_skew`` of ``now``. Query form: the
    signing time is not later than ``now + max_skew`` and ``now`` is within X-Amz-Expires."""
    if now.tzinfo is None:
        raise ValueError("check_request_time needs a timezone-aware datetime")
    signed_at = parse_amz_date(info.amz_date)
    if signed_at > now + max_skew:
        skew = _describe_skew(max_skew)
        raise SignatureExpired(
            f"Signature not yet current: {info.amz_date} is still later than "
            f"{format_amz_date(now + max_skew)} ({format_amz_date(now)} + {skew}.)",
            reason="not-yet-current",
        )
    if info.form == "query" and info.expires is not None:
        if now > signed_at + datetime.timedelta(seconds=info.expires):
            raise SignatureExpired("Request has expired")
    elif signed_at < now - max_skew:
        skew = _describe_skew(max_skew)
        raise SignatureExpired(
            f"Signature expired: {info.amz_date} is now earlier than "
            f"{format_amz_date(now - max_skew)} ({format_amz_date(now)} - {skew}.)"
        )
