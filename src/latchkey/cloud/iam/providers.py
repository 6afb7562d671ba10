"""IAM OpenID Connect identity providers: the issuers STS federation trusts."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from latchkey.aws.queryproto import member_list
from latchkey.cloud.iam.common import (
    Call,
    already_exists,
    check,
    iso,
    length,
    limit_exceeded,
    no_such_entity,
    paginate,
    provider_url_key,
    required,
    validation,
)
from latchkey.cloud.iam.tags import add_tags, tag_keys_param, tags_param, tags_shape
from latchkey.store.base import Conflict, OidcProviderRecord

MAX_CLIENT_IDS = 100
MAX_THUMBPRINTS = 5
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")


def provider_arn(account: str, url_key: str) -> str:
    return f"arn:aws:iam::{account}:oidc-provider/{url_key}"


def _client_ids(params: Mapping[str, str]) -> tuple[str, ...]:
    ids: list[str] = []
    for number, client_id in enumerate(member_list(params, "ClientIDList"), 1):
        if not 1 <= len(client_id) <= 255:
            raise validation(
                f"clientIDList.{number}.member", client_id, "Member must have length 1 to 255"
            )
        if client_id not in ids:
            ids.append(client_id)
    if len(ids) > MAX_CLIENT_IDS:
        raise limit_exceeded(
            f"Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
        )
    return tuple(ids)


def _thumbprints(params: Mapping[str, str]) -> tuple[str, ...]:
    prints: list[str] = []
    for number, thumbprint in enumerate(member_list(params, "ThumbprintList"), 1):
        if not _THUMBPRINT.fullmatch(thumbprint):
            raise validation(
                f"thumbprintList.{number}.member", thumbprint, "Member must be 40 hex digits"
            )
        if thumbprint.lower() not in (p.lower() for p in prints):
            prints.append(thumbprint)
    if len(prints) > MAX_THUMBPRINTS:
        raise limit_exceeded(
            f"Cannot exceed quota for ThumbprintsPerOpenIdConnectProvider: {MAX_THUMBPRINTS}"
        )
    return tuple(prints)


def _load(call: Call, action: str) -> OidcProviderRecord:
    """The provider named by ``OpenIDConnectProviderArn``, after authorizing ``action``."""
    arn = length(call.params, "OpenIDConnectProviderArn", 20, 2048,
                 required(call.params, "OpenIDConnectProviderArn"))  # fmt: skip
    check(call, action, arn)
    provider = call.store.load_oidc_provider(arn)
    if provider is None:
        raise no_such_entity(f"OpenIDConnect Provider not found for arn {arn}")
    return provider


async def create_open_id_connect_provider(call: Call) -> dict[str, Any]:
    url = provider_url_key(required(call.params, "Url"))
    arn = provider_arn(call.account, url)
    check(call, "iam:CreateOpenIDConnectProvider", arn)
    client_ids = _client_ids(call.params)
    thumbprints = _thumbprints(call.params)
    tags = tuple(sorted(tags_param(call.params, arn)))
    record = OidcProviderRecord(arn, url, client_ids, thumbprints, time.time(), tags)
    try:
        call.store.save_oidc_provider(record)
    except Conflict:
        raise already_exists(f"Provider with url https://{url} already exists.") from None
    return {"OpenIDConnectProviderArn": arn, "Tags": tags_shape(tags)}


async def get_open_id_connect_provider(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:GetOpenIDConnectProvider")
    return {
        "Url": provider.url,
        "ClientIDList": list(provider.client_ids),
        "ThumbprintList": list(provider.thumbprints),
        "CreateDate": iso(provider.created),
        "Tags": tags_shape(provider.tags),
    }


async def list_open_id_connect_providers(call: Call) -> dict[str, Any]:
    check(call, "iam:ListOpenIDConnectProviders", "*")
    providers = call.store.list_oidc_providers()
    return {"OpenIDConnectProviderList": [{"Arn": p.arn} for p in providers]}


async def delete_open_id_connect_provider(call: Call) -> dict[str, Any]:
    """Idempotent, as AWS documents: deleting an unknown provider is not an error."""
    arn = required(call.params, "OpenIDConnectProviderArn")
    check(call, "iam:DeleteOpenIDConnectProvider", arn)
    call.store.delete_oidc_provider(arn)
    return {}


async def add_client_id_to_open_id_connect_provider(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:AddClientIDToOpenIDConnectProvider")
    client_id = length(call.params, "ClientID", 1, 255, required(call.params, "ClientID"))
    if client_id in provider.client_ids:
        return {}
    if len(provider.client_ids) >= MAX_CLIENT_IDS:
        raise limit_exceeded(
            f"Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
        )
    call.store.update_oidc_provider(provider.arn, client_ids=(*provider.client_ids, client_id))
    return {}


async def remove_client_id_from_open_id_connect_provider(call: Call) -> dict[str, Any]:
    """Idempotent: removing a client ID the provider does not have is not an error."""
    provider = _load(call, "iam:RemoveClientIDFromOpenIDConnectProvider")
    client_id = length(call.params, "ClientID", 1, 255, required(call.params, "ClientID"))
    remaining = tuple(c for c in provider.client_ids if c != client_id)
    if remaining != provider.client_ids:
        call.store.update_oidc_provider(provider.arn, client_ids=remaining)
    return {}


async def update_open_id_connect_provider_thumbprint(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:UpdateOpenIDConnectProviderThumbprint")
    call.store.update_oidc_provider(provider.arn, thumbprints=_thumbprints(call.params))
    return {}


async def tag_open_id_connect_provider(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:TagOpenIDConnectProvider")
    add_tags(call, provider.arn)
    return {}


async def untag_open_id_connect_provider(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:UntagOpenIDConnectProvider")
    call.store.untag_resource(provider.arn, tag_keys_param(call.params))
    return {}


async def list_open_id_connect_provider_tags(call: Call) -> dict[str, Any]:
    provider = _load(call, "iam:ListOpenIDConnectProviderTags")
    page, extra = paginate(call.params, provider.tags, key=lambda tag: tag[0])
    return {"Tags": tags_shape(tuple(page)), **extra}
