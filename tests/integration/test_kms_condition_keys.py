"""KMS condition keys AWS documents and policies rely on (real boto3, real node):
kms:BypassPolicyLockoutSafetyCheck, kms:RequestAlias on ReEncrypt, the key's own properties
(kms:KeyOrigin, kms:MultiRegion, the deprecated kms:CustomerMasterKeySpec/...KeyUsage), the
lockout safety check judged with them, and grant constraints' case-insensitive keys."""

from __future__ import annotations

from typing import Any

from latchkey_testing import ROOT, Cloud, allow, deny, policy, refused

ADMIN = allow("kms:*", ROOT)  # the default key policy: delegates to IAM
BYPASS = "kms:BypassPolicyLockoutSafetyCheck"


def user_kms(cloud: Cloud, name: str, *statements: dict[str, Any]) -> tuple[Any, str]:
    """An IAM user (``statements`` its inline policy, if any): (its KMS client, its ARN)."""
    iam = cloud.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    return cloud.as_key("kms", iam.create_access_key(UserName=name)["AccessKey"]), str(arn)


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def denied(call: Any, **kw: Any) -> bool:
    return refused(call, **kw)[:2] == ("AccessDeniedException", 400)


def when(statement: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    return statement | {"Condition": condition}


# -- kms:BypassPolicyLockoutSafetyCheck ---------------------------------------------------------


def test_iam_guard_against_bypassing_the_lockout_check(cloud: Cloud, kms: Any) -> None:
    """AWS's own example: Deny CreateKey/PutKeyPolicy when the bypass is true."""
    guard = {"Effect": "Deny", "Action": ["kms:CreateKey", "kms:PutKeyPolicy"],
             "Resource": "*", "Condition": {"Bool": {BYPASS: "true"}}}  # fmt: skip
    app, _ = user_kms(cloud, "guarded", allow("kms:*"), guard)
    key_id, _ = new_key(kms)
    locked = policy(allow("kms:Encrypt", ROOT))
    assert denied(app.create_key, Policy=locked, BypassPolicyLockoutSafetyCheck=True)
    assert denied(app.put_key_policy, KeyId=key_id, PolicyName="default", Policy=locked,
                  BypassPolicyLockoutSafetyCheck=True)  # fmt: skip
    # Without the bypass (absent, or false) the guard does not apply.
    app.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(ADMIN),
                       BypassPolicyLockoutSafetyCheck=False)  # fmt: skip
    app.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(ADMIN))
    new_key(app, Policy=policy(ADMIN), BypassPolicyLockoutSafetyCheck=False)


def test_key_policy_allows_put_only_while_the_bypass_is_absent(cloud: Cloud, kms: Any) -> None:
    """AWS's Null example: the key is present, true or false, whenever the request has it."""
    app, arn = user_kms(cloud, "careful")
    keep = policy(ADMIN, when(allow("kms:PutKeyPolicy", arn), {"Null": {BYPASS: "true"}}))
    key_id, _ = new_key(kms, Policy=keep)
    app.put_key_policy(KeyId=key_id, PolicyName="default", Policy=keep)
    for bypass in (True, False):
        assert denied(app.put_key_policy, KeyId=key_id, PolicyName="default", Policy=keep,
                      BypassPolicyLockoutSafetyCheck=bypass)  # fmt: skip


# -- kms:RequestAlias on ReEncrypt ----------------------------------------------------------------


def test_reencrypt_request_alias_is_the_alias_naming_each_key(cloud: Cloud, kms: Any) -> None:
    app, _ = user_kms(cloud, "reencrypter", allow("kms:*"))

    def key_refusing(alias: str) -> str:
        refuse = when(deny("kms:*", "*"), {"StringEquals": {"kms:RequestAlias": alias}})
        key_id, _ = new_key(kms, Policy=policy(ADMIN, refuse))
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return key_id

    source, destination = key_refusing("alias/src-blocked"), key_refusing("alias/dst-blocked")
    blob = kms.encrypt(KeyId=source, Plaintext=b"x")["CiphertextBlob"]
    assert denied(app.re_encrypt, CiphertextBlob=blob, DestinationKeyId="alias/dst-blocked")
    assert denied(app.re_encrypt, CiphertextBlob=blob, SourceKeyId="alias/src-blocked",
                  DestinationKeyId=destination)  # fmt: skip
    # The same keys named otherwise (key id, another alias) are not refused.
    app.re_encrypt(CiphertextBlob=blob, SourceKeyId=source, DestinationKeyId=destination)
    kms.create_alias(AliasName="alias/dst-open", TargetKeyId=destination)
    moved = app.re_encrypt(CiphertextBlob=blob, DestinationKeyId="alias/dst-open")
    assert moved["KeyId"].endswith(destination)


