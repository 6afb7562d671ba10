"""KMS authorization (key policies and IAM policies together, explicit Deny wins) and KMS/IAM
request validation, as the real services answer them (real boto3, real TLS)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from latchkey_testing import ACCOUNT, AUDIENCE, ROOT, Cloud, allow, deny, policy, refused


def role_session(cloud: Cloud, name: str, inline: str | None = None) -> tuple[Any, str]:
    """A role trusting the node's idp (with ``inline`` as its only IAM policy), assumed:
    (a KMS client with the session's credentials, the role ARN)."""
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
        RoleArn=arn, RoleSessionName="s1", WebIdentityToken=issuer.mint("app", AUDIENCE)
    )
    return cloud.as_key("kms", resp["Credentials"]), arn


def admin_key(cloud: Cloud, key_policy: str | None = None) -> str:
    extra = {"Policy": key_policy} if key_policy else {}
    return str(cloud.client("kms").create_key(**extra)["KeyMetadata"]["KeyId"])


# -- who may use a key --------------------------------------------------------------------------


def test_role_without_permissions_is_denied(cloud: Cloud) -> None:
    kms, _ = role_session(cloud, "no-perms")
    key_id = admin_key(cloud)
    err = refused(kms.encrypt, KeyId=key_id, Plaintext=b"x")
    assert err[:2] == ("AccessDeniedException", 400)
    assert "assumed-role/no-perms/s1 is not authorized to perform: kms:Encrypt" in err.message
    assert refused(kms.create_key).code == "AccessDeniedException"


def test_explicit_deny_beats_allow(cloud: Cloud) -> None:
    inline = policy(allow("kms:*"), deny("kms:Decrypt"))
    kms, _ = role_session(cloud, "no-decrypt", inline)
    key_id = admin_key(cloud)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert refused(kms.decrypt, CiphertextBlob=blob)[:2] == ("AccessDeniedException", 400)
    assert cloud.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


@pytest.mark.parametrize("name_by", ["role", "session"])
def test_key_policy_naming_the_role_grants_without_iam(cloud: Cloud, name_by: str) -> None:
    kms, arn = role_session(cloud, "named")
    principal = arn if name_by == "role" else f"arn:aws:sts::{ACCOUNT}:assumed-role/named/s1"
    key_id = admin_key(cloud, policy(allow("kms:*", ROOT), allow("kms:Encrypt", principal)))
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"granted")["CiphertextBlob"]
    # Only Encrypt was granted; the account's IAM grants nothing to this role.
    assert refused(kms.decrypt, CiphertextBlob=blob).code == "AccessDeniedException"
    other = admin_key(cloud)
    assert refused(kms.encrypt, KeyId=other, Plaintext=b"x").code == "AccessDeniedException"


def test_key_policy_deny_beats_the_role_policy(cloud: Cloud) -> None:
    kms, arn = role_session(cloud, "denied-by-key", policy(allow("kms:*")))
    key_id = admin_key(cloud, policy(allow("kms:*", ROOT), deny("kms:Encrypt", arn)))
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    cloud.client("kms").encrypt(KeyId=key_id, Plaintext=b"x")  # the admin is not denied


@pytest.mark.parametrize(("tenant", "allowed"), [("a", True), ("b", False)])
def test_encryption_context_condition(cloud: Cloud, tenant: str, allowed: bool) -> None:
    condition = {"StringEquals": {"kms:EncryptionContext:tenant": "a"}}
    kms, arn = role_session(cloud, "tenant-a")
    key_id = admin_key(cloud, policy(allow("kms:*", ROOT), allow("kms:Encrypt", arn,
                                                                 Condition=condition)))  # fmt: skip
    call = {"KeyId": key_id, "Plaintext": b"x", "EncryptionContext": {"tenant": tenant}}
    if allowed:
        kms.encrypt(**call)
    else:
        assert refused(kms.encrypt, **call).code == "AccessDeniedException"


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    ["not json", policy(allow("kms:*")), policy(allow("kms:*", ROOT) | {"Effect": "Alow"}),
     policy(allow("kms", ROOT)), '{"Statement": [], "Bogus": 1}'],
)  # fmt: skip
def test_malformed_key_policy(cloud: Cloud, document: str) -> None:
    err = refused(cloud.client("kms").create_key, Policy=document)
    assert err[:2] == ("MalformedPolicyDocumentException", 400)
    assert cloud.client("kms").list_keys()["Keys"] == []


