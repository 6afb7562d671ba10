"""Federation set up by hand, as docs/federation.md shows it: the plain aws CLI against a real
`latchkey up`, with ES256 and RS256 idp keys, a key rotation with its overlap, and an issuer URL
that is not the listen address."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from latchkey.crypto.jwt import InvalidToken, verify_jwt
from latchkey_testing import VENV_BIN, UpProcess, aws, free_port, start_up_process

pytestmark = pytest.mark.e2e

ACCOUNT = "000000000000"
AUDIENCE = "sts.amazonaws.com"
PLAINTEXT = b"federated-by-hand"
OVERLAP = 8  # seconds: long enough for the calls made during it, even on a slow machine


def latchkey(*args: str) -> str:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), *args], capture_output=True, text=True, check=True
    ).stdout


def idp_token(proc: UpProcess, client: str = "ci-runner", **opts: str) -> str:
    extra = [item for name, value in opts.items() for item in (f"--{name}", value)]
    return latchkey(
        "idp", "token", "--data-dir", str(proc.data_dir), "--client", client,
        "--audience", AUDIENCE, *extra,
    ).strip()  # fmt: skip


def fetch_json(url: str, ca_bundle: str) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=ca_bundle)
    resp = httpx.get(url, verify=ctx, trust_env=False, timeout=10)
    assert resp.status_code == 200, url
    assert resp.headers["cache-control"] == "max-age=300"
    doc = resp.json()
    assert isinstance(doc, dict)
    return doc


def served_jwks(proc: UpProcess) -> dict[str, Any]:
    discovery = fetch_json(proc.info.idp + "/.well-known/openid-configuration", proc.info.ca_bundle)
    assert discovery["issuer"] == proc.info.idp
    assert discovery["jwks_uri"] == proc.info.idp + "/.well-known/jwks.json"
    return fetch_json(discovery["jwks_uri"], proc.info.ca_bundle)


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    doc = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert isinstance(doc, dict)
    return doc


def assume(admin: dict[str, str], role_arn: str, token: str, *, check: bool = True) -> Any:
    result = aws(
        admin, "sts", "assume-role-with-web-identity", "--role-arn", role_arn,
        "--role-session-name", "by-hand", "--web-identity-token", token, check=check,
    )  # fmt: skip
    return json.loads(result.stdout) if check else result


def session_env(admin: dict[str, str], creds: dict[str, str]) -> dict[str, str]:
    return admin | {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


def create_role_by_hand(admin: dict[str, str], issuer: str, name: str, provider: str) -> str:
    """The console steps, with the aws CLI: OIDC provider, role trusting :aud and :sub, policy."""
    url_key = issuer.removeprefix("https://")
    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url_key}"
    made = aws(
        admin, "iam", "create-open-id-connect-provider", "--url", issuer,
        "--client-id-list", AUDIENCE, "--thumbprint-list", "0" * 40, check=False,
    )  # fmt: skip
    assert made.returncode != 0  # `latchkey up` registered its own idp already
    assert "EntityAlreadyExists" in made.stderr
    got = json.loads(
        aws(admin, "iam", "get-open-id-connect-provider",
            "--open-id-connect-provider-arn", provider_arn).stdout
    )  # fmt: skip
    assert AUDIENCE in got["ClientIDList"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {f"{url_key}:aud": AUDIENCE},
                "StringLike": {f"{url_key}:sub": f"latchkey:{provider}:*"},
            },
        }],
    }  # fmt: skip
    role = json.loads(
        aws(admin, "iam", "create-role", "--role-name", name,
            "--assume-role-policy-document", json.dumps(trust)).stdout
    )["Role"]  # fmt: skip
    permissions = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kms:CreateKey", "kms:Encrypt",
                       "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}],
    }  # fmt: skip
    aws(admin, "iam", "put-role-policy", "--role-name", name, "--policy-name", "kms-use",
        "--policy-document", json.dumps(permissions))  # fmt: skip
    return str(role["Arn"])


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_federation_by_hand_with_the_aws_cli(tmp_path: Path, algorithm: str) -> None:
    proc = start_up_process(tmp_path / "data", "--idp-algorithm", algorithm)
    try:
        jwks = served_jwks(proc)
        assert [k["alg"] for k in jwks["keys"]] == [algorithm]
        admin = proc.env("--cloud-admin")
        role_arn = create_role_by_hand(admin, proc.info.idp, "hand-made-kms", "hand-made")

        token = idp_token(proc, provider="hand-made")
        header, claims = verify_jwt(token, jwks)
        assert (header["alg"], header["kid"]) == (algorithm, jwks["keys"][0]["kid"])
        assert claims["sub"] == "latchkey:hand-made:ci-runner"
        assert claims["iss"] == proc.info.idp
        assumed = assume(admin, role_arn, token)
        assert assumed["SubjectFromWebIdentityToken"] == "latchkey:hand-made:ci-runner"
        assert assumed["AssumedRoleUser"]["Arn"].endswith(":assumed-role/hand-made-kms/by-hand")

        session = session_env(admin, assumed["Credentials"])
        key_id = json.loads(aws(session, "kms", "create-key").stdout)["KeyMetadata"]["KeyId"]
        (tmp_path / "plain").write_bytes(PLAINTEXT)
        blob = json.loads(
            aws(session, "kms", "encrypt", "--key-id", key_id,
                "--plaintext", f"fileb://{tmp_path / 'plain'}").stdout
        )["CiphertextBlob"]  # fmt: skip
        (tmp_path / "blob").write_bytes(base64.b64decode(blob))
        blob_arg = f"fileb://{tmp_path / 'blob'}"
        decrypted = aws(session, "kms", "decrypt", "--ciphertext-blob", blob_arg).stdout
        assert base64.b64decode(json.loads(decrypted)["Plaintext"]) == PLAINTEXT

        # the role pins the provider: a token of another provider's client is refused
        other = assume(admin, role_arn, idp_token(proc, provider="kms-federation"), check=False)
        assert other.returncode != 0
        assert "AccessDenied" in other.stderr
        # and the edge federates through the bootstrap role with this algorithm too
        listed = json.loads(aws(proc.env(), "kms", "list-keys").stdout)
        assert key_id in [k["KeyId"] for k in listed["Keys"]]
    finally:
        proc.stop()


def test_rotation_keeps_the_old_key_for_the_overlap(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    proc = start_up_process(data, "--idp", f"127.0.0.1:{port}")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/latchkey-kms"
    try:
        admin = proc.env("--cloud-admin")
        old = idp_token(proc)
        rotated_at = time.monotonic()
        rotated = latchkey("idp", "rotate", "--data-dir", str(data), "--overlap", str(OVERLAP))
        new = idp_token(proc)
        old_kid, new_kid = header_of(old)["kid"], header_of(new)["kid"]
        assert old_kid != new_kid
        assert f"new key {new_kid}" in rotated
        # the running node serves both keys without a restart; both tokens federate
        assert [k["kid"] for k in served_jwks(proc)["keys"]] == [new_kid, old_kid]
        assert assume(admin, role_arn, old)["Credentials"]["AccessKeyId"].startswith("ASIA")
        assert assume(admin, role_arn, new)["Credentials"]["AccessKeyId"].startswith("ASIA")
        aws(proc.env(), "kms", "list-keys")  # the edge, on tokens signed by the new key
        assert time.monotonic() - rotated_at < OVERLAP, "too slow to prove the overlap"

        # wait out the retirement time the command printed (whole seconds, from its own clock)
        until = re.search(r"stays in the JWKS until (\S+)", rotated)
        assert until is not None, rotated
        retire_at = dt.datetime.fromisoformat(until.group(1).replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, retire_at + 0.5 - time.time()))
        # the overlap is over: the old key is no longer published
        jwks = served_jwks(proc)
        assert [k["kid"] for k in jwks["keys"]] == [new_kid]
        with pytest.raises(InvalidToken) as refused:
            verify_jwt(old, jwks)
        assert refused.value.reason == "unknown_kid"
        assert verify_jwt(new, jwks)[0]["kid"] == new_kid
    finally:
        proc.stop()
    # STS caches a JWKS for minutes; a fresh cloud (same issuer URL) fetches it anew
    again = start_up_process(data, "--idp", f"127.0.0.1:{port}")
    try:
        admin = again.env("--cloud-admin")
        refused_old = assume(admin, role_arn, old, check=False)
        assert refused_old.returncode != 0
        assert "InvalidIdentityToken" in refused_old.stderr
        assert assume(admin, role_arn, new)["Credentials"]["AccessKeyId"].startswith("ASIA")
    finally:
        again.stop()


def test_issuer_url_other_than_the_listen_address(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"https://localhost:{port}/tenants/a"
    proc = start_up_process(tmp_path / "data", "--idp", f"127.0.0.1:{port}", "--idp-issuer", issuer)
    try:
        assert proc.info.idp == issuer
        assert served_jwks(proc)["keys"]  # discovery names the issuer exactly, JWKS under it
        status = json.loads(latchkey("status", "--json", "--data-dir", str(proc.data_dir)))
        assert status["ready"] is True
        assert status["parts"]["idp"]["url"] == issuer
        claims = verify_jwt(idp_token(proc), served_jwks(proc))[1]
        assert claims["iss"] == issuer
        provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/localhost:{port}/tenants/a"
        admin = proc.env("--cloud-admin")
        aws(admin, "iam", "get-open-id-connect-provider",
            "--open-id-connect-provider-arn", provider_arn)  # fmt: skip
        # the edge federates: the local STS fetched discovery from the issuer URL
        aws(proc.env(), "kms", "list-keys")
    finally:
        proc.stop()


def test_up_refuses_a_bad_issuer_url_or_a_broken_idp_key(tmp_path: Path) -> None:
    def up(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(data),
             "--edge", "0", "--cloud", "0", "--idp", "0", *args],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    bad_url = up(tmp_path / "a", "--idp-issuer", "http://idp.example.com")
    assert bad_url.returncode == 2
    assert "--idp-issuer" in bad_url.stderr
    assert "must be https" in bad_url.stderr

    data = tmp_path / "b"
    data.mkdir(mode=0o700)
    (data / "idp-signing-key.pem").write_bytes(b"not a key")
    (data / "idp-signing-key.pem").chmod(0o600)
    broken = up(data)
    assert broken.returncode == 1
    assert "idp: cannot migrate" in broken.stderr
    assert "Traceback" not in broken.stderr
