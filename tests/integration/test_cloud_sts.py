"""STS AssumeRoleWithWebIdentity against the local cloud with tokens from the node's idp:
what it hands out, and every way a token or a role refuses (real boto3, real TLS).
The session credentials themselves are in test_cloud_sts_sessions.py.

This module also holds what the other ``test_cloud_sts*`` modules share: the ``cloud``
fixture (a role of the tests' own, so nothing depends on the seeded role's trust policy), a
fake OIDC issuer served over HTTPS with a leaf of the node's CA (it counts what it is asked),
and a trap server that must never be contacted."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.x509 import CertificateAuthority, load_or_create_ca, server_ssl_context
from latchkey_testing import NodeHandle, SettableClock

ACCOUNT = "000000000000"
ROLE_NAME = "sts-test"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
AUDIENCE = "sts.amazonaws.com"
SUBJECT = "local-apps"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
KMS_ALL = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }
)
THUMBPRINT = "0" * 40


class Cloud:
    """The node plus every boto3 client a test made, closed before the node stops."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self._clients: list[Any] = []

    def client(self, service: str, **creds: str) -> Any:
        made = self.node.client(service, **creds)
        self._clients.append(made)
        return made

    def unvalidated_client(self, service: str, **creds: str) -> Any:
        """Like ``client``, without botocore's parameter checks (to send what AWS refuses)."""
        admin = self.node.admin()
        creds = creds or {"aws_access_key_id": admin["AccessKeyId"],
                          "aws_secret_access_key": admin["SecretAccessKey"]}  # fmt: skip
        made = boto3.client(
            service, endpoint_url=self.node.info.cloud, region_name="us-east-1",
            verify=self.node.info.ca_bundle, **creds,
            config=BotoConfig(retries={"max_attempts": 1}, proxies={}, parameter_validation=False),
        )  # fmt: skip
        self._clients.append(made)
        return made

    def close(self) -> None:
        for made in self._clients:
            made.close()


@contextlib.contextmanager
def open_cloud(node: NodeHandle) -> Iterator[Cloud]:
    """The node, and role ``sts-test``: trusts the node's idp (audience only), may use KMS.

    Other ``test_cloud_sts*`` modules make their ``cloud`` fixture from this."""
    made = Cloud(node)
    try:
        create_role(made, ROLE_NAME, {f"{host_port(made)}:aud": AUDIENCE})
        made.client("iam").put_role_policy(
            RoleName=ROLE_NAME, PolicyName="kms", PolicyDocument=KMS_ALL
        )
        yield made
    finally:
        made.close()


@pytest.fixture
def cloud(node: NodeHandle) -> Iterator[Cloud]:
    with open_cloud(node) as made:
        yield made


def host_port(cloud: Cloud) -> str:
    return urlsplit(cloud.node.info.idp).netloc


def provider_arn(cloud: Cloud, url: str | None = None) -> str:
    netloc = urlsplit(url).netloc if url else host_port(cloud)
    return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{netloc}"


def mint(cloud: Cloud, audience: str = AUDIENCE, **kw: Any) -> str:
    assert cloud.node.node.issuer is not None
    return cloud.node.node.issuer.mint(SUBJECT, audience, **kw)


def assume(cloud: Cloud, token: str, role_arn: str = ROLE_ARN, **extra: Any) -> Any:
    extra.setdefault("RoleSessionName", "app-session")
    return cloud.client("sts").assume_role_with_web_identity(
        RoleArn=role_arn, WebIdentityToken=token, **extra
    )


