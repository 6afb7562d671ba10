"""The idp's HTTP answers: discovery and JWKS (at the root and under the issuer's path),
their caching headers, and the JWKS during and after a rotation's overlap."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from latchkey.clock import FrozenClock
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.jwt import InvalidToken, verify_jwt
from latchkey.http.h1 import Request, Response
from latchkey.http.server import Peer
from latchkey.idp.app import DeferredIdpApp, IdpApp
from latchkey.idp.issuer import Issuer
from latchkey.idp.keyring import Keyring

URL = "https://idp.example.com/tenants/a"


def get(app: IdpApp | DeferredIdpApp, path: str, method: str = "GET") -> Response:
    return asyncio.run(app(Request(method, path, []), Peer("127.0.0.1", 40000)))


def body(response: Response) -> dict[str, Any]:
    doc = json.loads(response.body)
    assert isinstance(doc, dict)
    return doc


def header(response: Response, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)


@pytest.fixture
def app(es256: SigningKey, clock: FrozenClock) -> IdpApp:
    return IdpApp(Issuer(URL, es256, clock))


@pytest.mark.parametrize("prefix", ["", "/tenants/a"])
def test_discovery_and_jwks_under_root_and_issuer_path(app: IdpApp, prefix: str) -> None:
    discovery = get(app, prefix + "/.well-known/openid-configuration")
    assert discovery.status == 200
    assert header(discovery, "Content-Type") == "application/json"
    assert header(discovery, "Cache-Control") == "max-age=300"
    doc = body(discovery)
    assert doc["issuer"] == URL
    assert doc["jwks_uri"] == URL + "/.well-known/jwks.json"
    jwks = get(app, prefix + "/.well-known/jwks.json")
    assert jwks.status == 200
    assert header(jwks, "Cache-Control") == "max-age=300"
    assert body(jwks) == app.issuer.jwks()


def test_other_paths_and_methods(app: IdpApp) -> None:
    missing = get(app, "/tenants/b/.well-known/jwks.json")
    assert missing.status == 404
    assert header(missing, "Cache-Control") == "no-store"
    assert get(app, "/.well-known/jwks.json", "POST").status == 405
    assert get(app, "/healthz").body == b"ok\n"
    assert get(app, "/.well-known/jwks.json?x=1").status == 200


def test_deferred_app_answers_503_until_ready(app: IdpApp) -> None:
    deferred = DeferredIdpApp()
    assert get(deferred, "/healthz").status == 503
    deferred.target = app
    assert get(deferred, "/healthz").status == 200


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_jwks_during_and_after_the_overlap(tmp_path: Path, clock: FrozenClock, alg: str) -> None:
    keyring = Keyring.open(tmp_path, clock, alg)
    issuer = Issuer(URL, keyring, clock)
    app = IdpApp(issuer)
    old_token = issuer.workload_token(provider="p1", client="c1")
    old_kid = keyring.signing_key().kid

    new, _ = keyring.rotate(overlap=dt.timedelta(seconds=120))
    new_token = issuer.workload_token(provider="p1", client="c1")
    served = body(get(app, "/.well-known/jwks.json"))
    assert [k["kid"] for k in served["keys"]] == [new.kid, old_kid]
    assert all(k["alg"] == alg for k in served["keys"])
    assert verify_jwt(old_token, served)[0]["kid"] == old_kid  # still verifies
    assert verify_jwt(new_token, served)[0]["kid"] == new.kid

    clock.advance(121)
    served = body(get(app, "/.well-known/jwks.json"))
    assert [k["kid"] for k in served["keys"]] == [new.kid]
    with pytest.raises(InvalidToken) as refused:
        verify_jwt(old_token, served)
    assert refused.value.reason == "unknown_kid"
    assert verify_jwt(new_token, served)[1]["sub"] == "latchkey:p1:c1"


def test_discovery_lists_the_algorithms_of_published_keys(
    tmp_path: Path, clock: FrozenClock
) -> None:
    keyring = Keyring.open(tmp_path, clock)
    app = IdpApp(Issuer(URL, keyring, clock))
    keyring.rotate("RS256", dt.timedelta(seconds=10))
    algs = body(get(app, "/.well-known/openid-configuration"))
    assert algs["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    clock.advance(10)
    algs = body(get(app, "/.well-known/openid-configuration"))
    assert algs["id_token_signing_alg_values_supported"] == ["RS256"]
