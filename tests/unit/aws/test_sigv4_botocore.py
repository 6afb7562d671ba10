"""Cross-check against botocore's signers on generated requests.

botocore signs (``SigV4Auth`` for the Authorization header, ``SigV4QueryAuth`` for presigned
URLs) with its clock frozen by patching ``botocore.auth.get_current_datetime``; our
``parse_signed_request`` + ``verify_signature`` must accept what it produced, and our signers
must produce the same signature for the same inputs. botocore signs every header except its
``SIGNED_HEADERS_BLACKLIST``, so we pass that list as ``unsigned_headers``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from unittest import mock
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.utils import percent_encode_sequence
from hypothesis import given, settings
from hypothesis import strategies as st

from latchkey.aws import sigv4, sigv4verify

HOST = "example.amazonaws.com"
SKEW = dt.timedelta(minutes=5)
# Headers the generated set must not contain: the signers manage these themselves
# (botocore also rewrites 'Date'), or they would describe a body we do not send.
RESERVED = {
    "host", "authorization", "date", "x-amz-date", "x-amz-security-token",
    "x-amz-content-sha256", "content-length", "transfer-encoding",
}  # fmt: skip
SETTINGS = settings(max_examples=200, deadline=None)

_printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_segment = st.one_of(
    st.sampled_from(["", ".", "..", "a b", "~user", "%41", "100%", "x+y=z;w", "ሴ", "é"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
)
_path_safe = st.sampled_from(["", "!$&'()*+,;=:@", "%+"])  # characters left raw on the wire
_query_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_header_name = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
    st.from_regex(r"[Xx]-[Aa]mz-[Mm]eta-[a-z0-9]{1,6}", fullmatch=True),
    st.sampled_from(["Content-Type", "User-Agent", "X-Amzn-Trace-Id", "traceparent", "Expect"]),
).filter(lambda name: name.lower() not in RESERVED)
_header_value = st.text(st.one_of(_printable, st.sampled_from([" ", "\t"])), max_size=24)


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # as sent on the wire
    params: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    creds: sigv4.Credentials
    region: str
    service: str
    now: dt.datetime  # aware UTC, whole seconds


@st.composite
def cases(draw: st.DrawFn, *, with_body: bool = True, unique_params: bool = False) -> Case:
    safe = draw(_path_safe)
    segments = draw(st.lists(_segment, max_size=5))
    path = "/" + "/".join(quote(segment, safe=safe) for segment in segments)
    params = draw(
        st.lists(
            st.tuples(_query_text, _query_text),
            max_size=4,
            unique_by=(lambda kv: kv[0]) if unique_params else (lambda kv: kv),
        )
    )
    headers = draw(
        st.lists(
            st.tuples(_header_name, _header_value), max_size=5, unique_by=lambda h: h[0].lower()
        )
    )
    creds = sigv4.Credentials(
        draw(st.from_regex(r"A[KS]IA[A-Z0-9]{16}", fullmatch=True)),
        draw(st.text(_printable, min_size=1, max_size=40)),
        draw(st.none() | st.from_regex(r"[A-Za-z0-9+/]{1,80}={0,2}", fullmatch=True)),
    )
    now = draw(st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31)))
    return Case(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])),
        path=path,
        params=params,
        headers=[("Host", HOST), *headers],
        body=draw(st.binary(max_size=64)) if with_body else b"",
        creds=creds,
        region=draw(st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"])),
        service=draw(st.sampled_from(["sts", "iam", "kms", "execute-api", "service"])),
        now=now.replace(microsecond=0, tzinfo=dt.UTC),
    )


def _botocore_sign(case: Case, signer: SigV4Auth, request: AWSRequest) -> sigv4.HttpRequest:
    """Sign with botocore at ``case.now`` and return the request as it goes on the wire."""
    with mock.patch(
        "botocore.auth.get_current_datetime", return_value=case.now.replace(tzinfo=None)
    ):
        signer.add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    assert isinstance(body, bytes)
    return sigv4.HttpRequest(
        method=prepared.method,
        path=url.path,
        query=url.query,
        headers=tuple((str(k), str(v)) for k, v in prepared.headers.items()),
        body=body,
    )


def _boto_creds(creds: sigv4.Credentials) -> BotoCredentials:
    return BotoCredentials(creds.access_key, creds.secret_key, creds.session_token)


@SETTINGS
@given(case=cases(), payload_signing=st.booleans())
def test_header_form_matches_botocore(case: Case, payload_signing: bool) -> None:
    request = AWSRequest(
        method=case.method,
        url=f"https://{HOST}{case.path}",
        params=case.params or None,
        headers=dict(case.headers),
        data=case.body,
    )
    request.context["payload_signing_enabled"] = payload_signing
    signer = SigV4Auth(_boto_creds(case.creds), case.service, case.region)
    wire = _botocore_sign(case, signer, request)

    info = sigv4verify.parse_signed_request(wire)
    assert info.form == "header"
    assert info.access_key == case.creds.access_key
    assert info.session_token == case.creds.session_token
    sigv4verify.check_request_time(info, case.now, max_skew=SKEW)
    sigv4verify.verify_signature(wire, info, case.creds.secret_key)

    headers = list(case.headers)
    if not payload_signing:  # botocore then declares and signs an unsigned payload
        headers.append(("X-Amz-Content-SHA256", sigv4.UNSIGNED_PAYLOAD))
    ours = sigv4.sign_request_headers(
        sigv4.HttpRequest(case.method, wire.path, wire.query, tuple(headers), case.body),
        case.creds,
        region=case.region,
        service=case.service,
        now=case.now,
        unsigned_headers=SIGNED_HEADERS_BLACKLIST,
    )
    assert dict(ours)["Authorization"] == request.headers["Authorization"]
    assert dict(ours)["X-Amz-Date"] == request.headers["X-Amz-Date"]


def _query_dict(query: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in query.split("&"))


@SETTINGS
@given(case=cases(with_body=False, unique_params=True), expires=st.integers(1, 604800))
def test_query_form_matches_botocore(case: Case, expires: int) -> None:
    request = AWSRequest(
        method=case.method,
        url=f"https://{HOST}{case.path}",
        params=dict(case.params),
        headers=dict(case.headers),
    )
    signer = SigV4QueryAuth(_boto_creds(case.creds), case.service, case.region, expires=expires)
    wire = _botocore_sign(case, signer, request)

    info = sigv4verify.parse_signed_request(wire)
    assert info.form == "query"
    assert info.expires == expires
    assert info.session_token == case.creds.session_token
    sigv4verify.check_request_time(info, case.now, max_skew=SKEW)
    sigv4verify.verify_signature(wire, info, case.creds.secret_key)

    query = sigv4.presign_query(
        sigv4.HttpRequest(
            case.method, case.path, percent_encode_sequence(dict(case.params)), tuple(case.headers)
        ),
        case.creds,
        region=case.region,
        service=case.service,
        now=case.now,
        expires=expires,
        payload_hash=sigv4.EMPTY_SHA256,  # what botocore signs for non-S3 presigned URLs
        unsigned_headers=SIGNED_HEADERS_BLACKLIST,
    )
    assert _query_dict(query) == _query_dict(wire.query)