def creds_of(resp: Any, **override: str) -> dict[str, str]:
    c = resp["Credentials"]
    out = {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    out.update(override)
    return out


class Refusal(NamedTuple):
    code: str
    status: int
    message: str


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Refusal:
    """Call what must fail; keep only code/status/message (the ClientError's traceback holds
    the HTTP connection open, and the node does not close live connections when it stops)."""
    try:
        call(*args, **kwargs)
    except ClientError as err:
        resp = err.response
        status = resp["ResponseMetadata"]["HTTPStatusCode"]
        return Refusal(resp["Error"]["Code"], status, resp["Error"].get("Message", ""))
    raise AssertionError(f"{getattr(call, '__name__', call)} succeeded")


def post_raw(cloud: Cloud, params: Mapping[str, str]) -> tuple[int, str, str]:
    """A hand-made, unsigned query-protocol POST: (status, error code or "", body text)."""
    parts = urlsplit(cloud.node.info.cloud)
    ctx = ssl.create_default_context(cafile=cloud.node.info.ca_bundle)
    conn = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=10)
    try:
        conn.request("POST", "/", urlencode(params), {"Content-Type": FORM})
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
    finally:
        conn.close()
    code = ET.fromstring(body).findtext(".//{*}Code") if status != 200 else None  # noqa: S314
    return status, code or "", body.decode()


def post_unsigned(cloud: Cloud, params: dict[str, str]) -> tuple[int, str]:
    status, code, _body = post_raw(cloud, params)
    return status, code


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def trust_document(principal: str, conditions: Mapping[str, Any] | None = None,
                   actions: str | list[str] = "sts:AssumeRoleWithWebIdentity") -> str:  # fmt: skip
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Federated": principal},
                                 "Action": actions}  # fmt: skip
    if conditions:
        statement["Condition"] = {"StringEquals": dict(conditions)}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def create_role(cloud: Cloud, name: str, conditions: dict[str, str], **kw: Any) -> str:
    document = trust_document(provider_arn(cloud), conditions)
    role = cloud.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=document, **kw)
    return str(role["Role"]["Arn"])


# -- a fake OIDC issuer and a trap --------------------------------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def node_ca(node: NodeHandle) -> CertificateAuthority:
    data = node.data_dir
    return load_or_create_ca(data / "ca.pem", data / "ca-key.pem", now=dt.datetime.now(dt.UTC))


