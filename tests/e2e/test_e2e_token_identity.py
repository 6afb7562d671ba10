"""Client workloads told apart by a token they present to the proxy (the aws CLI sends it as
the password in HTTPS_PROXY), verified by a trust provider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latchkey_testing import TokenClients, aws, free_port, start_with_config

pytestmark = pytest.mark.e2e


def test_token_identities(tmp_path: Path) -> None:
    clients = TokenClients.generate()
    billing = clients.token("repo:acme/billing:ref:refs/heads/main")
    other = clients.token("repo:acme/other:ref:refs/heads/main")
    expired = clients.token("repo:acme/billing:ref:refs/heads/main", lifetime=-600)
    proc = start_with_config(tmp_path, clients.docs)
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
    clients = TokenClients.generate()
    mint = clients.token

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
    proc = start_with_config(tmp_path / "node", clients.docs)
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
