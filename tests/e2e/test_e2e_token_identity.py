"""Client workloads told apart by a token they present to the proxy (the aws CLI sends it as
the password in HTTPS_PROXY), verified by a trust provider."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latchkey.crypto.jwk import SigningKey
from latchkey_testing import aws, free_port, start_with_config

pytestmark = pytest.mark.e2e

ISSUER = "https://ci.example.test"

DOCS = """\
apiVersion: latchkey/v1
kind: TrustProvider
metadata: {name: ci}
spec: {type: oidc, issuer: "$issuer", jwks: {keys: [$jwk]}, audiences: [latchkey]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: billing}
spec:
  identities: [{token: {trustProvider: ci, claims: {sub: "repo:acme/billing:*"}}}]
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: other}
spec:
  identities: [{token: {trustProvider: ci, claims: {sub: "repo:acme/other:*"}}}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: billing-to-kms}
spec: {clients: [billing], server: aws-kms, credentialProvider: kms-federation}
"""


def test_token_identities(tmp_path: Path) -> None:
    key = SigningKey.generate()
    docs = DOCS.replace("$issuer", ISSUER).replace("$jwk", json.dumps(key.public_jwk()))
    now = int(time.time())

    def mint(sub: str, exp: int = now + 300) -> str:
        claims = {"iss": ISSUER, "sub": sub, "aud": "latchkey", "iat": now, "exp": exp}
        return key.sign_jwt(claims)

    billing = mint("repo:acme/billing:ref:refs/heads/main")
    other = mint("repo:acme/other:ref:refs/heads/main")
    expired = mint("repo:acme/billing:ref:refs/heads/main", exp=now - 600)
    proc = start_with_config(tmp_path, docs)
    try:
        base = proc.env()
        port = base["HTTPS_PROXY"].rsplit(":", 1)[1]

        def with_token(token: str | None) -> dict[str, str]:
            env = dict(base)
            if token is not None:
                env["HTTPS_PROXY"] = f"http://workload:{token}@127.0.0.1:{port}"
            return env

        allowed = aws(with_token(billing), "kms", "list-keys")
        assert json.loads(allowed.stdout)["Keys"] == []
        results = {
            name: aws(with_token(token), "kms", "list-keys", check=False)
            for name, token in [("other", other), ("expired", expired), ("none", None)]
        }
    finally:
        log = proc.stop()
    assert "NoMatchingPolicy" in results["other"].stderr
    assert "other" in results["other"].stderr
    assert "IdentityNotMatched" in results["expired"].stderr
    assert "token refused by trust provider 'ci': expired" in results["expired"].stderr
    assert "IdentityNotMatched" in results["none"].stderr
    assert "no token presented" in results["none"].stderr
    for token in (billing, other, expired):
        assert token not in log
        for result in results.values():
            assert token not in result.stderr


def test_token_relay_follows_a_rotating_token_file(tmp_path: Path) -> None:
    """A workload behind ``latchkey token-relay`` keeps one HTTPS_PROXY while its token file
    is replaced the way Kubernetes updates a projected token (a symlink swapped to a new
    file): each new connection carries the token the file holds at that moment."""
    key = SigningKey.generate()
    docs = DOCS.replace("$issuer", ISSUER).replace("$jwk", json.dumps(key.public_jwk()))
    now = int(time.time())

    def mint(sub: str) -> str:
        claims = {"iss": ISSUER, "sub": sub, "aud": "latchkey", "iat": now, "exp": now + 300}
        return key.sign_jwt(claims)

    tokens = tmp_path / "tokens"
    tokens.mkdir()

    def project(name: str, token: str) -> None:
        (tokens / name).write_text(token + "\n")
        link = tokens / "..data.tmp"
        link.symlink_to(name)
        link.replace(tokens / "token")  # atomic, as the kubelet does

    billing = mint("repo:acme/billing:ref:refs/heads/main")
    other = mint("repo:acme/other:ref:refs/heads/main")
    project("v1", billing)
    (tmp_path / "node").mkdir()
    proc = start_with_config(tmp_path / "node", docs)
    relay_port = free_port()
    try:
        base = proc.env()
        edge = base["HTTPS_PROXY"].rsplit("/", 1)[1]
        relay = subprocess.Popen(
            [sys.executable, "-m", "latchkey.cli.main", "token-relay",
             "--token-file", str(tokens / "token"), "--listen", f"127.0.0.1:{relay_port}",
             "--edge", edge],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert relay.stdout is not None
            assert "token relay on" in relay.stdout.readline()
            env = dict(base, HTTPS_PROXY=f"http://127.0.0.1:{relay_port}")
            first = aws(env, "kms", "list-keys", check=False)
            project("v2", other)
            second = aws(env, "kms", "list-keys", check=False)
            project("v3", billing)
            third = aws(env, "kms", "list-keys", check=False)
            (tokens / "token").unlink()
            missing = aws(env, "kms", "list-keys", check=False)
        finally:
            relay.terminate()
            relay_out, _ = relay.communicate(timeout=10)
    finally:
        log = proc.stop()
    assert first.returncode == 0, (first.stderr, relay_out)
    assert second.returncode != 0
    assert "NoMatchingPolicy" in second.stderr
    assert third.returncode == 0, third.stderr
    assert missing.returncode != 0
    assert "cannot read token file" in relay_out
    for token in (billing, other):
        assert token not in log
        assert token not in relay_out
        for result in (first, second, third, missing):
            assert token not in result.stderr