class FakeIssuer:
    """An OIDC issuer on 127.0.0.1 (HTTPS, leaf from the node's CA) with its own ES256 key.

    ``requests`` lists every path asked for; ``discovery``, ``status`` and ``overrides``
    (path -> status, headers, body) change its answers.
    """

    def __init__(self, ca: CertificateAuthority, *, host: str = "127.0.0.1") -> None:
        cert, key = ca.mint_leaf(["127.0.0.1", "localhost"], now=dt.datetime.now(dt.UTC))
        self.key = SigningKey.generate()
        self.requests: list[str] = []
        self.status = 200
        self.discovery: dict[str, Any] = {}
        self.overrides: dict[str, tuple[int, dict[str, str], bytes]] = {}
        issuer = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                status, headers, data = issuer.answer(self.path)
                self.send_response(status)
                for name, value in [("Content-Length", str(len(data))), *headers.items()]:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = server_ssl_context(cert, key).wrap_socket(
            self._server.socket, server_side=True
        )
        self.url = f"https://{host}:{self._server.server_address[1]}"
        self.discovery = {"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                          "id_token_signing_alg_values_supported": ["ES256"]}  # fmt: skip
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path in self.overrides:
            return self.overrides[path]
        json_type = {"Content-Type": "application/json"}
        if path == "/.well-known/openid-configuration":
            return self.status, json_type, json.dumps(self.discovery).encode()
        if path == "/jwks":
            return self.status, json_type, json.dumps(self.key.jwks()).encode()
        return 404, json_type, b"{}"

    def jwks_requests(self) -> int:
        return self.requests.count("/jwks")

    def token(self, header: Mapping[str, Any] | None = None, *, key: SigningKey | None = None,
              **claims: Any) -> str:  # fmt: skip
        """A token signed by this issuer's key (or ``key``); claims default to a valid one."""
        now = int(dt.datetime.now(dt.UTC).timestamp())
        body = {"iss": self.url, "sub": SUBJECT, "aud": AUDIENCE, "iat": now, "nbf": now,
                "exp": now + 300} | claims  # fmt: skip
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        head = {"alg": "ES256", "typ": "JWT", "kid": signer.kid} | dict(header or {})
        registry = jws.JWSRegistry(strict_check_header=False)  # lets tests add any header
        return jwt.encode(head, body, ECKey.import_key(signer.private_pem()), registry=registry)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class TrapServer:
    """A plain HTTP server that records any request: tokens may point at it, we must not go."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        trap = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                trap.requests.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


FAKE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fake-trust"


@contextlib.contextmanager
def open_fake_issuer(cloud: Cloud) -> Iterator[FakeIssuer]:
    """A fake issuer registered with IAM, and role ``fake-trust`` trusting it (no conditions)."""
    issuer = FakeIssuer(node_ca(cloud.node))
    try:
        iam = cloud.client("iam")
        iam.create_open_id_connect_provider(
            Url=issuer.url, ClientIDList=[AUDIENCE], ThumbprintList=[THUMBPRINT]
        )
        document = trust_document(provider_arn(cloud, issuer.url))
        iam.create_role(RoleName="fake-trust", AssumeRolePolicyDocument=document)
        yield issuer
    finally:
        issuer.close()


# -- success ----------------------------------------------------------------------------------


def test_assume_role_with_web_identity_returns_session_credentials(cloud: Cloud) -> None:
    before = dt.datetime.now(dt.UTC)
    resp = assume(cloud, mint(cloud))
    c = resp["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    assert len(c["AccessKeyId"]) == 20
    assert c["SecretAccessKey"]
    assert c["SessionToken"]
    lifetime = (c["Expiration"] - before).total_seconds()
    assert 3590 <= lifetime <= 3610
    assumed = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/app-session"
    assert resp["AssumedRoleUser"]["Arn"] == assumed
    assert resp["AssumedRoleUser"]["AssumedRoleId"].endswith(":app-session")
    assert resp["SubjectFromWebIdentityToken"] == SUBJECT
    assert resp["Audience"] == AUDIENCE
    assert resp["Provider"] == provider_arn(cloud)  # AWS answers the provider's ARN
    assert "SourceIdentity" not in resp
    assert "PackedPolicySize" not in resp


# -- refusals: the token ----------------------------------------------------------------------


def foreign_issuer(cloud: Cloud) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": "https://127.0.0.1:1/elsewhere", "sub": SUBJECT, "aud": AUDIENCE,
              "iat": now, "exp": now + 300}  # fmt: skip
    return SigningKey.generate().sign_jwt(claims)


def other_key_real_issuer(cloud: Cloud) -> str:
    return SigningKey.generate().sign_jwt(unb64(mint(cloud).split(".")[1]))


def other_key_same_kid(cloud: Cloud) -> str:
    header, payload, _ = mint(cloud).split(".")
    return jwt.encode(unb64(header), unb64(payload), ECKey.generate_key("P-256"))


def alg_none(cloud: Cloud) -> str:
    payload = mint(cloud).split(".")[1]
    return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."


def hs256_with_public_key(cloud: Cloud) -> str:
    assert cloud.node.node.issuer is not None
    secret = json.dumps(cloud.node.node.issuer.jwks()).encode()
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{head}.{mint(cloud).split('.')[1]}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tampered_payload(cloud: Cloud) -> str:
    header, payload, sig = mint(cloud).split(".")
    claims = unb64(payload) | {"sub": "admin"}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"


def wrong_audience(cloud: Cloud) -> str:
    return mint(cloud, "not-sts")


def not_a_jwt(cloud: Cloud) -> str:
    return "this-is-not-a-jwt"


@pytest.mark.parametrize(
    "forge",
    [foreign_issuer, other_key_real_issuer, other_key_same_kid, alg_none,
     hs256_with_public_key, tampered_payload, wrong_audience, not_a_jwt],
)  # fmt: skip
def test_bad_tokens_are_invalid_identity_tokens(
    cloud: Cloud, forge: Callable[[Cloud], str]
) -> None:
    err = refused(assume, cloud, forge(cloud))
    assert err[:2] == ("InvalidIdentityToken", 400)
    if forge is wrong_audience:
        assert err.message == "Incorrect token audience"


@pytest.mark.parametrize("how", ["minted-expired", "clock-moved-on"])
def test_expired_token(cloud: Cloud, settable_clock: SettableClock, how: str) -> None:
    if how == "minted-expired":
        token = mint(cloud, lifetime=dt.timedelta(minutes=-6))
    else:
        token = mint(cloud, lifetime=dt.timedelta(minutes=5))  # plus AWS's 5 minutes of grace
        settable_clock.advance(10 * 60 + 5)
    err = refused(assume, cloud, token)
    assert err[:2] == ("ExpiredTokenException", 400)
    assert err.message.startswith("Token expired: current date/time ")


def test_token_within_the_five_minute_grace_is_accepted(
    cloud: Cloud, settable_clock: SettableClock
) -> None:
    token = mint(cloud, lifetime=dt.timedelta(minutes=5))
    settable_clock.advance(9 * 60)  # expired four minutes ago
    assert assume(cloud, token)["Credentials"]["AccessKeyId"].startswith("ASIA")


# -- refusals: the role -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role_arn",
    [f"arn:aws:iam::{ACCOUNT}:role/no-such-role", f"arn:aws:iam::111122223333:role/{ROLE_NAME}",
     f"arn:aws:iam::{ACCOUNT}:role/other-path/{ROLE_NAME}"],
)  # fmt: skip
def test_role_that_does_not_exist_is_access_denied(cloud: Cloud, role_arn: str) -> None:
    err = refused(assume, cloud, mint(cloud), role_arn=role_arn)
    assert err[:2] == ("AccessDenied", 403)


@pytest.mark.parametrize(("wanted_sub", "allowed"), [("someone-else", False), (SUBJECT, True)])
def test_trust_condition_on_subject(cloud: Cloud, wanted_sub: str, allowed: bool) -> None:
    hp = host_port(cloud)
    arn = create_role(cloud, "sub-bound", {f"{hp}:sub": wanted_sub, f"{hp}:aud": AUDIENCE})
    if allowed:
        user = assume(cloud, mint(cloud), role_arn=arn)["AssumedRoleUser"]
        assert user["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/sub-bound/app-session"
    else:
        assert refused(assume, cloud, mint(cloud), role_arn=arn)[:2] == ("AccessDenied", 403)


@pytest.mark.parametrize(("max_session", "duration"), [(None, 43201), (3600, 7200)])
def test_duration_above_the_role_maximum(
    cloud: Cloud, max_session: int | None, duration: int
) -> None:
    role_arn = ROLE_ARN
    if max_session is not None:
        kw = {"MaxSessionDuration": max_session}
        role_arn = create_role(cloud, "short", {f"{host_port(cloud)}:aud": AUDIENCE}, **kw)
    err = refused(assume, cloud, mint(cloud), role_arn=role_arn, DurationSeconds=duration)
    assert err[:2] == ("ValidationError", 400)
    if duration > 43200:  # the API's own limit comes first, in AWS's validation wording
        assert err.message == (
            "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy "
            "constraint: Member must have value less than or equal to 43200"
        )
    else:
        assert err.message == (
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )


# -- validation -------------------------------------------------------------------------------


def web_identity_form(cloud: Cloud, **extra: str) -> dict[str, str]:
    return {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": ROLE_ARN,
            "RoleSessionName": "raw-session", "WebIdentityToken": mint(cloud), **extra}  # fmt: skip


def test_unsigned_raw_request_is_served(cloud: Cloud) -> None:
    assert post_unsigned(cloud, web_identity_form(cloud, DurationSeconds="900")) == (200, "")


def test_non_numeric_duration_is_a_client_error(cloud: Cloud) -> None:
    status, code = post_unsigned(cloud, web_identity_form(cloud, DurationSeconds="an-hour"))
    assert status == 400
    assert code in ("ValidationError", "MalformedInput", "InvalidParameterValue")


@pytest.mark.parametrize("name", ["a", "has space", "x" * 65])
def test_invalid_session_name(cloud: Cloud, name: str) -> None:
    status, code = post_unsigned(cloud, web_identity_form(cloud, RoleSessionName=name))
    assert (status, code) == (400, "ValidationError")


@pytest.mark.parametrize("name", ["app-session\n", "sessi\u00f3n"])
def test_session_name_outside_the_aws_pattern(cloud: Cloud, name: str) -> None:
    err = refused(assume, cloud, mint(cloud), RoleSessionName=name)
    assert err[:2] == ("ValidationError", 400)
