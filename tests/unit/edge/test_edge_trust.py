"""Tokens presented to the proxy: extraction, verification by trust providers, matching."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from latchkey.clock import FrozenClock
from latchkey.control.model import Evidence, TokenCheck, TokenIdentity, TrustProvider
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.x509 import client_ssl_context, load_or_create_ca, server_ssl_context
from latchkey.edge.trust import TrustVerifier, extract_token

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
ISSUER = "https://tokens.example.test"
KEY = SigningKey.generate()
OTHER_KEY = SigningKey.generate()


def token(key: SigningKey = KEY, **overrides: object) -> str:
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": "system:serviceaccount:apps:billing",
        "aud": ["latchkey"],
        "iat": int(NOW.timestamp()) - 10,
        "exp": int(NOW.timestamp()) + 300,
    }
    claims.update(overrides)
    return key.sign_jwt({k: v for k, v in claims.items() if v is not None})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("Proxy-Authorization", "Bearer abc.def.ghi")], "abc.def.ghi"),
        ([("proxy-authorization", "bearer   abc")], "abc"),
        ([("Proxy-Authorization", basic("workload", "abc.def.ghi"))], "abc.def.ghi"),
        ([("Proxy-Authorization", basic("workload", ""))], None),
        ([("Proxy-Authorization", "Basic !!notbase64")], None),
        ([("Proxy-Authorization", "Digest x")], None),
        ([("Authorization", "Bearer abc")], None),
        ([], None),
    ],
)
def test_extract_token(headers: list[tuple[str, str]], expected: str | None) -> None:
    assert extract_token(headers) == expected


INLINE = TrustProvider(
    "k8s", "oidc", ISSUER, jwks={"keys": [KEY.public_jwk()]}, audiences=("latchkey",)
)


@pytest.mark.parametrize(
    ("presented", "error"),
    [
        (token(), None),
        (token(OTHER_KEY), "bad signature (no key with that kid)"),
        (token(exp=int(NOW.timestamp()) - 120), "expired"),
        (token(iss="https://evil.example"), "unknown issuer"),
        (token(aud="someone-else"), "wrong audience"),
        ("not-a-jwt", "malformed token"),
    ],
)
def test_inline_trust_provider(presented: str, error: str | None) -> None:
    verifier = TrustVerifier(FrozenClock(NOW), client_ssl_context())
    result = asyncio.run(verifier.check(INLINE, presented))
    assert result.error == error
    if error is None:
        assert result.claims is not None
        assert result.claims["sub"] == "system:serviceaccount:apps:billing"
    assert presented not in repr(result)


@pytest.fixture
def issuer_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A real HTTPS issuer on 127.0.0.1 (certificate from a test CA) serving discovery+JWKS."""
    ca = load_or_create_ca(tmp_path / "ca.pem", tmp_path / "ca-key.pem", now=NOW)
    cert, key = ca.mint_leaf(["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            base = f"https://127.0.0.1:{self.server.server_address[1]}"
            docs = {
                "/.well-known/openid-configuration": {"issuer": base, "jwks_uri": base + "/keys"},
                "/keys": {"keys": [KEY.public_jwk()]},
            }
            body = json.dumps(docs.get(self.path, {})).encode()
            self.send_response(200 if self.path in docs else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ssl_context(cert, key).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", tmp_path / "ca.pem", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_discovery_and_jwks_url_over_verified_https(
    issuer_server: tuple[str, Path, list[str]],
) -> None:
    url, ca_file, seen = issuer_server
    clock = FrozenClock(NOW)
    verifier = TrustVerifier(clock, client_ssl_context([ca_file], use_system_store=False))
    by_discovery = TrustProvider("gh", "oidc", url, audiences=("latchkey",))
    presented = token(iss=url)

    async def run() -> list[TokenCheck]:
        first = await verifier.check(by_discovery, presented)
        second = await verifier.check(by_discovery, presented)  # cached: no new fetch
        direct = await verifier.check(TrustProvider("gh2", "oidc", url, jwks_url=url + "/keys",
                                                    audiences=("latchkey",)),
                                      presented)  # fmt: skip
        return [first, second, direct]

    results = asyncio.run(run())
    assert [r.error for r in results] == [None, None, None]
    assert seen == ["/.well-known/openid-configuration", "/keys", "/keys"]

    untrusting = TrustVerifier(clock, client_ssl_context([], use_system_store=True))
    refused = asyncio.run(
        untrusting.check(TrustProvider("x", "oidc", url, audiences=("latchkey",)), presented)
    )
    assert refused.claims is None
    assert refused.error is not None
    assert "unavailable" in refused.error


@pytest.mark.parametrize(
    ("evidence", "why"),
    [
        (Evidence("127.0.0.1"), "no token presented"),
        (Evidence("127.0.0.1", token_presented=True, tokens={"k8s": TokenCheck(error="expired")}),
         "token refused by trust provider 'k8s': expired"),
        (Evidence("127.0.0.1", token_presented=True,
                  tokens={"k8s": TokenCheck(claims={"sub": "system:serviceaccount:apps:x"})}),
         None),
        (Evidence("127.0.0.1", token_presented=True,
                  tokens={"k8s": TokenCheck(claims={"sub": "system:serviceaccount:ops:x"})}),
         "token claim sub 'system:serviceaccount:ops:x' does not match"),
        (Evidence("127.0.0.1", token_presented=True, tokens={"k8s": TokenCheck(claims={})}),
         "token claim sub is missing"),
    ],
)  # fmt: skip
def test_token_identity(evidence: Evidence, why: str | None) -> None:
    identity = TokenIdentity("k8s", (("sub", "system:serviceaccount:apps:*"),))
    result = identity.check(evidence)
    if why is None:
        assert result is None
    else:
        assert result is not None
        assert result.startswith(why)


def _public_pem(key: SigningKey) -> str:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key.private_pem(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_trust_provider_with_a_pem_public_key() -> None:
    from latchkey.control.loader import load_config_text

    pem = _public_pem(KEY).replace("\n", "\n    ")
    config = load_config_text(
        "apiVersion: latchkey/v1\nkind: TrustProvider\nmetadata: {name: pem}\nspec:\n"
        f"  type: oidc\n  issuer: {ISSUER}\n  audiences: [latchkey]\n  publicKey: |\n    {pem}\n"
    )
    provider = config.trust_provider("pem")
    verifier = TrustVerifier(FrozenClock(NOW), client_ssl_context())
    assert asyncio.run(verifier.check(provider, token())).error is None
    assert asyncio.run(verifier.check(provider, token(OTHER_KEY))).error is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a key", "not a PEM public key"),
        (KEY.private_pem().decode(), "not a PEM public key"),
    ],
)
def test_bad_public_keys_are_config_errors(value: str, message: str) -> None:
    from latchkey.control.loader import ConfigError, load_config_text

    body = value.replace("\n", "\n    ")
    with pytest.raises(ConfigError, match=message):
        load_config_text(
            "apiVersion: latchkey/v1\nkind: TrustProvider\nmetadata: {name: pem}\nspec:\n"
            f"  type: oidc\n  issuer: {ISSUER}\n  audiences: [latchkey]\n"
            f"  publicKey: |\n    {body}\n"
        )
