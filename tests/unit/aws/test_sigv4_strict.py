"""The verifier's strict checks, the error messages, and the small pure helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from latchkey.aws import sigv4, sigv4verify

NOW = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)
CREDS = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TOKEN_CREDS = dataclasses.replace(CREDS, session_token="FQoGZXIvYXdzEXAMPLETOKEN+/=")
BASE = sigv4.HttpRequest(
    method="POST",
    path="/",
    query="Action=GetCallerIdentity&Version=2011-06-15",
    headers=(("Host", "sts.amazonaws.com"), ("Content-Type", "application/json")),
    body=b'{"a": 1}',
)
SKEW = dt.timedelta(minutes=5)


def header_signed(
    req: sigv4.HttpRequest = BASE, creds: sigv4.Credentials = CREDS, **kwargs: object
) -> sigv4.HttpRequest:
    headers = sigv4.sign_request_headers(
        req,
        creds,
        region="us-east-1",
        service="sts",
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )
    return dataclasses.replace(req, headers=headers)


def query_signed(
    req: sigv4.HttpRequest = BASE, creds: sigv4.Credentials = CREDS, expires: int = 900
) -> sigv4.HttpRequest:
    query = sigv4.presign_query(
        req, creds, region="us-east-1", service="sts", now=NOW, expires=expires
    )
    return dataclasses.replace(req, query=query)


def with_headers(req: sigv4.HttpRequest, *extra: tuple[str, str]) -> sigv4.HttpRequest:
    return dataclasses.replace(req, headers=req.headers + extra)


def replace_header(req: sigv4.HttpRequest, name: str, value: str) -> sigv4.HttpRequest:
    headers = tuple((k, value if k.lower() == name else v) for k, v in req.headers)
    return dataclasses.replace(req, headers=headers)


def accept(req: sigv4.HttpRequest, secret: str = CREDS.secret_key) -> sigv4.SignedRequestInfo:
    info = sigv4verify.parse_signed_request(req)
    sigv4verify.check_request_time(info, NOW, max_skew=SKEW)
    sigv4verify.verify_signature(req, info, secret)
    return info


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("creds", [CREDS, TOKEN_CREDS], ids=["plain", "session"])
def test_header_round_trip(creds: sigv4.Credentials) -> None:
    info = accept(header_signed(creds=creds))
    assert info.form == "header"
    assert info.signed_headers == ("content-type", "host", "x-amz-date") + (
        ("x-amz-security-token",) if creds.session_token else ()
    )
    assert info.session_token == creds.session_token
    assert info.expires is None


@pytest.mark.parametrize("creds", [CREDS, TOKEN_CREDS], ids=["plain", "session"])
def test_query_round_trip(creds: sigv4.Credentials) -> None:
    req = query_signed(creds=creds)
    assert req.query.startswith(BASE.query + "&X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    assert req.query.rsplit("&", 1)[1].startswith("X-Amz-Signature=")
    info = accept(req)
    assert info.form == "query"
    assert info.expires == 900
    assert info.session_token == creds.session_token
    assert info.scope == sigv4.CredentialScope("20150830", "us-east-1", "sts")


def test_signing_replaces_previous_auth_and_keeps_input() -> None:
    once = header_signed()
    twice = header_signed(once, TOKEN_CREDS)
    names = [k.lower() for k, _ in twice.headers]
    assert names.count("authorization") == names.count("x-amz-date") == 1
    assert once.headers == header_signed().headers  # deterministic, input untouched
    accept(twice)
    requery = query_signed(query_signed(), TOKEN_CREDS)
    assert requery.query.count("X-Amz-Signature=") == 1
    accept(requery)


def test_signing_needs_host_and_aware_time() -> None:
    no_host = dataclasses.replace(BASE, headers=(("Content-Type", "text/plain"),))
    with pytest.raises(ValueError, match="Host"):
        header_signed(no_host)
    with pytest.raises(ValueError, match="Host"):
        query_signed(no_host)
    with pytest.raises(ValueError, match="timezone"):
        sigv4.sign_request_headers(
            BASE, CREDS, region="us-east-1", service="sts", now=NOW.replace(tzinfo=None)
        )
    with pytest.raises(ValueError, match="expires"):
        query_signed(expires=sigv4.MAX_EXPIRES + 1)


def test_declared_payload_hash_is_used_and_checked() -> None:
    declared = with_headers(BASE, ("X-Amz-Content-Sha256", sigv4.payload_hash(BASE.body)))
    accept(header_signed(declared))
    lying = header_signed(with_headers(BASE, ("x-amz-content-sha256", sigv4.EMPTY_SHA256)))
    info = sigv4verify.parse_signed_request(lying)
    with pytest.raises(sigv4.SignatureMismatch) as caught:
        sigv4verify.verify_signature(lying, info, CREDS.secret_key)
    assert caught.value.reason == "content-sha256-mismatch"


def test_unsigned_payload_accepts_any_body() -> None:
    req = header_signed(with_headers(BASE, ("x-amz-content-sha256", sigv4.UNSIGNED_PAYLOAD)))
    accept(dataclasses.replace(req, body=b"anything at all"))


def test_streaming_payload_is_refused() -> None:
    streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    req = header_signed(with_headers(BASE, ("x-amz-content-sha256", streaming)))
    info = sigv4verify.parse_signed_request(req)
    with pytest.raises(sigv4.SignatureMismatch) as caught:
        sigv4verify.verify_signature(req, info, CREDS.secret_key)
    assert caught.value.reason == "unsupported-payload-hash"


def test_presigned_payload_may_be_unsigned_or_body_hash() -> None:
    accept(query_signed())  # UNSIGNED-PAYLOAD, the default
    query = sigv4.presign_query(
        BASE,
        CREDS,
        region="us-east-1",
        service="sts",
        now=NOW,
        expires=60,
        payload_hash=sigv4.payload_hash(BASE.body),
    )
    signed = dataclasses.replace(BASE, query=query)
    accept(signed)
    info = sigv4verify.parse_signed_request(signed)
    with pytest.raises(sigv4.SignatureMismatch):
        sigv4verify.verify_signature(
            dataclasses.replace(signed, body=b"other"), info, CREDS.secret_key
        )


# --- strict checks ----------------------------------------------------------------------------


def test_unsigned_amz_header_is_rejected() -> None:
    req = with_headers(header_signed(), ("X-Amz-Meta-Color", "blue"))
    with pytest.raises(sigv4.UnsignedHeader, match="x-amz-meta-color") as caught:
        sigv4verify.parse_signed_request(req)
    assert caught.value.reason == "unsigned-header"
    with pytest.raises(sigv4.UnsignedHeader, match="x-amz-target"):
        sigv4verify.parse_signed_request(with_headers(query_signed(), ("X-Amz-Target", "x")))


def test_unsigned_session_token_header_is_rejected() -> None:
    unsigned = set(sigv4.DEFAULT_UNSIGNED) | {"x-amz-security-token"}
    req = header_signed(creds=TOKEN_CREDS, unsigned_headers=unsigned)
    with pytest.raises(sigv4.UnsignedHeader, match="x-amz-security-token"):
        sigv4verify.parse_signed_request(req)


def test_unsigned_other_headers_are_allowed() -> None:
    accept(with_headers(header_signed(), ("User-Agent", "curl"), ("X-Amzn-Trace-Id", "t")))


def test_host_must_be_signed() -> None:
    unsigned = set(sigv4.DEFAULT_UNSIGNED) | {"host"}
    req = header_signed(unsigned_headers=unsigned)
    with pytest.raises(sigv4.UnsignedHeader, match="'Host' or ':authority'") as caught:
        sigv4verify.parse_signed_request(req)
    assert caught.value.reason == "host-not-signed"


def test_header_and_query_auth_is_ambiguous() -> None:
    signed_query = query_signed()
    both = dataclasses.replace(header_signed(), query=signed_query.query)
    with pytest.raises(sigv4.AmbiguousAuthentication):
        sigv4verify.parse_signed_request(both)
    stray = dataclasses.replace(header_signed(), query="X-Amz-Signature=abc")
    with pytest.raises(sigv4.AmbiguousAuthentication):
        sigv4verify.parse_signed_request(stray)


def test_missing_authentication() -> None:
    with pytest.raises(sigv4.MissingAuthentication) as caught:
        sigv4verify.parse_signed_request(BASE)
    assert caught.value.reason == "missing-authentication"
    assert str(caught.value) == "Missing Authentication Token"


def _authorization(req: sigv4.HttpRequest) -> str:
    return next(v for k, v in req.headers if k == "Authorization")


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda a: a.replace("Credential=", "Cred="),
            "Authorization header requires 'Credential' parameter.",
        ),
        (
            lambda a: a.split(", Signature=")[0],
            "Authorization header requires 'Signature' parameter.",
        ),
        (lambda a: a.replace("SignedHeaders=", "SignedHeaders"), "not a valid key=value pair"),
        (lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), "Unsupported AWS"),
        (lambda a: a.replace("/aws4_request", "/aws5_request"), "valid terminator"),
        (lambda a: a.replace("/us-east-1/sts/", "/sts/"), "Credential is mal-formed"),
        (lambda a: a.replace("/us-east-1/", "//"), "valid region"),
        (lambda a: a.replace("/20150830/", "/20150831/"), "Date in Credential scope"),
        (lambda a: a.replace("host;", "Host;"), "lowercase header names"),
        (lambda a: a.replace("host;", ";host;"), "lowercase header names"),
        (lambda a: a + ", Signature=abc", "Duplicate 'Signature'"),
        (lambda a: "Bearer abc", "Unsupported AWS"),
    ],
)
def test_malformed_authorization(mangle: object, message: str) -> None:
    req = header_signed()
    assert callable(mangle)
    req = replace_header(req, "authorization", mangle(_authorization(req)))
    with pytest.raises(sigv4.IncompleteSignature, match=message):
        sigv4verify.parse_signed_request(req)


def test_incomplete_signature_message_lists_every_problem() -> None:
    req = dataclasses.replace(BASE, headers=(*BASE.headers, ("Authorization", ALGO_ONLY)))
    with pytest.raises(sigv4.IncompleteSignature) as caught:
        sigv4verify.parse_signed_request(req)
    assert str(caught.value) == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=AWS4-HMAC-SHA256"
    )


ALGO_ONLY = "AWS4-HMAC-SHA256"


def test_bad_or_duplicate_date_header() -> None:
    req = replace_header(header_signed(), "x-amz-date", "2015-08-30T12:36:00Z")
    with pytest.raises(sigv4.IncompleteSignature, match="ISO-8601 'basic format'"):
        sigv4verify.parse_signed_request(req)
    twice = with_headers(header_signed(), ("X-Amz-Date", "20150830T123600Z"))
    with pytest.raises(sigv4.IncompleteSignature, match="Only one"):
        sigv4verify.parse_signed_request(twice)


def test_duplicate_authorization_header() -> None:
    req = header_signed()
    twice = with_headers(req, ("authorization", _authorization(req)))
    with pytest.raises(sigv4.IncompleteSignature, match="Only one Authorization"):
        sigv4verify.parse_signed_request(twice)


def _drop_param(query: str, name: str) -> str:
    return "&".join(p for p in query.split("&") if not p.startswith(name + "="))


@pytest.mark.parametrize(
    "name",
    ["X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date", "X-Amz-Expires"],
)
def test_query_form_missing_parameter(name: str) -> None:
    req = query_signed()
    broken = dataclasses.replace(req, query=_drop_param(req.query, name))
    with pytest.raises(sigv4.IncompleteSignature, match=f"must include '{name}'"):
        sigv4verify.parse_signed_request(broken)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("X-Amz-Expires=900", "X-Amz-Expires=604801", "less than a week"),
        ("X-Amz-Expires=900", "X-Amz-Expires=-1", "should be a number"),
        ("X-Amz-Expires=900", "X-Amz-Expires=900&X-Amz-Expires=1", "Only one 'X-Amz-Expires'"),
        ("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-X", "only supports"),
        ("X-Amz-Date=20150830T123600Z", "X-Amz-Date=20150830", "ISO-8601"),
    ],
)
def test_query_form_bad_parameter(old: str, new: str, message: str) -> None:
    req = query_signed()
    assert old in req.query
    broken = dataclasses.replace(req, query=req.query.replace(old, new))
    with pytest.raises(sigv4.IncompleteSignature, match=message):
        sigv4verify.parse_signed_request(broken)


def test_query_token_and_header_token() -> None:
    req = query_signed(creds=TOKEN_CREDS)
    with pytest.raises(sigv4.IncompleteSignature, match="differ"):
        sigv4verify.parse_signed_request(with_headers(req, ("X-Amz-Security-Token", "other")))
    token = TOKEN_CREDS.session_token or ""
    same = query_signed(with_headers(BASE, ("X-Amz-Security-Token", token)), TOKEN_CREDS)
    assert accept(same).session_token == token
    header_only = query_signed(with_headers(BASE, ("X-Amz-Security-Token", token)), CREDS)
    assert "X-Amz-Security-Token" not in header_only.query
    assert accept(header_only).session_token == token


# --- time -------------------------------------------------------------------------------------


def _info(
    amz_date: str, form: str = "header", expires: int | None = None
) -> sigv4.SignedRequestInfo:
    return sigv4.SignedRequestInfo(
        form=form,  # type: ignore[arg-type]
        access_key="AKIDEXAMPLE",
        scope=sigv4.CredentialScope(amz_date[:8], "us-east-1", "sts"),
        amz_date=amz_date,
        signed_headers=("host", "x-amz-date"),
        signature="0" * 64,
        expires=expires,
        session_token=None,
    )


def test_skew_of_six_minutes_is_expired() -> None:
    now = dt.datetime(2013, 5, 24, 0, 6, tzinfo=dt.UTC)
    with pytest.raises(sigv4.SignatureExpired) as caught:
        sigv4verify.check_request_time(_info("20130524T000000Z"), now, max_skew=SKEW)
    assert str(caught.value) == (
        "Signature expired: 20130524T000000Z is now earlier than 20130524T000100Z "
        "(20130524T000600Z - 5 min.)"
    )
    assert caught.value.reason == "expired"


def test_expired_message_matches_aws_example() -> None:
    now = dt.datetime(2013, 5, 24, 0, 10, tzinfo=dt.UTC)
    with pytest.raises(sigv4.SignatureExpired) as caught:
        sigv4verify.check_request_time(_info("20130524T000000Z"), now, max_skew=SKEW)
    assert str(caught.value) == (
        "Signature expired: 20130524T000000Z is now earlier than 20130524T000500Z "
        "(20130524T001000Z - 5 min.)"
    )


def test_future_signature_is_not_yet_current() -> None:
    now = dt.datetime(2013, 5, 24, 0, 0, tzinfo=dt.UTC)
    with pytest.raises(sigv4.SignatureExpired) as caught:
        sigv4verify.check_request_time(_info("20130524T001000Z"), now, max_skew=SKEW)
    assert str(caught.value) == (
        "Signature not yet current: 20130524T001000Z is still later than 20130524T000500Z "
        "(20130524T000000Z + 5 min.)"
    )
    assert caught.value.reason == "not-yet-current"
    with pytest.raises(sigv4.SignatureExpired, match="not yet current"):
        sigv4verify.check_request_time(_info("20130524T001000Z", "query", 3600), now, max_skew=SKEW)


def test_skew_boundaries_are_inclusive() -> None:
    signed = dt.datetime(2013, 5, 24, 0, 0, tzinfo=dt.UTC)
    for delta in (-SKEW, SKEW, dt.timedelta(0)):
        sigv4verify.check_request_time(_info("20130524T000000Z"), signed + delta, max_skew=SKEW)


def test_query_form_expiry() -> None:
    info = _info("20130524T000000Z", "query", 60)
    signed = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
    sigv4verify.check_request_time(info, signed + dt.timedelta(seconds=60), max_skew=SKEW)
    with pytest.raises(sigv4.SignatureExpired, match=r"^Request has expired$"):
        sigv4verify.check_request_time(info, signed + dt.timedelta(seconds=61), max_skew=SKEW)
    # a long-lived URL is fine well past the header-form skew
    long_lived = _info("20130524T000000Z", "query", 3600)
    sigv4verify.check_request_time(long_lived, signed + dt.timedelta(minutes=59), max_skew=SKEW)


def test_amz_date_parse_and_format() -> None:
    moment = sigv4.parse_amz_date("20150830T123600Z")
    assert moment == NOW
    assert sigv4.format_amz_date(moment) == "20150830T123600Z"
    eastern = dt.timezone(dt.timedelta(hours=-4))
    assert sigv4.format_amz_date(NOW.astimezone(eastern)) == "20150830T123600Z"
    for bad in (
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "20151330T123600Z",
        "\uff120150830T123600Z",
    ):
        with pytest.raises(sigv4.IncompleteSignature):
            sigv4.parse_amz_date(bad)


# --- values -----------------------------------------------------------------------------------


def test_credentials_repr_hides_secrets() -> None:
    text = repr(TOKEN_CREDS)
    assert "AKIDEXAMPLE" in text
    assert TOKEN_CREDS.secret_key not in text
    assert "EXAMPLETOKEN" not in text
    assert "secret" not in text
    assert "token" not in text


def test_scope_string_and_constants() -> None:
    assert str(sigv4.CredentialScope("20150830", "us-east-1", "service")) == (
        "20150830/us-east-1/service/aws4_request"
    )
    assert sigv4.EMPTY_SHA256 == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert sigv4.payload_hash(b"") == sigv4.EMPTY_SHA256


def test_signing_key_matches_aws_documentation_and_is_cached() -> None:
    scope = sigv4.CredentialScope("20120215", "us-east-1", "iam")
    key = sigv4.derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", scope)
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    cache = sigv4._signing_key
    hits = cache.cache_info().hits
    sigv4.derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", scope)
    assert cache.cache_info().hits == hits + 1
    assert cache.cache_info().maxsize == 1024


def test_errors_share_a_base_with_reasons() -> None:
    for cls in (
        sigv4.MissingAuthentication,
        sigv4.IncompleteSignature,
        sigv4.AmbiguousAuthentication,
        sigv4.UnsignedHeader,
        sigv4.SignatureMismatch,
        sigv4.SignatureExpired,
    ):
        error = cls("message")
        assert isinstance(error, sigv4.SigV4Error)
        assert error.reason
        assert str(error) == "message"
    assert sigv4.SignatureMismatch("m", reason="custom").reason == "custom"


def test_undecodable_bytes_round_trip() -> None:
    # An HTTP layer may hand over non-UTF-8 bytes as surrogate escapes; nothing may crash.
    odd = sigv4.HttpRequest(
        method="GET",
        path="/caf\udce9/%FF",
        query="k=\udcff&%FE=v+w",
        headers=(("Host", "h.example"), ("X-Amz-Meta-Raw", "\udce9 x")),
    )
    req = header_signed(odd)
    accept(req)
    swapped = dataclasses.replace(req, query="k=\udcfe&%FE=v+w")
    with pytest.raises(sigv4.SignatureMismatch):
        accept(swapped)


def test_scope_must_be_printable_ascii() -> None:
    req = header_signed()
    mangled = _authorization(req).replace("/us-east-1/", "/us-\udce9ast-1/")
    with pytest.raises(sigv4.IncompleteSignature, match="valid region"):
        sigv4verify.parse_signed_request(replace_header(req, "authorization", mangled))
