"""Who may do what, with IAM users, managed policies and session policies (real boto3, real
TLS). Sessions are written straight into the store the way STS writes them, so these tests
need nothing from STS but the record format."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest

from latchkey.cloud.identity import ACCESS_KEY_KIND, hash_session_token
from latchkey.store.base import AccessKeyRecord
from latchkey_testing import ACCOUNT, ROOT, Cloud, allow, deny, policy, refused

TRUST = policy({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"})


def session(
    cloud: Cloud, *, role: str | None = None, user: str | None = None, **context: Any
) -> dict[str, str]:
    """Temporary credentials as STS stores them: a role session (AssumeRole*) or a user's
    GetSessionToken session, with ``context`` (session policies) in its session_context."""
    store, root_key = cloud.node.node.store, cloud.node.node.root_key
    assert store is not None
    assert root_key is not None
    key_id = "ASIA" + secrets.token_hex(8).upper()
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    token = "LKSTS" + base64.b64encode(secrets.token_bytes(48)).decode()
    if role is not None:
        found = store.load_role(role)
        assert found is not None
        principal, role_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1", found.arn
        context = {"role_id": found.role_id, "session_name": "s1", **context}
    else:
        assert user is not None
        found_user = store.load_user(user)
        assert found_user is not None
        principal, role_arn = found_user.arn, None
        context = {"issued_by": "GetSessionToken", "user_id": found_user.user_id, **context}
    store.save_access_key(
        AccessKeyRecord(
            access_key_id=key_id,
            wrapped_secret=root_key.wrap(ACCESS_KEY_KIND, key_id, secret.encode()),
            principal_arn=principal,
            kind="session",
            created=time.time(),
            expiration=time.time() + 3600,
            session_token_sha256=hash_session_token(token),
            role_arn=role_arn,
            session_context=json.dumps(context),
        )
    )
    return {"AccessKeyId": key_id, "SecretAccessKey": secret, "SessionToken": token}


def role_with(iam: Any, name: str, *inline: dict[str, Any]) -> str:
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"])
    if inline:
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=policy(*inline))
    return arn


def managed(iam: Any, name: str, *statements: dict[str, Any]) -> str:
    return str(
        iam.create_policy(PolicyName=name, PolicyDocument=policy(*statements))["Policy"]["Arn"]
    )


def key_id(kms: Any, key_policy: str | None = None) -> str:
    extra = {"Policy": key_policy} if key_policy else {}
    return str(kms.create_key(**extra)["KeyMetadata"]["KeyId"])


# -- IAM users ----------------------------------------------------------------------------------


def test_user_with_a_managed_policy_can_encrypt_but_not_decrypt(
    cloud: Cloud, iam: Any, kms: Any
) -> None:
    iam.create_user(UserName="encryptor")
    arn = managed(iam, "encrypt-only", allow("kms:Encrypt"))
    iam.attach_user_policy(UserName="encryptor", PolicyArn=arn)
    user_kms = cloud.as_key("kms", iam.create_access_key(UserName="encryptor")["AccessKey"])
    target = key_id(kms)
    blob = user_kms.encrypt(KeyId=target, Plaintext=b"payload")["CiphertextBlob"]
    err = refused(user_kms.decrypt, CiphertextBlob=blob)
    assert err[:2] == ("AccessDeniedException", 400)
    assert (
        f"User: arn:aws:iam::{ACCOUNT}:user/encryptor is not authorized to perform: kms:Decrypt"
    ) in err.message
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"payload"
    # The managed policy is read at each call: detached, it grants nothing more.
    iam.detach_user_policy(UserName="encryptor", PolicyArn=arn)
    assert refused(user_kms.encrypt, KeyId=target, Plaintext=b"x").code == "AccessDeniedException"


def test_user_key_policy_and_explicit_deny(cloud: Cloud, iam: Any, kms: Any) -> None:
    iam.create_user(UserName="named")
    user_kms = cloud.as_key("kms", iam.create_access_key(UserName="named")["AccessKey"])
    user = f"arn:aws:iam::{ACCOUNT}:user/named"
    granted = key_id(kms, policy(allow("kms:*", ROOT), allow("kms:Encrypt", user)))
    user_kms.encrypt(KeyId=granted, Plaintext=b"x")  # the key policy names the user
    iam.put_user_policy(
        UserName="named", PolicyName="no", PolicyDocument=policy(deny("kms:Encrypt"))
    )
    err = refused(user_kms.encrypt, KeyId=granted, Plaintext=b"x")
    assert "explicit deny in an identity-based policy" in err.message


def test_iam_needs_an_identity_allow(cloud: Cloud, iam: Any) -> None:
    iam.create_user(UserName="reader")
    role_with(iam, "visible")
    role_with(iam, "hidden")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="p",
        PolicyDocument=policy(
            allow("iam:GetRole", Resource=f"arn:aws:iam::{ACCOUNT}:role/visible")
        ),
    )
    reader = cloud.as_key("iam", iam.create_access_key(UserName="reader")["AccessKey"])
    assert reader.get_role(RoleName="visible")["Role"]["RoleName"] == "visible"
    err = refused(reader.get_role, RoleName="hidden")
    assert err[:2] == ("AccessDenied", 403)
    assert "iam:GetRole on resource: arn:aws:iam::000000000000:role/hidden" in err.message
    for call, params in [
        (reader.list_roles, {}),
        (reader.create_user, {"UserName": "x"}),
        (reader.create_access_key, {"UserName": "reader"}),
        (reader.delete_role, {"RoleName": "visible"}),
        (reader.list_open_id_connect_providers, {}),
        (reader.create_policy, {"PolicyName": "p", "PolicyDocument": policy(allow("kms:*"))}),
    ]:
        assert refused(call, **params)[:2] == ("AccessDenied", 403)
    assert iam.get_role(RoleName="visible")  # nothing changed


def test_attach_condition_on_the_policy_arn(cloud: Cloud, iam: Any) -> None:
    good = managed(iam, "good", allow("kms:Encrypt"))
    bad = managed(iam, "bad", allow("kms:*"))
    iam.create_user(UserName="delegate")
    role_with(iam, "target")
    condition = {"ArnEquals": {"iam:PolicyARN": good}}
    iam.put_user_policy(
        UserName="delegate",
        PolicyName="p",
        PolicyDocument=policy(
            allow(["iam:AttachRolePolicy", "iam:DetachRolePolicy"], Condition=condition)
        ),
    )
    delegate = cloud.as_key("iam", iam.create_access_key(UserName="delegate")["AccessKey"])
    delegate.attach_role_policy(RoleName="target", PolicyArn=good)
    assert refused(delegate.attach_role_policy, RoleName="target", PolicyArn=bad).code == (
        "AccessDenied"
    )
    delegate.detach_role_policy(RoleName="target", PolicyArn=good)


# -- role sessions and session policies ---------------------------------------------------------


def test_role_session_uses_attached_managed_policies(cloud: Cloud, iam: Any, kms: Any) -> None:
    role_with(iam, "managed-role")
    iam.attach_role_policy(
        RoleName="managed-role", PolicyArn=managed(iam, "m", allow(["kms:Encrypt", "kms:Decrypt"]))
    )
    session_kms = cloud.as_key("kms", session(cloud, role="managed-role"))
    blob = session_kms.encrypt(KeyId=key_id(kms), Plaintext=b"x")["CiphertextBlob"]
    assert session_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    assert refused(session_kms.create_key).code == "AccessDeniedException"


def test_session_policy_narrows_the_role(cloud: Cloud, iam: Any, kms: Any) -> None:
    role_with(iam, "wide", allow("kms:*"))
    narrowed = cloud.as_key(
        "kms", session(cloud, role="wide", session_policies=[policy(allow("kms:Encrypt"))])
    )
    target = key_id(kms)
    blob = narrowed.encrypt(KeyId=target, Plaintext=b"x")["CiphertextBlob"]
    err = refused(narrowed.decrypt, CiphertextBlob=blob)
    assert err[:2] == ("AccessDeniedException", 400)
    assert "no session policy allows the kms:Decrypt action" in err.message
    # A session policy grants nothing the role lacks.
    role_with(iam, "narrow", allow("kms:Encrypt"))
    both = cloud.as_key(
        "kms", session(cloud, role="narrow", session_policies=[policy(allow("kms:*"))])
    )
    both.encrypt(KeyId=target, Plaintext=b"x")
    assert "no identity-based policy allows" in refused(both.decrypt, CiphertextBlob=blob).message


def test_session_policy_arns_are_resolved_at_each_call(cloud: Cloud, iam: Any, kms: Any) -> None:
    role_with(iam, "arn-role", allow("kms:*"))
    decrypt_only = managed(iam, "decrypt-only", allow("kms:Decrypt"))
    missing = f"arn:aws:iam::{ACCOUNT}:policy/never-made"
    target = key_id(kms)
    blob = kms.encrypt(KeyId=target, Plaintext=b"x")["CiphertextBlob"]
    by_arn = cloud.as_key(
        "kms", session(cloud, role="arn-role", session_policy_arns=[decrypt_only, missing])
    )
    assert by_arn.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    assert refused(by_arn.encrypt, KeyId=target, Plaintext=b"x").code == "AccessDeniedException"
    only_missing = cloud.as_key(
        "kms", session(cloud, role="arn-role", session_policy_arns=[missing])
    )
    assert refused(only_missing.decrypt, CiphertextBlob=blob).code == "AccessDeniedException"
    iam.delete_policy(PolicyArn=decrypt_only)
    assert refused(by_arn.decrypt, CiphertextBlob=blob).code == "AccessDeniedException"


def test_explicit_deny_in_a_session_policy_wins(cloud: Cloud, iam: Any, kms: Any) -> None:
    role_with(iam, "denied", allow("kms:*"))
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/denied/s1"
    target = key_id(kms, policy(allow("kms:*", ROOT), allow("kms:Encrypt", session_arn)))
    creds = session(
        cloud, role="denied", session_policies=[policy(allow("kms:*"), deny("kms:Encrypt"))]
    )
    err = refused(cloud.as_key("kms", creds).encrypt, KeyId=target, Plaintext=b"x")
    assert "explicit deny in a session policy" in err.message


@pytest.mark.parametrize(("named", "limited"), [("role", True), ("session", False)])
def test_key_policy_grants_and_session_policies(
    cloud: Cloud, iam: Any, kms: Any, named: str, limited: bool
) -> None:
    """AWS: session policies limit a resource policy's grant to the role ARN, not one naming
    the session's own ARN."""
    arn = role_with(iam, "keyed")  # no IAM policy at all
    principal = arn if named == "role" else f"arn:aws:sts::{ACCOUNT}:assumed-role/keyed/s1"
    target = key_id(kms, policy(allow("kms:*", ROOT), allow("kms:Encrypt", principal)))
    limited_kms = cloud.as_key(
        "kms", session(cloud, role="keyed", session_policies=[policy(allow("kms:Decrypt"))])
    )
    if limited:
        err = refused(limited_kms.encrypt, KeyId=target, Plaintext=b"x")
        assert "no session policy allows the kms:Encrypt action" in err.message
    else:
        limited_kms.encrypt(KeyId=target, Plaintext=b"x")
    plain = cloud.as_key("kms", session(cloud, role="keyed"))
    plain.encrypt(KeyId=target, Plaintext=b"x")  # without session policies: granted


def test_recreated_role_does_not_empower_old_sessions(cloud: Cloud, iam: Any, kms: Any) -> None:
    role_with(iam, "phoenix")
    old = cloud.as_key("kms", session(cloud, role="phoenix"))
    iam.delete_role(RoleName="phoenix")
    role_with(iam, "phoenix", allow("kms:*"))
    assert refused(old.list_keys).code == "AccessDeniedException"
    cloud.as_key("kms", session(cloud, role="phoenix")).list_keys()


def test_user_session_from_get_session_token(cloud: Cloud, iam: Any, kms: Any) -> None:
    iam.create_user(UserName="sessioned")
    iam.put_user_policy(
        UserName="sessioned",
        PolicyName="p",
        PolicyDocument=policy(allow(["kms:ListKeys", "iam:GetUser"])),
    )
    creds = session(cloud, user="sessioned")
    cloud.as_key("kms", creds).list_keys()  # the user's own policies apply
    assert refused(cloud.as_key("kms", creds).create_key).code == "AccessDeniedException"
    # AWS: GetSessionToken credentials call no IAM API without MFA (latchkey has none).
    err = refused(cloud.as_key("iam", creds).get_user)
    assert err[:2] == ("InvalidClientTokenId", 403)
