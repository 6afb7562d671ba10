"""The KMS operations the local cloud does not offer: each is answered, none silently ignored.

Custom key stores need an AWS CloudHSM cluster or an external key store proxy, and multi-Region
keys need other Regions to replicate into; the local cloud has neither. Their operations answer
``UnsupportedOperationException`` with the reason, after authentication and model validation
and before anything is looked up, so the answer reveals nothing about the account.

``DescribeCustomKeyStores`` tells the truth instead: the account has no custom key stores. It
answers an empty list (to a caller whose IAM policy allows ``kms:DescribeCustomKeyStores``), and
``CustomKeyStoreNotFoundException`` when asked for one store by id or name, as AWS does for an
account without stores.
"""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler

CUSTOM_KEY_STORES = (
    "Custom key stores are not supported by the latchkey local cloud: it has no AWS CloudHSM "
    "cluster or external key store proxy to keep keys in."
)
MULTI_REGION = (
    "Multi-Region keys are not supported by the latchkey local cloud: keys live in one Region "
    "and are never replicated."
)

#: Operation -> why the local cloud refuses it.
REASONS: dict[str, str] = {
    "CreateCustomKeyStore": CUSTOM_KEY_STORES,
    "ConnectCustomKeyStore": CUSTOM_KEY_STORES,
    "DisconnectCustomKeyStore": CUSTOM_KEY_STORES,
    "UpdateCustomKeyStore": CUSTOM_KEY_STORES,
    "DeleteCustomKeyStore": CUSTOM_KEY_STORES,
    "ReplicateKey": MULTI_REGION,
    "UpdatePrimaryRegion": MULTI_REGION,
}


def _refuse(reason: str) -> Handler:
    async def refuse(call: Call) -> dict[str, Any]:
        raise AwsError("UnsupportedOperationException", reason)

    return refuse


async def describe_custom_key_stores(call: Call) -> dict[str, Any]:
    authorize(call.keys.store, call.caller, "kms:DescribeCustomKeyStores", "*")
    for member in ("CustomKeyStoreId", "CustomKeyStoreName"):
        if member in call.params:
            raise AwsError(
                "CustomKeyStoreNotFoundException",
                f"Custom key store {call.params[member]} does not exist: this account has no "
                "custom key stores.",
            )
    return {"CustomKeyStores": [], "Truncated": False}


OPERATIONS: dict[str, Handler] = {
    **{name: _refuse(reason) for name, reason in REASONS.items()},
    "DescribeCustomKeyStores": describe_custom_key_stores,
}
READ_ONLY = frozenset({"DescribeCustomKeyStores"})
# Never KeyStorePassword or the XKS proxy credential.
AUDITABLE_PARAMS = frozenset(
    {"CustomKeyStoreId", "CustomKeyStoreName", "KeyId", "ReplicaRegion", "PrimaryRegion"}
)
