"""KMS grants as AWS has them: CreateGrant / ListGrants / ListRetirableGrants / RetireGrant /
RevokeGrant, and grants allowing calls that no key policy or IAM policy allows (real boto3,
real TLS, role sessions through the node's OIDC issuer)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from latchkey.cloud.kms import grants as grants_module
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROOT,
    Cloud,
    allow,
    deny,
    policy,
    refused,
    start_node_thread,
    stop_node_thread,
)

ONLY_ADMIN = policy(allow("kms:*", ROOT))  # the default key policy: delegates to IAM


def role_session(
    cloud: Cloud, name: str, inline: str | None = None, **assume: str
) -> tuple[Any, str]:
    """A role trusting the node's idp (``inline`` its only IAM policy), assumed as session
    ``s1`` (``assume``: more AssumeRoleWithWebIdentity parameters): (a KMS client signing as
    the session, the role ARN)."""
    host_port = urlsplit(cloud.node.info.idp).netloc
    trust = {"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_port}"},
             "Condition": {"StringEquals": {f"{host_port}:aud": AUDIENCE}}}  # fmt: skip
    iam = cloud.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy(trust))["Role"]["Arn"]
    if inline is not None:
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=inline)
    issuer = cloud.node.node.issuer
    assert issuer is not None
    resp = cloud.client("sts").assume_role_with_web_identity(
        RoleArn=arn, RoleSessionName="s1", WebIdentityToken=issuer.mint("app", AUDIENCE), **assume
    )
    return cloud.as_key("kms", resp["Credentials"]), str(arn)


def new_key(kms: Any, key_policy: str | None = None, **extra: Any) -> str:
    if key_policy is not None:
        extra["Policy"] = key_policy
    return str(kms.create_key(**extra)["KeyMetadata"]["KeyId"])


def denied(call: Any, **kw: Any) -> bool:
    return refused(call, **kw)[:2] == ("AccessDeniedException", 400)


# -- grants allow what policy does not ----------------------------------------------------------


@pytest.mark.parametrize("end", ["revoke", "retire"])
def test_grant_lets_a_role_use_a_key_until_it_ends(cloud: Cloud, kms: Any, end: str) -> None:
    app, role = role_session(cloud, "grantee")
    key_id = new_key(kms)
    assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x")

    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=role,
                             Operations=["Encrypt", "Decrypt"])  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", grant["GrantId"])
    token = grant["GrantToken"]
    assert token
    assert grant["GrantId"] not in token
    # Without the token (grants are effective at once) and with it.
    blob = app.encrypt(KeyId=key_id, Plaintext=b"granted")["CiphertextBlob"]
    out = app.decrypt(CiphertextBlob=blob, GrantTokens=[token])
    assert out["Plaintext"] == b"granted"
    # Only the granted operations, only on that key.
    assert denied(app.generate_data_key, KeyId=key_id, KeySpec="AES_256")
    assert denied(app.encrypt, KeyId=new_key(kms), Plaintext=b"x")

    if end == "revoke":
        kms.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    else:
        kms.retire_grant(KeyId=key_id, GrantId=grant["GrantId"])  # the account may retire
    assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x")
    assert denied(app.decrypt, CiphertextBlob=blob, GrantTokens=[token])
    assert kms.list_grants(KeyId=key_id)["Grants"] == []


def test_grantee_retires_by_token_only_when_allowed(cloud: Cloud, kms: Any) -> None:
    app, role = role_session(cloud, "retiring")
    other, _ = role_session(cloud, "bystander")
    key_id = new_key(kms)
    plain = kms.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt"])
    retirable = kms.create_grant(KeyId=key_id, GranteePrincipal=role,
                                 Operations=["Encrypt", "RetireGrant"])  # fmt: skip
    # Neither the grantee without RetireGrant nor an unrelated role may retire.
    assert denied(app.retire_grant, GrantToken=plain["GrantToken"])
    assert denied(other.retire_grant, GrantToken=retirable["GrantToken"])
    app.retire_grant(GrantToken=retirable["GrantToken"])
    left = [g["GrantId"] for g in kms.list_grants(KeyId=key_id)["Grants"]]
    assert left == [plain["GrantId"]]
    err = refused(app.retire_grant, GrantToken=retirable["GrantToken"])
    assert err[:2] == ("NotFoundException", 400)


@pytest.mark.parametrize(
    ("constraint", "context", "allowed"),
    [
        ({"EncryptionContextSubset": {"tenant": "a"}}, {"tenant": "a"}, True),
        ({"EncryptionContextSubset": {"tenant": "a"}}, {"tenant": "a", "app": "x"}, True),
        ({"EncryptionContextSubset": {"tenant": "a"}}, {"tenant": "A"}, False),
        ({"EncryptionContextSubset": {"tenant": "a"}}, {}, False),
        ({"EncryptionContextEquals": {"tenant": "a"}}, {"tenant": "a"}, True),
        ({"EncryptionContextEquals": {"tenant": "a"}}, {"tenant": "a", "app": "x"}, False),
        # A constraint's keys are not case sensitive, its values are (API_GrantConstraints).
        ({"EncryptionContextEquals": {"tenant": "a"}}, {"Tenant": "a"}, True),
        ({"EncryptionContextSubset": {"Tenant": "a"}}, {"tenant": "a", "app": "x"}, True),
        ({"EncryptionContextEquals": {"tenant": "a"}}, {"TENANT": "A"}, False),
    ],
)
def test_constraints(cloud: Cloud, kms: Any, constraint: dict[str, Any],
                     context: dict[str, str], allowed: bool) -> None:  # fmt: skip
    app, role = role_session(cloud, "constrained")
    key_id = new_key(kms)
    kms.create_grant(KeyId=key_id, GranteePrincipal=role, Constraints=constraint,
                     Operations=["Encrypt", "Decrypt", "DescribeKey"])  # fmt: skip
    call = {"KeyId": key_id, "Plaintext": b"x", "EncryptionContext": context}
    if allowed:
        blob = app.encrypt(**call)["CiphertextBlob"]
        assert app.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"x"
    else:
        assert denied(app.encrypt, **call)
    # Constraints do not limit operations without an encryption context.
    assert app.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id


def test_explicit_deny_in_the_key_policy_beats_a_grant(cloud: Cloud, kms: Any) -> None:
    app, role = role_session(cloud, "denied")
    key_id = new_key(kms, policy(allow("kms:*", ROOT), deny("kms:Decrypt", role)))
    kms.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt", "Decrypt"])
    blob = app.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    err = refused(app.decrypt, CiphertextBlob=blob)
    assert err[:2] == ("AccessDeniedException", 400)
    assert "explicit deny in a resource-based policy" in err.message


def test_explicit_deny_in_an_iam_policy_beats_a_grant(cloud: Cloud, kms: Any) -> None:
    app, role = role_session(cloud, "iam-denied", policy(deny("kms:Encrypt")))
    key_id = new_key(kms)
    kms.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt", "DescribeKey"])
    assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x")
    app.describe_key(KeyId=key_id)


def test_session_policies_limit_a_grant_to_the_role(cloud: Cloud, kms: Any) -> None:
    limited = policy(allow("kms:DescribeKey"))
    app, role = role_session(cloud, "limited", Policy=limited)
    key_id = new_key(kms)
    kms.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt", "DescribeKey"])
    app.describe_key(KeyId=key_id)
    assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x")
    # A grant naming the session itself is not limited by its session policies.
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/limited/s1"
    kms.create_grant(KeyId=key_id, GranteePrincipal=session, Operations=["Encrypt"])
    app.encrypt(KeyId=key_id, Plaintext=b"x")


def test_a_recreated_role_does_not_inherit_the_grant(cloud: Cloud, kms: Any) -> None:
    _, role = role_session(cloud, "ephemeral")
    key_id = new_key(kms)
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=role, Operations=["Encrypt"])
    iam = cloud.client("iam")
    old_id = iam.get_role(RoleName="ephemeral")["Role"]["RoleId"]
    iam.delete_role(RoleName="ephemeral")
    listed = kms.list_grants(KeyId=key_id, GrantId=grant["GrantId"])["Grants"]
    assert listed[0]["GranteePrincipal"] == old_id  # AWS shows the unique id of a gone identity
    app, _ = role_session(cloud, "ephemeral")
    assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x")


# -- CreateGrant: parameters, key types, idempotency, delegation --------------------------------


@pytest.mark.parametrize(
    ("create", "operations"),
    [
        ({}, ["Sign"]),
        ({}, ["GenerateMac", "Decrypt"]),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}, ["Encrypt"]),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}, ["GenerateDataKey"]),
        ({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}, ["Sign"]),
    ],
)
def test_operations_the_key_cannot_do_are_refused(
    kms: Any, create: dict[str, str], operations: list[str]
) -> None:
    key_id = new_key(kms, **create)
    err = refused(kms.create_grant, KeyId=key_id, GranteePrincipal=ROOT, Operations=operations)
    assert err[:2] == ("ValidationException", 400)
    assert kms.list_grants(KeyId=key_id)["Grants"] == []


def test_grants_for_asymmetric_and_hmac_keys(kms: Any) -> None:
    signing = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    kms.create_grant(KeyId=signing, GranteePrincipal=ROOT,
                     Operations=["Sign", "Verify", "GetPublicKey", "DescribeKey"])  # fmt: skip
    mac = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    kms.create_grant(KeyId=mac, GranteePrincipal=ROOT, Operations=["GenerateMac", "VerifyMac"])
    # An encryption context constraint needs a symmetric encryption key.
    err = refused(kms.create_grant, KeyId=signing, GranteePrincipal=ROOT, Operations=["Sign"],
                  Constraints={"EncryptionContextSubset": {"a": "b"}})  # fmt: skip
    assert err[:2] == ("ValidationException", 400)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Operations": ["CreateGrant"]}, "ValidationException"),
        ({"GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/no-such-role"}, "InvalidArnException"),
        ({"GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:user/nobody"}, "InvalidArnException"),
        ({"GranteePrincipal": "arn:aws:iam::111122223333:root"}, "InvalidArnException"),
        ({"RetiringPrincipal": "not-an-arn"}, "InvalidArnException"),
        ({"Name": "bad name!"}, "ValidationException"),
        ({"GrantTokens": ["forged-token"]}, "InvalidGrantTokenException"),
    ],
)
def test_create_grant_refusals(cloud: Cloud, kms: Any, params: dict[str, Any],
                               code: str) -> None:  # fmt: skip
    key_id = new_key(kms)
    call = {"KeyId": key_id, "GranteePrincipal": ROOT, "Operations": ["Decrypt"], **params}
    assert refused(cloud.unvalidated("kms").create_grant, **call)[:2] == (code, 400)
    assert kms.list_grants(KeyId=key_id)["Grants"] == []


def test_key_identification(kms: Any) -> None:
    key_id = new_key(kms)
    kms.create_alias(AliasName="alias/granted", TargetKeyId=key_id)
    err = refused(kms.create_grant, KeyId="alias/granted", GranteePrincipal=ROOT,
                  Operations=["Decrypt"])  # fmt: skip
    assert err == ("InvalidArnException", 400, "Key Aliases are not supported for this operation.")
    missing = "00000000-0000-4000-8000-000000000000"
    assert refused(kms.create_grant, KeyId=missing, GranteePrincipal=ROOT,
                   Operations=["Decrypt"]).code == "NotFoundException"  # fmt: skip
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    kms.create_grant(KeyId=arn, GranteePrincipal=ROOT, Operations=["Decrypt"])
    assert len(kms.list_grants(KeyId=arn)["Grants"]) == 1


def test_disabled_key_refuses_new_grants(kms: Any) -> None:
    key_id = new_key(kms)
    kms.disable_key(KeyId=key_id)
    err = refused(kms.create_grant, KeyId=key_id, GranteePrincipal=ROOT, Operations=["Decrypt"])
    assert err[:2] == ("DisabledException", 400)


def test_dry_run(kms: Any) -> None:
    key_id = new_key(kms)
    err = refused(kms.create_grant, KeyId=key_id, GranteePrincipal=ROOT,
                  Operations=["Decrypt"], DryRun=True)  # fmt: skip
    assert err[:2] == ("DryRunOperationException", 412)
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    grant_id = kms.create_grant(KeyId=key_id, GranteePrincipal=ROOT,
                                Operations=["Decrypt"])["GrantId"]  # fmt: skip
    err = refused(kms.revoke_grant, KeyId=key_id, GrantId=grant_id, DryRun=True)
    assert err[:2] == ("DryRunOperationException", 412)
    assert len(kms.list_grants(KeyId=key_id)["Grants"]) == 1


def test_name_makes_create_grant_idempotent(kms: Any) -> None:
    key_id = new_key(kms)
    call = {"KeyId": key_id, "GranteePrincipal": ROOT, "Operations": ["Decrypt", "Encrypt"],
            "Name": "retry-safe",
            "Constraints": {"EncryptionContextEquals": {"a": "b"}}}  # fmt: skip
    first = kms.create_grant(**call)
    again = kms.create_grant(**call | {"Operations": ["Encrypt", "Decrypt"]})
    assert again["GrantId"] == first["GrantId"]
    assert again["GrantToken"] != first["GrantToken"]
    kms.retire_grant(GrantToken=again["GrantToken"])  # every token names the same grant
    assert kms.list_grants(KeyId=key_id)["Grants"] == []
    # Same name, other parameters: another grant; no name: always another grant.
    a = kms.create_grant(**call)["GrantId"]
    b = kms.create_grant(**call | {"Operations": ["Decrypt"]})["GrantId"]
    unnamed = {k: v for k, v in call.items() if k != "Name"}
    c, d = (kms.create_grant(**unnamed)["GrantId"] for _ in range(2))
    assert len({a, b, c, d}) == 4


def test_a_grant_delegates_only_what_it_has(cloud: Cloud, kms: Any) -> None:
    app, role = role_session(cloud, "delegator")
    _, other = role_session(cloud, "delegate")
    key_id = new_key(kms)
    kms.create_grant(KeyId=key_id, GranteePrincipal=role,
                     Operations=["CreateGrant", "Decrypt", "Encrypt"],
                     Constraints={"EncryptionContextSubset": {"team": "x"}})  # fmt: skip
    base = {"KeyId": key_id, "GranteePrincipal": other}
    prod = {"EncryptionContextEquals": {"team": "x", "env": "prod"}}
    dev = {"EncryptionContextSubset": {"team": "x", "env": "dev"}}
    app.create_grant(**base, Operations=["Decrypt"], Constraints=prod)
    app.create_grant(**base, Operations=["Encrypt", "CreateGrant"], Constraints=dev)
    # More operations, or looser constraints, than the parent grant: refused.
    assert denied(app.create_grant, **base, Operations=["GenerateDataKey"],
                  Constraints={"EncryptionContextSubset": {"team": "x"}})  # fmt: skip
    assert denied(app.create_grant, **base, Operations=["Decrypt"])
    assert denied(app.create_grant, **base, Operations=["Decrypt"],
                  Constraints={"EncryptionContextSubset": {"env": "dev"}})  # fmt: skip
    assert len(kms.list_grants(KeyId=key_id)["Grants"]) == 3
    # The grantee may not see or revoke grants: those are not grant operations.
    assert denied(app.list_grants, KeyId=key_id)
    assert denied(app.revoke_grant, KeyId=key_id, GrantId="0" * 64)


def test_create_grant_condition_keys(cloud: Cloud, kms: Any) -> None:
    app, role = role_session(cloud, "granter")
    _, other = role_session(cloud, "granted")
    conditions = {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]},
                  "StringEquals": {"kms:GranteePrincipal": other,
                                   "kms:GrantConstraintType": "EncryptionContextEquals"},
                  "Bool": {"kms:GrantIsForAWSResource": "false"}}  # fmt: skip
    key_id = new_key(kms, policy(allow("kms:*", ROOT),
                                 allow("kms:CreateGrant", role, Condition=conditions)))  # fmt: skip
    equals = {"EncryptionContextEquals": {"k": "v"}}
    app.create_grant(KeyId=key_id, GranteePrincipal=other, Operations=["Decrypt"],
                     Constraints=equals)  # fmt: skip
    for params in (
        {"GranteePrincipal": other, "Operations": ["GenerateDataKey"], "Constraints": equals},
        {"GranteePrincipal": role, "Operations": ["Decrypt"], "Constraints": equals},
        {"GranteePrincipal": other, "Operations": ["Decrypt"]},
        {"GranteePrincipal": other, "Operations": ["Decrypt"],
         "Constraints": {"EncryptionContextSubset": {"k": "v"}}},
    ):  # fmt: skip
        assert denied(app.create_grant, KeyId=key_id, **params)


# -- listing ------------------------------------------------------------------------------------


def test_list_grants_pages_and_filters(cloud: Cloud, kms: Any) -> None:
    _, role = role_session(cloud, "listed")
    key_id = new_key(kms)
    made = [kms.create_grant(KeyId=key_id, GranteePrincipal=ROOT, Operations=["Decrypt"],
                             Name=f"g{i}")["GrantId"] for i in range(4)]  # fmt: skip
    last_grant = kms.create_grant(KeyId=key_id, GranteePrincipal=role, RetiringPrincipal=ROOT,
                                  Operations=["Encrypt", "DescribeKey"],
                                  Constraints={"EncryptionContextSubset": {"a": "b"}})  # fmt: skip
    made.append(last_grant["GrantId"])
    seen: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    pages = 0
    while True:
        page = kms.list_grants(KeyId=key_id, Limit=2, **marker)
        pages += 1
        seen += page["Grants"]
        assert len(page["Grants"]) <= 2
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = {"Marker": page["NextMarker"]}
    assert pages == 3
    assert [g["GrantId"] for g in seen] == made
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    last = seen[-1]
    assert last["KeyId"] == arn
    assert last["IssuingAccount"] == ROOT
    assert last["GranteePrincipal"] == role
    assert last["RetiringPrincipal"] == ROOT
    assert last["Operations"] == ["Encrypt", "DescribeKey"]
    assert last["Constraints"] == {"EncryptionContextSubset": {"a": "b"}}
    assert last["Name"] == ""
    assert seen[0]["Name"] == "g0"
    assert "RetiringPrincipal" not in seen[0]
    assert "Constraints" not in seen[0]
    mine = kms.list_grants(KeyId=key_id, GranteePrincipal=role)["Grants"]
    assert [g["GrantId"] for g in mine] == [made[-1]]
    one = kms.list_grants(KeyId=key_id, GrantId=made[1])["Grants"]
    assert [g["GrantId"] for g in one] == [made[1]]
    assert refused(kms.list_grants, KeyId=key_id, Marker="bm90LWEtbWFya2Vy").code == (
        "InvalidMarkerException")  # fmt: skip
    assert refused(kms.list_grants, KeyId=key_id, GrantId="nope").code == "InvalidGrantIdException"


def test_list_retirable_grants(cloud: Cloud, kms: Any) -> None:
    retirer, role = role_session(cloud, "retirer", policy(allow("kms:ListRetirableGrants")))
    first, second = new_key(kms), new_key(kms)
    ids = {
        kms.create_grant(KeyId=key, GranteePrincipal=ROOT, RetiringPrincipal=role,
                         Operations=["Decrypt"])["GrantId"]
        for key in (first, second)
    }  # fmt: skip
    kms.create_grant(KeyId=first, GranteePrincipal=role, Operations=["Decrypt"])
    listed = retirer.list_retirable_grants(RetiringPrincipal=role)["Grants"]
    assert {g["GrantId"] for g in listed} == ids
    for grant in listed:  # the retiring principal may retire them, though no policy says so
        retirer.retire_grant(KeyId=grant["KeyId"], GrantId=grant["GrantId"])
    assert kms.list_retirable_grants(RetiringPrincipal=role)["Grants"] == []
    bystander, _ = role_session(cloud, "no-list")
    assert denied(bystander.list_retirable_grants, RetiringPrincipal=role)


@pytest.mark.parametrize("by", ["token", "id"])
def test_retire_and_revoke_unknown_grants(kms: Any, by: str) -> None:
    key_id = new_key(kms)
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=ROOT, Operations=["Decrypt"])
    other_key = new_key(kms)
    if by == "token":
        assert refused(kms.retire_grant, GrantToken="AAAA").code == "InvalidGrantTokenException"
    else:
        err = refused(kms.retire_grant, KeyId=other_key, GrantId=grant["GrantId"])
        assert err[:2] == ("NotFoundException", 400)
    err = refused(kms.revoke_grant, KeyId=other_key, GrantId=grant["GrantId"])
    assert err[:2] == ("NotFoundException", 400)
    assert refused(kms.revoke_grant, KeyId=key_id, GrantId="xyz").code == "InvalidGrantIdException"
    assert refused(kms.retire_grant, KeyId=key_id).code == "ValidationException"
    assert len(kms.list_grants(KeyId=key_id)["Grants"]) == 1


def test_grants_per_key_limit(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grants_module, "GRANTS_PER_KEY", 2)  # AWS's is 50,000
    key_id = new_key(kms)
    for _ in range(2):
        kms.create_grant(KeyId=key_id, GranteePrincipal=ROOT, Operations=["Decrypt"])
    err = refused(kms.create_grant, KeyId=key_id, GranteePrincipal=ROOT, Operations=["Decrypt"])
    assert err[:2] == ("LimitExceededException", 400)
    kms.create_grant(KeyId=new_key(kms), GranteePrincipal=ROOT, Operations=["Decrypt"])


# -- durability ---------------------------------------------------------------------------------


def test_grants_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "restarted"
    state: dict[str, Any] = {}
    for run in ("first", "second"):
        handle, thread = start_node_thread(data)
        cloud = Cloud(handle)
        try:
            kms = cloud.client("kms")
            if run == "first":
                iam = cloud.client("iam")
                user = iam.create_user(UserName="durable")["User"]["Arn"]
                state["creds"] = iam.create_access_key(UserName="durable")["AccessKey"]
                key_id = new_key(kms)
                grant = kms.create_grant(KeyId=key_id, GranteePrincipal=user,
                                         Operations=["Encrypt", "Decrypt"])  # fmt: skip
                app = cloud.as_key("kms", state["creds"])
                blob = app.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
                state.update(key_id=key_id, grant=grant, blob=blob)
            else:
                app = cloud.as_key("kms", state["creds"])
                out = app.decrypt(CiphertextBlob=state["blob"],
                                  GrantTokens=[state["grant"]["GrantToken"]])  # fmt: skip
                assert out["Plaintext"] == b"kept"
                listed = kms.list_grants(KeyId=state["key_id"])["Grants"]
                assert [g["GrantId"] for g in listed] == [state["grant"]["GrantId"]]
                kms.revoke_grant(KeyId=state["key_id"], GrantId=state["grant"]["GrantId"])
                assert denied(app.decrypt, CiphertextBlob=state["blob"])
        finally:
            cloud.close()
            stop_node_thread(handle, thread)
