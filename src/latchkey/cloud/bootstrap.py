"""Start-up state of the local cloud: the account's admin key and the seed's federation setup.

These are the steps the seed document does by hand in the AWS console: an IAM OIDC identity
provider for latchkey's idp, and a role that trusts it with permission to use KMS.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from latchkey.aws.policy import (
    Decision,
    MalformedPolicyDocument,
    RequestContext,
    evaluate,
    parse_policy,
)
from latchkey.cloud.iam.ops import provider_url_key, unique_id
from latchkey.cloud.identity import ACCESS_KEY_KIND
from latchkey.control.model import Config
from latchkey.crypto.rootkey import RootKey
from latchkey.idp.issuer import subject_prefix
from latchkey.secretfile import read_secret_file, write_secret_file
from latchkey.store.base import AccessKeyRecord, OidcProviderRecord, RoleRecord, Store

log = logging.getLogger("latchkey.cloud.bootstrap")

ADMIN_FILE = "cloud-admin.json"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class AdminKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def ensure_admin_key(store: Store, root_key: RootKey, data_dir: Path, account: str) -> AdminKey:
    """The account root user's access key: made once, kept 0600 in the data directory."""
    path = data_dir / ADMIN_FILE
    if path.exists():
        doc = json.loads(read_secret_file(path))
        key = AdminKey(doc["AccessKeyId"], doc["SecretAccessKey"])
        if store.load_access_key(key.access_key_id) is not None:
            return key
    else:
        alphabet = string.ascii_uppercase + string.digits
        key = AdminKey(
            "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
            base64.b64encode(secrets.token_bytes(30)).decode(),
        )
    store.save_access_key(
        AccessKeyRecord(
            access_key_id=key.access_key_id,
            wrapped_secret=root_key.wrap(
                ACCESS_KEY_KIND, key.access_key_id, key.secret_access_key.encode()
            ),
            principal_arn=f"arn:aws:iam::{account}:root",
            kind="root",
            created=time.time(),
        )
    )
    doc = {"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}
    write_secret_file(path, json.dumps(doc).encode())
    return key


def trust_policy(provider_arn: str, url_key: str, audience: str, subject_prefix: str) -> str:
    """Trust the idp for ``audience`` and every subject starting with ``subject_prefix``."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{url_key}:aud": audience},
                        "StringLike": {f"{url_key}:sub": f"{subject_prefix}*"},
                    },
                }
            ],
        }
    )


def _trusts(
    document: str, provider_arn: str, url_key: str, audience: str, subjects: Sequence[str]
) -> bool:
    """Whether ``document`` lets every one of ``subjects`` assume the role with this idp."""
    try:
        policy = parse_policy(document, require_principal=True)
    except MalformedPolicyDocument:
        return False
    for subject in subjects:
        ctx = RequestContext(
            action="sts:AssumeRoleWithWebIdentity",
            resource="*",
            principals=frozenset({provider_arn}),
            keys={f"{url_key}:aud": audience, f"{url_key}:sub": subject},
        )
        if evaluate(policy, ctx) is not Decision.ALLOW:
            return False
    return True


KMS_ALL_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }
)


def ensure_federation(
    store: Store,
    *,
    account: str,
    issuer_url: str,
    audience: str,
    role_arn: str,
    subject_prefix: str,
    clients: Sequence[str] = (),
) -> list[str]:
    """Create what is missing: the OIDC provider, the role, its KMS policy; return what was made.

    A role that exists but does not let this issuer's tokens in (for every subject
    ``subject_prefix + client``; with no clients, for a sample one) gets one more trust
    statement for it; its other statements are kept.
    """
    made = []
    url_key = provider_url_key(issuer_url)
    provider_arn = f"arn:aws:iam::{account}:oidc-provider/{url_key}"
    if store.load_oidc_provider(provider_arn) is None:
        store.save_oidc_provider(
            OidcProviderRecord(provider_arn, url_key, (audience,), (), time.time())
        )
        made.append(provider_arn)
    name = role_arn.rsplit("/", 1)[-1]
    if role_arn.split(":")[4] != account:
        return made
    subjects = [subject_prefix + client for client in clients] or [subject_prefix + "any-client"]
    wanted = trust_policy(provider_arn, url_key, audience, subject_prefix)
    existing = store.load_role(name)
    if existing is not None:
        if _trusts(existing.trust_policy, provider_arn, url_key, audience, subjects):
            return made
        # The idp moved (another port, another URL): add a statement for it, keep the rest.
        doc = json.loads(existing.trust_policy)
        statements = doc.get("Statement", [])
        if not isinstance(statements, list):
            statements = [statements]
        doc["Statement"] = [*statements, *json.loads(wanted)["Statement"]]
        store.update_role_trust_policy(name, json.dumps(doc))
        made.append(f"trust for {provider_arn} on {role_arn}")
        return made
    resource = role_arn.split(":", 5)[5]  # "role/[path/]name"
    path = resource[len("role") :].rsplit("/", 1)[0] + "/"
    store.save_role(
        RoleRecord(
            name=name,
            arn=role_arn,
            role_id=unique_id("AROA"),
            path=path,
            trust_policy=wanted,
            max_session_duration=43200,
            created=time.time(),
        )
    )
    store.put_role_policy(name, "latchkey-kms-access", KMS_ALL_POLICY)
    made.append(role_arn)
    return made


def _is_local_cloud(url: str | None, cloud: tuple[str, int]) -> bool:
    if url is None:
        return False
    parts = urlsplit(url)
    return parts.hostname in LOCAL_NAMES and parts.port == cloud[1]


def bootstrap_federation(
    store: Store, config: Config, *, account: str, cloud: tuple[str, int], issuer_url: str
) -> list[str]:
    """:func:`ensure_federation` for every STS-federation provider pointed at the local cloud
    (listening on ``cloud``), trusting the subjects of the provider's clients."""
    made: list[str] = []
    for provider in config.credential_providers:
        if provider.type != "aws-sts-federation" or not _is_local_cloud(
            provider.sts_endpoint, cloud
        ):
            continue
        if urlsplit(issuer_url).hostname not in LOCAL_NAMES:
            log.warning(
                "the local cloud reaches the idp at %s only if that URL leads to this idp "
                "(a reverse proxy, DNS; see docs/federation.md)",
                issuer_url,
            )
        clients = {
            client
            for policy in config.access_policies
            if policy.credential_provider == provider.name
            for client in policy.clients
        }
        made += ensure_federation(
            store,
            account=account,
            issuer_url=issuer_url,
            audience=provider.audience,
            role_arn=provider.role_arn,
            subject_prefix=subject_prefix(provider.name),
            clients=sorted(clients),
        )
    return made
