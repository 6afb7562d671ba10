"""A configuration change reaches the edge's credential cache: credentials fetched (from the
node's own STS) for a credential provider that is then edited are dropped at once, and the
edited provider's next request fetches anew, with its new settings."""

from __future__ import annotations

import json

from latchkey.edge.credentials import CredentialCache
from latchkey_testing import NodeHandle

PROVIDER = "kms-federation"
CLIENT = "local-apps"


def cache_of(node: NodeHandle) -> CredentialCache:
    cache = node.node.credentials
    assert cache is not None
    return cache


def get(node: NodeHandle) -> tuple[str, str]:
    """(access key, how) for the default policy's provider and client, on the node's loop."""
    control = node.node.control
    assert control is not None
    config = control.config
    provider = config.credential_provider(PROVIDER)
    client = next(c for c in config.client_workloads if c.name == CLIENT)
    creds, how = node.run(cache_of(node).get_with_result(provider, client))
    return creds.access_key, how


def test_editing_a_provider_drops_its_cached_credentials(node: NodeHandle) -> None:
    control = node.node.control
    assert control is not None
    first, how = get(node)
    assert how == "fetched"
    assert get(node) == (first, "cached")
    before = control.config.credential_provider(PROVIDER)

    spec = dict(control.get("CredentialProvider", PROVIDER).spec)
    spec["sessionDuration"] = 900
    document = json.dumps({"apiVersion": "latchkey/v1", "kind": "CredentialProvider",
                           "metadata": {"name": PROVIDER}, "spec": spec})  # fmt: skip

    async def apply() -> None:  # on the node's loop, like the control API
        control.apply([("edit.yaml", document)])

    node.run(apply())
    after = control.config.credential_provider(PROVIDER)
    assert after.session_duration == 900
    # converge dropped what was fetched for the provider as it was
    assert not [key for key in cache_of(node)._cache if key[0] == before]
    second, how = get(node)
    assert how == "fetched"
    assert second != first