# -- the key's own properties -----------------------------------------------------------------


def test_key_properties_are_condition_keys_of_key_operations(cloud: Cloud, kms: Any) -> None:
    only_single_region_symmetric = {
        "StringEquals": {"kms:KeyOrigin": "AWS_KMS",
                         "kms:CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                         "kms:CustomerMasterKeyUsage": "ENCRYPT_DECRYPT"},
        "Bool": {"kms:MultiRegion": "false"},
    }  # fmt: skip
    no_imported = when(deny("kms:DescribeKey"), {"StringEquals": {"kms:KeyOrigin": "EXTERNAL"}})
    encrypt = when(allow("kms:Encrypt"), only_single_region_symmetric)
    app, _ = user_kms(cloud, "props", encrypt, no_imported, allow("kms:DescribeKey"))
    key_id, _ = new_key(kms)
    app.encrypt(KeyId=key_id, Plaintext=b"x")
    app.describe_key(KeyId=key_id)
    hmac_key, _ = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    assert denied(app.encrypt, KeyId=hmac_key, Plaintext=b"x")
    imported, _ = new_key(kms, Origin="EXTERNAL")
    assert denied(app.describe_key, KeyId=imported)


def test_create_key_condition_keys(cloud: Cloud) -> None:
    """AWS's example allows creating only single-Region keys (kms:MultiRegion is always
    present); the deprecated spec name works as kms:KeySpec does."""
    conditions = {"Bool": {"kms:MultiRegion": "false"},
                  "StringEquals": {"kms:CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                                   "kms:CustomerMasterKeyUsage": "ENCRYPT_DECRYPT"}}  # fmt: skip
    app, _ = user_kms(cloud, "creator", when(allow("kms:CreateKey"), conditions))
    new_key(app)
    new_key(app, MultiRegion=False)
    assert denied(app.create_key, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")


# -- the lockout safety check sees the key ------------------------------------------------------


def test_lockout_check_judges_the_policy_on_the_key(cloud: Cloud, kms: Any) -> None:
    app, arn = user_kms(cloud, "keeper")
    key_id, key_arn = new_key(kms, Policy=policy(ADMIN, allow("kms:*", arn)))
    symmetric_only = when(
        allow("kms:*", arn), {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}
    )
    app.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(symmetric_only))
    # Its own ARN as the Resource is the key, too.
    on_the_key = allow("kms:*", arn) | {"Resource": key_arn}
    app.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(on_the_key))
    # A condition the key does not meet is still a lockout.
    rsa_only = when(allow("kms:*", arn), {"StringEquals": {"kms:KeySpec": "RSA_2048"}})
    err = refused(app.put_key_policy, KeyId=key_id, PolicyName="default", Policy=policy(rsa_only))
    assert err[:2] == ("MalformedPolicyDocumentException", 400)


def test_create_key_lockout_check_judges_the_new_key(cloud: Cloud) -> None:
    app, arn = user_kms(cloud, "maker", allow("kms:CreateKey"))
    kept = when(allow("kms:*", arn), {"StringEquals": {"kms:KeyOrigin": "AWS_KMS"},
                                      "Bool": {"kms:MultiRegion": "false"}})  # fmt: skip
    new_key(app, Policy=policy(kept))
    imported_only = when(allow("kms:*", arn), {"StringEquals": {"kms:KeyOrigin": "EXTERNAL"}})
    err = refused(app.create_key, Policy=policy(imported_only))
    assert err[:2] == ("MalformedPolicyDocumentException", 400)
    new_key(app, Policy=policy(imported_only), Origin="EXTERNAL")


# -- grant constraints: keys without case -------------------------------------------------------


def test_child_grant_constraint_keys_are_not_case_sensitive(cloud: Cloud, kms: Any) -> None:
    app, arn = user_kms(cloud, "parent")
    _, child = user_kms(cloud, "child")
    key_id, _ = new_key(kms)
    kms.create_grant(KeyId=key_id, GranteePrincipal=arn, Operations=["CreateGrant", "Decrypt"],
                     Constraints={"EncryptionContextSubset": {"Team": "x"}})  # fmt: skip
    base = {"KeyId": key_id, "GranteePrincipal": child, "Operations": ["Decrypt"]}
    app.create_grant(**base, Constraints={"EncryptionContextSubset": {"team": "x"}})
    assert denied(app.create_grant, **base, Constraints={"EncryptionContextSubset": {"team": "X"}})