@pytest.mark.parametrize(
    "key_id",
    ["00000000-0000-4000-8000-000000000000", "not-a-key", "alias/nope",
     "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"],
)  # fmt: skip
def test_encrypt_with_unknown_key(cloud: Cloud, key_id: str) -> None:
    err = refused(cloud.client("kms").encrypt, KeyId=key_id, Plaintext=b"x")
    assert err[:2] == ("NotFoundException", 400)


@pytest.mark.parametrize(
    "params", [{"KeySpec": "AES_256", "NumberOfBytes": 32}, {}, {"NumberOfBytes": 1025}]
)
def test_generate_data_key_size_is_validated(cloud: Cloud, params: dict[str, Any]) -> None:
    kms = cloud.client("kms")
    err = refused(kms.generate_data_key, KeyId=admin_key(cloud), **params)
    assert err[:2] == ("ValidationException", 400)


def test_plaintext_limit(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    key_id = admin_key(cloud)
    kms.encrypt(KeyId=key_id, Plaintext=b"p" * 4096)
    err = refused(kms.encrypt, KeyId=key_id, Plaintext=b"p" * 4097)
    assert err[:2] == ("ValidationException", 400)


def test_decrypt_with_another_key_id(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    first, second = admin_key(cloud), admin_key(cloud)
    blob = kms.encrypt(KeyId=first, Plaintext=b"x")["CiphertextBlob"]
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId=second)[:2] == (
        "IncorrectKeyException", 400)  # fmt: skip
    assert kms.decrypt(CiphertextBlob=blob, KeyId=first)["Plaintext"] == b"x"


@pytest.mark.parametrize("position", [0, 1, 16, 20, 21, 40, -1])
def test_flipped_ciphertext_byte(cloud: Cloud, position: int) -> None:
    kms = cloud.client("kms")
    blob = bytearray(kms.encrypt(KeyId=admin_key(cloud), Plaintext=b"x")["CiphertextBlob"])
    blob[position] ^= 0x01
    err = refused(kms.decrypt, CiphertextBlob=bytes(blob))
    assert err[:2] == ("InvalidCiphertextException", 400)


@pytest.mark.parametrize(
    "given", [{"a": "bc"}, {}, {"ab": "c", "x": "y"}, {"AB": "c"}, {"ab": "C"}]
)
def test_encryption_context_must_match(cloud: Cloud, given: dict[str, str]) -> None:
    kms = cloud.client("kms")
    key_id = admin_key(cloud)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"ab": "c"})
    blob = blob["CiphertextBlob"]
    err = refused(kms.decrypt, CiphertextBlob=blob, EncryptionContext=given)
    assert err[:2] == ("InvalidCiphertextException", 400)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"ab": "c"})["Plaintext"] == b"x"


def test_duplicate_oidc_provider(cloud: Cloud) -> None:
    iam = cloud.client("iam")
    err = refused(iam.create_open_id_connect_provider, Url=cloud.node.info.idp,
                  ClientIDList=[AUDIENCE], ThumbprintList=["0" * 40])  # fmt: skip
    assert err[:2] == ("EntityAlreadyExists", 409)


@pytest.mark.parametrize(
    "document",
    ["{not json", policy(allow("kms:*", ROOT)), policy(allow("kms")),
     policy({"Effect": "Allow", "Resource": "*"})],
)  # fmt: skip
def test_put_role_policy_malformed(cloud: Cloud, document: str) -> None:
    iam = cloud.client("iam")
    err = refused(iam.put_role_policy, RoleName="latchkey-kms", PolicyName="bad",
                  PolicyDocument=document)  # fmt: skip
    assert err[:2] == ("MalformedPolicyDocument", 400)


