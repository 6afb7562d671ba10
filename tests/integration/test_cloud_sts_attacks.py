"""AssumeRoleWithWebIdentity under attack: every forged, stretched or misdirected token is
refused with the error code AWS uses, the answer holds no credentials, the token never reaches
the audit trail, and nothing the token names (``jku``, ``x5u``) is ever fetched. Tokens come
from a fake issuer registered with IAM (HTTPS, a leaf of the node's CA) that counts requests,
so "we did not fetch" is observed, not assumed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from latchkey.crypto.jwk import SigningKey
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    FAKE_ROLE_ARN,
    ROLE_ARN,
    SUBJECT,
    THUMBPRINT,
    Cloud,
    FakeIssuer,
    TrapServer,
    add_sts_role,
    b64url,
    node_ca,
    open_fake_issuer,
    post_raw,
    provider_arn,
    trust_document,
    unb64,
)

NO_KEY = (
    "Couldn't retrieve verification key from your identity provider, please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """The shared ``cloud`` with role ``sts-test`` (see ``add_sts_role``)."""
    return add_sts_role(cloud)


@pytest.fixture
def fake(cloud: Cloud) -> Iterator[FakeIssuer]:
    with open_fake_issuer(cloud) as made:
        yield made


@pytest.fixture
def trap() -> Iterator[TrapServer]:
    made = TrapServer()
    try:
        yield made
    finally:
        made.close()


class Answer(NamedTuple):
    status: int
    code: str
    body: str


def attempt(cloud: Cloud, token: str, role_arn: str = FAKE_ROLE_ARN, **extra: str) -> Answer:
    """One AssumeRoleWithWebIdentity, raw; a refusal must carry no credentials or token."""
    params = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
              "RoleArn": role_arn, "RoleSessionName": "attack", "WebIdentityToken": token,
              **extra}  # fmt: skip
    answer = Answer(*post_raw(cloud, params))
    if answer.status != 200:
        for secret in ("<Credentials>", "ASIA", "SecretAccessKey", "SessionToken", "LKSTS"):
            assert secret not in answer.body
        assert token not in answer.body
        assert token.split(".")[-1] not in answer.body or not token.split(".")[-1]
    return answer


def now() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


# -- the forgeries ------------------------------------------------------------------------------


def alg_none(fake: FakeIssuer, trap: TrapServer) -> str:
    payload = fake.token().split(".")[1]
    return f"{b64url(json.dumps({'alg': 'none', 'kid': fake.key.kid}).encode())}.{payload}."


def hs256_signed_with_the_public_key(fake: FakeIssuer, trap: TrapServer) -> str:
    secret = json.dumps(fake.key.public_jwk()).encode()
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": fake.key.kid}).encode())
    signing_input = f"{head}.{fake.token().split('.')[1]}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unknown_kid(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token({"kid": secrets.token_hex(8)})


def kid_with_path_characters(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token({"kid": "../../x"})


def jku_elsewhere(fake: FakeIssuer, trap: TrapServer) -> str:
    attacker = SigningKey.generate()
    return fake.token({"jku": f"{trap.url}/jwks.json"}, key=attacker)


def x5u_elsewhere(fake: FakeIssuer, trap: TrapServer) -> str:
    attacker = SigningKey.generate()
    return fake.token({"x5u": f"{trap.url}/cert.pem"}, key=attacker)


def embedded_jwk(fake: FakeIssuer, trap: TrapServer) -> str:
    attacker = SigningKey.generate()
    return fake.token({"jwk": attacker.public_jwk()}, key=attacker)


def nbf_in_the_future(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(nbf=now() + 10 * 60, exp=now() + 20 * 60)


def iat_in_the_future(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(iat=now() + 10 * 60, exp=now() + 20 * 60)


def wrong_audience(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(aud="not-sts")


def unregistered_issuer(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(iss="https://127.0.0.1:1/elsewhere")


def no_issuer(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(iss=None)


def no_subject(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(sub=None)


def signed_by_another_key(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token({"kid": fake.key.kid}, key=SigningKey.generate())


def tampered_subject(fake: FakeIssuer, trap: TrapServer) -> str:
    header, payload, sig = fake.token().split(".")
    return f"{header}.{b64url(json.dumps(unb64(payload) | {'sub': 'admin'}).encode())}.{sig}"


def truncated_signature(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token()[:-4]


def truncated_payload(fake: FakeIssuer, trap: TrapServer) -> str:
    header, payload, sig = fake.token().split(".")
    return f"{header}.{payload[:-3]}.{sig}"


def padded_segments(fake: FakeIssuer, trap: TrapServer) -> str:
    header, payload, sig = fake.token().split(".")
    pad = "=" * (-len(payload) % 4) or "=="
    return f"{header}.{payload}{pad}.{sig}"


def padded_signature(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token() + "=="


def standard_base64(fake: FakeIssuer, trap: TrapServer) -> str:
    header, payload, sig = fake.token().split(".")
    return f"{header}.{payload}.{sig.replace('-', '+').replace('_', '/')}+/"


def two_segments(fake: FakeIssuer, trap: TrapServer) -> str:
    return ".".join(fake.token().split(".")[:2])


def session_tags_claim(fake: FakeIssuer, trap: TrapServer) -> str:
    return fake.token(**{"https://aws.amazon.com/tags": {"principal_tags": {"team": ["x"]}}})


def source_identity_not_allowed(fake: FakeIssuer, trap: TrapServer) -> str:
    # fake-trust allows AssumeRoleWithWebIdentity only, not sts:SetSourceIdentity
    return fake.token(**{"https://aws.amazon.com/source_identity": "alice"})


INVALID = ("InvalidIdentityToken", 400)
ATTACKS: list[tuple[Callable[[FakeIssuer, TrapServer], str], tuple[str, int]]] = [
    (alg_none, INVALID),
    (hs256_signed_with_the_public_key, INVALID),
    (unknown_kid, INVALID),
    (kid_with_path_characters, INVALID),
    (jku_elsewhere, INVALID),
    (x5u_elsewhere, INVALID),
    (embedded_jwk, INVALID),
    (nbf_in_the_future, INVALID),
    (iat_in_the_future, INVALID),
    (wrong_audience, INVALID),
    (unregistered_issuer, INVALID),
    (no_issuer, INVALID),
    (no_subject, INVALID),
    (signed_by_another_key, INVALID),
    (tampered_subject, INVALID),
    (truncated_signature, INVALID),
    (truncated_payload, INVALID),
    (padded_segments, INVALID),
    (padded_signature, INVALID),
    (standard_base64, INVALID),
    (two_segments, INVALID),
    (session_tags_claim, INVALID),
    (source_identity_not_allowed, ("AccessDenied", 403)),
]


@pytest.mark.parametrize(
    ("forge", "expected"), ATTACKS, ids=[forge.__name__ for forge, _ in ATTACKS]
)
def test_attack_is_refused(
    cloud: Cloud,
    fake: FakeIssuer,
    trap: TrapServer,
    forge: Callable[[FakeIssuer, TrapServer], str],
    expected: tuple[str, int],
) -> None:
    assert attempt(cloud, fake.token()).status == 200  # the issuer works; its keys are cached
    token = forge(fake, trap)
    answer = attempt(cloud, token)
    assert (answer.code, answer.status) == expected
    assert trap.requests == []  # jku / x5u are never followed
    assert fake.jwks_requests() == 1  # and nothing made us fetch the JWKS again
    audit = (cloud.node.data_dir / "audit" / "cloud.jsonl").read_text()
    assert token not in audit


def test_messages_name_the_reason(cloud: Cloud, fake: FakeIssuer, trap: TrapServer) -> None:
    assert attempt(cloud, wrong_audience(fake, trap)).body.count("Incorrect token audience") == 1
    assert NO_KEY in attempt(cloud, unknown_kid(fake, trap)).body
    assert "No OpenIDConnect provider found" in attempt(cloud, unregistered_issuer(fake, trap)).body


def test_kid_spray_refetches_the_jwks_at_most_once(cloud: Cloud, fake: FakeIssuer) -> None:
    for _ in range(25):
        answer = attempt(cloud, fake.token({"kid": secrets.token_urlsafe(12)}))
        assert (answer.code, answer.status) == INVALID
    assert fake.jwks_requests() <= 2  # the first fetch, and at most one refresh
    assert fake.requests.count("/.well-known/openid-configuration") <= 2
    assert attempt(cloud, fake.token()).status == 200  # the real key still works, from cache
    assert fake.jwks_requests() <= 2


# -- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": -6 * 60}, ("ExpiredTokenException", 400)),
        ({"exp": -4 * 60}, ("", 200)),  # AWS's five minutes of grace for clock skew
        ({"nbf": 4 * 60}, ("", 200)),
        ({"iat": 4 * 60}, ("", 200)),
        ({"nbf": 6 * 60}, INVALID),
        ({"iat": 6 * 60}, INVALID),
    ],
)
def test_time_claims_have_five_minutes_of_grace(
    cloud: Cloud, fake: FakeIssuer, claims: dict[str, int], expected: tuple[str, int]
) -> None:
    base = now()
    times = {"iat": base - 600, "nbf": base - 600, "exp": base + 600}
    times |= {name: base + offset for name, offset in claims.items()}
    answer = attempt(cloud, fake.token(**times))
    assert (answer.code, answer.status) == expected
    if expected[0] == "ExpiredTokenException":
        assert f"the expiration date/time {times['exp']}" in answer.body


# -- size -------------------------------------------------------------------------------------


def token_of_length(fake: FakeIssuer, length: int) -> str:
    """A validly signed token of exactly ``length`` characters (a filler claim and header)."""
    base = len(fake.token(pad=""))
    estimate = max(0, (length - base) * 3 // 4)
    for pad in range(max(0, estimate - 8), estimate + 8):
        for extra in range(4):
            token = fake.token({"x": "y" * extra} if extra else None, pad="p" * pad)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of {length} characters")


def test_token_of_20000_characters_is_accepted(cloud: Cloud, fake: FakeIssuer) -> None:
    assert attempt(cloud, token_of_length(fake, 20_000)).status == 200


def test_token_of_20001_characters_is_a_validation_error(cloud: Cloud, fake: FakeIssuer) -> None:
    token = token_of_length(fake, 20_001)
    answer = attempt(cloud, token)
    assert (answer.code, answer.status) == ("ValidationError", 400)
    assert (
        "1 validation error detected: Value at 'webIdentityToken' failed to satisfy "
        "constraint: Member must have length less than or equal to 20000"
    ) in answer.body
    assert fake.requests == []  # refused before any network traffic


# -- roles ------------------------------------------------------------------------------------


def test_trust_policy_subject_mismatch_is_access_denied(cloud: Cloud, fake: FakeIssuer) -> None:
    netloc = fake.url.removeprefix("https://")
    document = trust_document(provider_arn(cloud, fake.url), {f"{netloc}:sub": "someone-else"})
    cloud.client("iam").create_role(RoleName="sub-bound", AssumeRolePolicyDocument=document)
    answer = attempt(cloud, fake.token(), role_arn=f"arn:aws:iam::{ACCOUNT}:role/sub-bound")
    assert (answer.code, answer.status) == ("AccessDenied", 403)
    assert "Not authorized to perform sts:AssumeRoleWithWebIdentity" in answer.body


def test_role_that_does_not_trust_the_provider(cloud: Cloud, fake: FakeIssuer) -> None:
    answer = attempt(cloud, fake.token(), role_arn=ROLE_ARN)  # trusts the node's idp only
    assert (answer.code, answer.status) == ("AccessDenied", 403)


def test_a_registered_issuer_cannot_speak_for_another(cloud: Cloud, fake: FakeIssuer) -> None:
    """The fake issuer's key signing a token that claims the node's idp as ``iss``."""
    token = fake.token(iss=cloud.node.info.idp, sub=SUBJECT, aud=AUDIENCE)
    answer = attempt(cloud, token, role_arn=ROLE_ARN)
    assert (answer.code, answer.status) == INVALID


def test_issuer_spelling_variants_are_refused_without_a_fetch(cloud: Cloud) -> None:
    named = FakeIssuer(node_ca(cloud.node), host="localhost")
    try:
        cloud.client("iam").create_open_id_connect_provider(
            Url=named.url, ClientIDList=[AUDIENCE], ThumbprintList=[THUMBPRINT]
        )
        document = trust_document(provider_arn(cloud, named.url))
        cloud.client("iam").create_role(RoleName="named", AssumeRolePolicyDocument=document)
        role = f"arn:aws:iam::{ACCOUNT}:role/named"
        shouted = named.url.replace("localhost", "LOCALHOST")
        answer = attempt(cloud, named.token(iss=shouted), role_arn=role)
        assert (answer.code, answer.status) == INVALID
        assert named.requests == []
        assert attempt(cloud, named.token(), role_arn=role).status == 200
    finally:
        named.close()


# -- the issuer itself ------------------------------------------------------------------------


def test_algorithm_the_issuer_does_not_use_is_idp_rejected(cloud: Cloud, fake: FakeIssuer) -> None:
    fake.discovery["id_token_signing_alg_values_supported"] = ["RS256"]
    answer = attempt(cloud, fake.token())
    assert (answer.code, answer.status) == ("IDPRejectedClaim", 403)


@pytest.mark.parametrize("fault", ["down", "http-500", "wrong-issuer", "http-jwks-uri"])
def test_issuer_trouble_is_idp_communication_error(
    cloud: Cloud, fake: FakeIssuer, fault: str
) -> None:
    token = fake.token()
    if fault == "down":
        fake.close()
    elif fault == "http-500":
        fake.status = 500
    elif fault == "wrong-issuer":
        fake.discovery["issuer"] = "https://127.0.0.1:1"
    else:
        fake.discovery["jwks_uri"] = fake.discovery["jwks_uri"].replace("https:", "http:")
    answer = attempt(cloud, token)
    assert (answer.code, answer.status) == ("IDPCommunicationError", 400)


def test_valid_fake_issuer_token_gets_credentials(cloud: Cloud, fake: FakeIssuer) -> None:
    answer = attempt(cloud, fake.token(aud=["other", AUDIENCE]))
    assert answer.status == 200
    assert "<AccessKeyId>ASIA" in answer.body
    assert f"<Audience>{AUDIENCE}</Audience>" in answer.body
    assert f"<Provider>{provider_arn(cloud, fake.url)}</Provider>" in answer.body


def test_raw_form_values_are_not_trusted(cloud: Cloud, fake: FakeIssuer) -> Any:
    """Parameters AWS does not define for this call change nothing (no SourceIdentity)."""
    answer = attempt(cloud, fake.token(), SourceIdentity="forged")
    assert answer.status == 200
    assert "forged" not in answer.body
