"""Federation inside one node process: the edge's credential cache names both the credential
provider and the client workload to the idp, and a running node picks up a key rotation made
by another process (`latchkey idp rotate`) on its next token and JWKS request."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from latchkey.clock import SystemClock
from latchkey.crypto.jwt import verify_jwt
from latchkey.crypto.x509 import client_ssl_context
from latchkey.edge.credentials import CredentialCache
from latchkey.idp.keyring import Keyring
from latchkey_testing import NodeHandle

pytestmark = pytest.mark.e2e


def served_jwks(node: NodeHandle) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=node.info.ca_bundle)
    resp = httpx.get(node.info.idp + "/.well-known/jwks.json", verify=ctx, trust_env=False)
    assert resp.headers["cache-control"] == "max-age=300"
    doc = resp.json()
    assert isinstance(doc, dict)
    return doc


def test_the_edge_asks_for_a_token_per_provider_and_client(node: NodeHandle) -> None:
    issuer, config = node.node.issuer, node.node.config
    assert issuer is not None
    assert config is not None
    asked: list[dict[str, str]] = []
    tokens: list[str] = []

    def recording(*, provider: str, client: str, audience: str) -> str:
        asked.append({"provider": provider, "client": client, "audience": audience})
        tokens.append(issuer.workload_token(provider=provider, client=client, audience=audience))
        return tokens[-1]

    cache = CredentialCache(
        recording, node.node.clock, client_ssl_context([Path(node.info.ca_bundle)])
    )
    provider = config.credential_provider("kms-federation")
    client = config.client_workload("local-apps")
    creds = node.run(cache.get(provider, client))
    assert creds.access_key.startswith("ASIA")
    assert asked == [
        {"provider": "kms-federation", "client": "local-apps", "audience": "sts.amazonaws.com"}
    ]
    claims = verify_jwt(tokens[0], served_jwks(node))[1]
    assert claims["sub"] == "latchkey:kms-federation:local-apps"
    assert claims["latchkey"] == {
        "client_workload": "local-apps",
        "credential_provider": "kms-federation",
    }
    sts = node.client(
        "sts",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.session_token,
    )
    try:
        arn = sts.get_caller_identity()["Arn"]
    finally:
        sts.close()
    assert arn.startswith("arn:aws:sts::000000000000:assumed-role/latchkey-kms/")


def test_a_running_node_picks_up_a_rotation(node: NodeHandle) -> None:
    issuer, keyring = node.node.issuer, node.node.keyring
    assert issuer is not None
    assert keyring is not None
    before = keyring.active_kid
    assert [k["kid"] for k in served_jwks(node)["keys"]] == [before]

    # as `latchkey idp rotate` does it, from another process's view of the data directory
    other = Keyring.load(node.data_dir, SystemClock())
    new, _ = other.rotate("RS256", dt.timedelta(minutes=10))
    token = issuer.workload_token(provider="kms-federation", client="local-apps")
    served = served_jwks(node)
    assert [k["kid"] for k in served["keys"]] == [new.kid, before]
    header = verify_jwt(token, served)[0]
    assert (header["kid"], header["alg"]) == (new.kid, "RS256")

    # ...and the keyring file on disk says so, with private files only
    doc = json.loads((node.data_dir / "idp-keyring.json").read_text())
    assert [k["kid"] for k in doc["keys"]] == [before, new.kid]
    for name in ("idp-keyring.json", "idp-signing-key.pem", new.file):
        assert (node.data_dir / name).stat().st_mode & 0o077 == 0, name