def test_role_name_outside_the_aws_pattern(cloud: Cloud) -> None:
    err = refused(cloud.client("iam").create_role, RoleName="r\u00f4le",
                  AssumeRolePolicyDocument=policy(allow("sts:AssumeRole", ROOT)))  # fmt: skip
    assert err[:2] == ("ValidationError", 400)


@pytest.mark.parametrize("kind", ["identity-without-resource", "trust-with-resource"])
def test_iam_policy_grammar(cloud: Cloud, kind: str) -> None:
    iam = cloud.client("iam")
    if kind == "identity-without-resource":
        stmt = {"Effect": "Allow", "Action": "kms:*"}
        err = refused(iam.put_role_policy, RoleName="latchkey-kms", PolicyName="p",
                      PolicyDocument=policy(stmt))  # fmt: skip
    else:
        trust = allow("sts:AssumeRole", ROOT)  # allow() adds "Resource": "*"
        err = refused(iam.create_role, RoleName="r", AssumeRolePolicyDocument=policy(trust))
    assert err[:2] == ("MalformedPolicyDocument", 400)


def test_key_policy_lockout_safety_check(cloud: Cloud) -> None:
    only_role = policy(allow("kms:*", f"arn:aws:iam::{ACCOUNT}:role/latchkey-kms"))
    err = refused(cloud.client("kms").create_key, Policy=only_role)
    assert err[:2] == ("MalformedPolicyDocumentException", 400)


def test_source_ip_condition_in_a_key_policy(cloud: Cloud) -> None:
    """aws:SourceIp is the caller's address as the cloud sees it (here 127.0.0.1)."""
    kms = cloud.client("kms")

    def key_denying_encrypt_outside(cidr: str) -> str:
        doc = policy(
            allow("kms:*", ROOT),
            {"Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "kms:Encrypt",
             "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": cidr}}},
        )  # fmt: skip
        return admin_key(cloud, doc)

    outside = key_denying_encrypt_outside("10.0.0.0/8")
    err = refused(kms.encrypt, KeyId=outside, Plaintext=b"x")
    assert err.code == "AccessDeniedException"
    assert "explicit deny in a resource-based policy" in err.message
    inside = key_denying_encrypt_outside("127.0.0.0/8")
    assert kms.encrypt(KeyId=inside, Plaintext=b"x")["KeyId"].endswith(inside)


@pytest.mark.parametrize("form", ["principal-root", "not-principal"])
def test_account_deny_beats_an_allow_naming_the_caller(cloud: Cloud, form: str) -> None:
    """An explicit Deny applying to the caller's account wins even when another statement
    allows the caller by name (AWS: a Deny in any applicable statement beats any Allow)."""
    iam = cloud.client("iam")
    user = iam.create_user(UserName="named-user")["User"]["Arn"]
    iam.put_user_policy(
        UserName="named-user", PolicyName="p", PolicyDocument=policy(allow("kms:*"))
    )
    kms = cloud.as_key("kms", iam.create_access_key(UserName="named-user")["AccessKey"])
    if form == "principal-root":
        refuse = deny("kms:Encrypt", ROOT)
    else:  # spares the user, not its account (AWS's NotPrincipal warning)
        refuse = {"Effect": "Deny", "NotPrincipal": {"AWS": user}, "Action": "kms:Encrypt",
                  "Resource": "*"}  # fmt: skip
    for named in (True, False):
        stmts = [allow("kms:*", ROOT), *([allow("kms:*", user)] if named else []), refuse]
        key_id = admin_key(cloud, policy(*stmts))
        err = refused(kms.encrypt, KeyId=key_id, Plaintext=b"x")
        assert err.code == "AccessDeniedException"
        assert "explicit deny in a resource-based policy" in err.message
        kms.describe_key(KeyId=key_id)  # what the Deny does not name stays allowed
