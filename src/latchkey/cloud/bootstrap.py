"""Start-up state of the local cloud: the account's admin key and the seed's federation setup.

These are the steps the seed document does by hand in the AWS console: an IAM OIDC identity
provider for latchkey's idp, and a role that trusts it with permission to use KMS.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

from latchkey.aws.policy import (
    Decision,
    MalformedPolicyDocument,
    RequestContext,
    evaluate,
    parse_policy,
)
from latchkey.cloud.iam.ops import provider_url_key, unique_id
from latchkey.cloud.identity import ACCESS_KEY_KIND
from latchkey.crypto.rootkey import RootKey
from latchkey.secretfile import read_secret_file, write_secret_file
from latchkey.store.base import AccessKeyRecord, OidcProviderRecord, RoleRecord, Store

ADMIN_FILE = "cloud-admin.json"


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


def trust_policy(provider_arn: str, url_key: str, audience: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{url_key}:aud": audience}},
                }
            ],
        }
    )


def _trusts(document: str, provider_arn: str, url_key: str, audience: str) -> bool:
    try:
        policy = parse_policy(document, require_principal=True)
    except MalformedPolicyDocument:
        return False
    ctx = RequestContext(
        action="sts:AssumeRoleWithWebIdentity",
        resource="*",
        principals=frozenset({provider_arn}),
        keys={f"{url_key}:aud": audience, f"{url_key}:sub": "*"},
    )
    return evaluate(policy, ctx) is Decision.ALLOW


KMS_ALL_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }
)


def ensure_federation(
    store: Store, *, account: str, issuer_url: str, audience: str, role_arn: str
) -> list[str]:
    """Create what is missing: the OIDC provider, the role, its KMS policy; return what was made."""
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
    existing = store.load_role(name)
    if existing is not None:
        if _trusts(existing.trust_policy, provider_arn, url_key, audience):
            return made
        # The idp moved (another port, another URL): add a statement for it, keep the rest.
        doc = json.loads(existing.trust_policy)
        statements = doc.get("Statement", [])
        if not isinstance(statements, list):
            statements = [statements]
        new = json.loads(trust_policy(provider_arn, url_key, audience))["Statement"]
        doc["Statement"] = [*statements, *new]
        store.update_role_trust_policy(name, json.dumps(doc))
        made.append(f"trust for {provider_arn} on {role_arn}")
        return made
    if existing is None:
        resource = role_arn.split(":", 5)[5]  # "role/[path/]name"
        path = resource[len("role") :].rsplit("/", 1)[0] + "/"
        store.save_role(
            RoleRecord(
                name=name,
                arn=role_arn,
                role_id=unique_id("AROA"),
                path=path,
                trust_policy=trust_policy(provider_arn, url_key, audience),
                max_session_duration=43200,
                created=time.time(),
            )
        )
        store.put_role_policy(name, "latchkey-kms-access", KMS_ALL_POLICY)
        made.append(role_arn)
    return made
