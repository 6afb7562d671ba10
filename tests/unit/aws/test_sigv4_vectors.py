"""The AWS SigV4 test suite (aws-c-auth v4 vectors): sign both forms, then verify and tamper.

Each vector folder has context.json, request.txt and, per form (header-*/query-*), the expected
canonical request, string to sign, signature and signed request. Notes on the context flags:

* ``normalize`` selects path normalization (remove dot segments, collapse slashes).
* ``sign_body`` adds an ``x-amz-content-sha256`` header to the header form. The query form
  always signs the body's sha256 in this suite (never UNSIGNED-PAYLOAD).
* ``omit_session_token`` (post-sts-header-after): the token is added *after* signing, so it
  is present in the signed request but not covered by the signature. Our verifier rejects
  that by design (an x-amz-* header must be signed; an unsigned query token breaks the
  signature), so those vectors check that rejection and verify the request without the token.
* ``expiration_in_seconds`` is X-Amz-Expires in the query form.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from latchkey.aws import sigv4, sigv4verify


def _suite_dir() -> Path:
    override = os.environ.get("LATCHKEY_SIGV4_SUITE")
    if override:
        return Path(override)
    return (
        Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "aws-sigv4-test-suite"
    )


SUITE = _suite_dir()
# A missing suite must fail every vector test (not skip them), hence the placeholder name.
VECTORS = sorted(p.name for p in SUITE.iterdir() if p.is_dir()) if SUITE.is_dir() else ["missing"]
OMIT_TOKEN_VECTORS = [
    name
    for name in VECTORS
    if SUITE.is_dir()
    and json.loads((SUITE / name / "context.json").read_text()).get("omit_session_token")
] or ["missing"]


def test_suite_is_present() -> None:
    # Never skip silently: a missing suite is a broken checkout, not an optional extra.
    assert SUITE.is_dir(), f"SigV4 test suite not found at {SUITE} (set LATCHKEY_SIGV4_SUITE)"
    assert len(VECTORS) >= 30
    assert OMIT_TOKEN_VECTORS == ["post-sts-header-after"]


# --- a small raw-HTTP parser for the suite's .txt files -----------------------------------


def parse_raw_request(raw: bytes) -> sigv4.HttpRequest:
    """Request line, header lines (continuation lines are obs-fold), blank line, body.

    The request target is taken verbatim, so it may hold spaces or raw UTF-8 as the suite's
    files do; the HTTP version is the last word of the request line.
    """
    head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    method, rest = lines[0].split(" ", 1)
    target, _version = rest.rsplit(" ", 1)
    path, _, query = target.partition("?")
    headers: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            headers[-1][1] += "\n" + line  # obs-fold: keep it raw, canonicalization folds it
            continue
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r}"
        headers.append([name, value])
    return sigv4.HttpRequest(
        method=method,
        path=path,
        query=query,
        headers=tuple((n, v) for n, v in headers),
        body=body if sep else b"",
    )


class Vector:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = SUITE / name
        ctx: dict[str, Any] = json.loads(self.read("context.json"))
        self.ctx = ctx
        self.region: str = ctx["region"]
        self.service: str = ctx["service"]
        self.normalize: bool = ctx["normalize"]
        self.sign_body: bool = ctx["sign_body"]
        self.omit_token: bool = ctx.get("omit_session_token", False)
        self.expires: int = ctx["expiration_in_seconds"]
        self.now = dt.datetime.fromisoformat(ctx["timestamp"].replace("Z", "+00:00"))
        cred = ctx["credentials"]
        self.creds = sigv4.Credentials(
            cred["access_key_id"], cred["secret_access_key"], cred.get("token")
        )
        self.request = parse_raw_request(self.dir.joinpath("request.txt").read_bytes())

    def read(self, name: str) -> str:
        return self.dir.joinpath(name).read_text(encoding="utf-8")

    def signed(self, form: str) -> sigv4.HttpRequest:
        return parse_raw_request(self.dir.joinpath(f"{form}-signed-request.txt").read_bytes())

    @property
    def signing_creds(self) -> sigv4.Credentials:
        """The credentials whose token the signature covers."""
        if self.omit_token:
            return dataclasses.replace(self.creds, session_token=None)
        return self.creds


@pytest.fixture(params=VECTORS)
def vector(request: pytest.FixtureRequest) -> Vector:
    return Vector(request.param)


def _without_header(req: sigv4.HttpRequest, name: str) -> sigv4.HttpRequest:
    kept = tuple((k, v) for k, v in req.headers if k.lower() != name)
    return dataclasses.replace(req, headers=kept)


def _without_query_param(req: sigv4.HttpRequest, name: str) -> sigv4.HttpRequest:
    kept = [p for p in req.query.split("&") if p.partition("=")[0] != name]
    return dataclasses.replace(req, query="&".join(kept))


def _authorization_fields(req: sigv4.HttpRequest) -> dict[str, str]:
    (value,) = [v for k, v in req.headers if k.lower() == "authorization"]
    _, _, rest = value.partition(" ")
    return dict(item.strip().split("=", 1) for item in rest.split(","))


def _query_params(query: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in query.split("&") if p)


def _header_multiset(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return sorted((k.lower(), " ".join(v.split())) for k, v in headers)


# --- header form ---------------------------------------------------------------------------


def _header_body_hash(v: Vector) -> str:
    return sigv4.payload_hash(v.request.body)


def test_header_canonical_request_and_signature(vector: Vector) -> None:
    v = vector
    signed = v.signed("header")
    fields = _authorization_fields(signed)
    names = fields["SignedHeaders"].split(";")
    unsigned = _without_header(signed, "authorization")
    creq = sigv4.canonical_request(
        unsigned, names, _header_body_hash(v), normalize_path=v.normalize
    )
    assert creq == v.read("header-canonical-request.txt")
    scope = sigv4.CredentialScope(sigv4.format_amz_date(v.now)[:8], v.region, v.service)
    sts = sigv4.string_to_sign(sigv4.format_amz_date(v.now), scope, creq)
    assert sts == v.read("header-string-to-sign.txt")
    key = sigv4.derive_signing_key(v.creds.secret_key, scope)
    assert sigv4.signature(key, sts) == v.read("header-signature.txt").strip()
    assert fields["Signature"] == v.read("header-signature.txt").strip()


def test_sign_request_headers_reproduces_signed_request(vector: Vector) -> None:
    v = vector
    req = v.request
    if v.sign_body:
        extra = (("x-amz-content-sha256", sigv4.payload_hash(req.body)),)
        req = dataclasses.replace(req, headers=req.headers + extra)
    unsigned_headers = set(sigv4.DEFAULT_UNSIGNED)
    if v.omit_token:
        unsigned_headers.add("x-amz-security-token")  # the token is sent but not signed
    before = req.headers
    headers = sigv4.sign_request_headers(
        req,
        v.creds,
        region=v.region,
        service=v.service,
        now=v.now,
        normalize_path=v.normalize,
        unsigned_headers=unsigned_headers,
    )
    assert req.headers == before  # input untouched
    expected = v.signed("header").headers
    assert _header_multiset(headers) == _header_multiset(expected)
    assert headers[-1][0] == "Authorization"


# --- query form ----------------------------------------------------------------------------


def test_query_canonical_request_and_signature(vector: Vector) -> None:
    v = vector
    signed = v.signed("query")
    if v.omit_token:
        signed = _without_query_param(signed, "X-Amz-Security-Token")
    params = _query_params(signed.query)
    names = params["X-Amz-SignedHeaders"].replace("%3B", ";").split(";")
    creq = sigv4.canonical_request(
        signed,
        names,
        sigv4.payload_hash(signed.body),
        normalize_path=v.normalize,
        exclude_query_param="X-Amz-Signature",
    )
    assert creq == v.read("query-canonical-request.txt")
    amz_date = sigv4.format_amz_date(v.now)
    scope = sigv4.CredentialScope(amz_date[:8], v.region, v.service)
    sts = sigv4.string_to_sign(amz_date, scope, creq)
    assert sts == v.read("query-string-to-sign.txt")
    sig = sigv4.signature(sigv4.derive_signing_key(v.creds.secret_key, scope), sts)
    assert sig == v.read("query-signature.txt").strip() == params["X-Amz-Signature"]


def test_presign_query_reproduces_signed_request(vector: Vector) -> None:
    v = vector
    query = sigv4.presign_query(
        v.request,
        v.signing_creds,
        region=v.region,
        service=v.service,
        now=v.now,
        expires=v.expires,
        payload_hash=sigv4.payload_hash(v.request.body),
        normalize_path=v.normalize,
    )
    expected = v.signed("query").query
    if v.omit_token:
        token = quote(v.creds.session_token or "", safe="")
        query = query.replace(
            "&X-Amz-Signature=", f"&X-Amz-Security-Token={token}&X-Amz-Signature="
        )
    assert query == expected


# --- verification of the signed requests -----------------------------------------------------


def _verifiable(v: Vector, form: str) -> sigv4.HttpRequest:
    """The signed request, minus the token the signature does not cover (omit vectors)."""
    req = v.signed(form)
    if v.omit_token:
        if form == "header":
            return _without_header(req, "x-amz-security-token")
        return _without_query_param(req, "X-Amz-Security-Token")
    return req


@pytest.mark.parametrize("form", ["header", "query"])
def test_verify_signed_request(vector: Vector, form: str) -> None:
    v = vector
    req = _verifiable(v, form)
    info = sigv4verify.parse_signed_request(req)
    assert info.form == form
    assert info.access_key == v.creds.access_key
    assert info.scope == sigv4.CredentialScope("20150830", v.region, v.service)
    assert info.amz_date == "20150830T123600Z"
    assert info.signature == v.read(f"{form}-signature.txt").strip()
    assert info.expires == (v.expires if form == "query" else None)
    assert info.session_token == (None if v.omit_token else v.creds.session_token)
    sigv4verify.check_request_time(info, v.now, max_skew=dt.timedelta(minutes=5))
    sigv4verify.verify_signature(req, info, v.creds.secret_key, normalize_path=v.normalize)


@pytest.mark.parametrize("name", OMIT_TOKEN_VECTORS)
@pytest.mark.parametrize("form", ["header", "query"])
def test_unsigned_session_token_is_rejected(name: str, form: str) -> None:
    v = Vector(name)
    req = v.signed(form)
    if form == "header":
        with pytest.raises(sigv4.UnsignedHeader, match="x-amz-security-token"):
            sigv4verify.parse_signed_request(req)
    else:
        info = sigv4verify.parse_signed_request(req)
        with pytest.raises(sigv4.SignatureMismatch):
            sigv4verify.verify_signature(req, info, v.creds.secret_key, normalize_path=v.normalize)


def _flip(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


def _tamper(req: sigv4.HttpRequest, what: str) -> sigv4.HttpRequest:
    if what == "body":
        return dataclasses.replace(req, body=req.body + b"!")
    if what == "host-header":
        swapped = tuple(
            (k, "evil.example.com" if k.lower() == "host" else val) for k, val in req.headers
        )
        return dataclasses.replace(req, headers=swapped)
    if what == "path":
        return dataclasses.replace(req, path=req.path + "x")
    if what == "query":
        return dataclasses.replace(req, query=req.query + "&extra=1")
    assert what == "method"
    return dataclasses.replace(req, method="PUT" if req.method != "PUT" else "GET")


@pytest.mark.parametrize("form", ["header", "query"])
def test_wrong_signature_or_secret_is_rejected(vector: Vector, form: str) -> None:
    v = vector
    req = _verifiable(v, form)
    info = sigv4verify.parse_signed_request(req)
    bad_sig = dataclasses.replace(info, signature=_flip(info.signature))
    with pytest.raises(sigv4.SignatureMismatch):
        sigv4verify.verify_signature(req, bad_sig, v.creds.secret_key, normalize_path=v.normalize)
    with pytest.raises(sigv4.SignatureMismatch):
        sigv4verify.verify_signature(
            req, info, v.creds.secret_key + "x", normalize_path=v.normalize
        )


@pytest.mark.parametrize("what", ["body", "host-header", "path", "query", "method"])
@pytest.mark.parametrize("form", ["header", "query"])
def test_tampered_request_is_rejected(vector: Vector, form: str, what: str) -> None:
    v = vector
    bad = _tamper(_verifiable(v, form), what)
    info = sigv4verify.parse_signed_request(bad)
    with pytest.raises(sigv4.SignatureMismatch):
        sigv4verify.verify_signature(bad, info, v.creds.secret_key, normalize_path=v.normalize)


def test_signed_header_value_tamper(vector: Vector) -> None:
    """Change every signed header (one at a time) in the header form."""
    v = vector
    req = _verifiable(v, "header")
    info = sigv4verify.parse_signed_request(req)
    for index, (name, value) in enumerate(req.headers):
        if name.lower() not in info.signed_headers or name.lower() == "x-amz-date":
            continue
        headers = list(req.headers)
        headers[index] = (name, value + "x")
        bad = dataclasses.replace(req, headers=tuple(headers))
        with pytest.raises(sigv4.SignatureMismatch):
            sigv4verify.verify_signature(bad, info, v.creds.secret_key, normalize_path=v.normalize)
