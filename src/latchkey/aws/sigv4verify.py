"""AWS Signature Version 4 verification, sans-IO: a signed request (header or presigned-query
form) checked strictly for its shape, its time and its signature, on ``sigv4``'s steps.

Split so a caller can look up the secret between steps::

    info = parse_signed_request(req)          # strict shape checks, no secret needed
    check_request_time(info, now, max_skew=...)
    verify_signature(req, info, secret_key)
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re

from latchkey.aws.sigv4 import (
    ALGORITHM,
    CACHED_KEY_CHARS,
    MAX_EXPIRES,
    QUERY_AUTH_PARAMS,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    AmbiguousAuthentication,
    CredentialScope,
    HttpRequest,
    IncompleteSignature,
    MissingAuthentication,
    SignatureExpired,
    SignatureMismatch,
    SignedRequestInfo,
    UnsignedHeader,
    canonical_request,
    decode_query,
    derive_signing_key,
    format_amz_date,
    header_index,
    parse_amz_date,
    signature,
    split_query,
    string_to_sign,
)

_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_QUERY_AUTH_MARKERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
_QUERY_REQUIRED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
    "X-Amz-Date",
    "X-Amz-Expires",
)
_QUERY_SHA256 = "X-Amz-Content-Sha256"


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
    index = header_index(req)
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
        if key in QUERY_AUTH_PARAMS:
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
    header_token = _single(header_index(req).get("x-amz-security-token", []), "security token")
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
    index = header_index(req)
    authorization = index.get("authorization", [])
    query = [(decode_query(k), decode_query(v)) for k, v in split_query(req.query)]
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
    declared = header_index(req).get("x-amz-content-sha256", [])
    if info.form == "query":
        in_query = [v for k, v in split_query(req.query) if decode_query(k) == _QUERY_SHA256]
        declared = [decode_query(v) for v in in_query] or declared
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
