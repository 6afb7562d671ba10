"""One scripted sequence of KMS calls, as data, for the differential test against moto's server
(``tests/integration/test_kms_differential.py``).

A step names an operation (its wire name), its parameters and, optionally, values to keep from
its answer for later steps. Values that differ by nature between two services (key ids, ARNs,
the account, ciphertexts, signatures, grant ids) are never written here: a parameter string
``"${name}"`` stands for the value kept under ``name`` by an earlier step on the same target
(bytes stay bytes); ``"...${name}..."`` inside a longer string is replaced by its text. The
account of each target is kept as ``acct`` by the first step.

The steps run in order on one client per target; later steps rely on the state earlier ones
left (a key disabled, an alias created, a grant made).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

UNKNOWN_KEY = "0b5d2b47-9c8e-4f6a-8d1e-2f3a4b5c6d7e"
MESSAGE = b"the message both services sign"
OTHER_MESSAGE = b"a message nobody signed"
CONTEXT = {"tenant": "blue", "purpose": "differential"}
ROOT = "arn:aws:iam::${acct}:root"


def _policy(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": ROOT},
                    "Action": list(actions),
                    "Resource": "*",
                }
            ],
        }
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One call. ``save`` maps a name to a dotted path in the answer (``KeyMetadata.KeyId``);
    ``nested`` names answer members whose own key sets are compared too (``Keys[]``: the
    union over the items of a list)."""

    name: str
    op: str
    params: dict[str, Any] = field(default_factory=dict)
    save: dict[str, str] = field(default_factory=dict)
    nested: tuple[str, ...] = ()


def _s(
    name: str,
    op: str,
    /,
    *,
    save: dict[str, str] | None = None,
    nested: tuple[str, ...] = (),
    **params: Any,
) -> Step:
    return Step(name, op, params, save or {}, nested)


KM = ("KeyMetadata",)

SCRIPT: tuple[Step, ...] = (
    # -- keys --------------------------------------------------------------------------------
    _s(
        "create-key-symmetric",
        "CreateKey",
        Description="differential k1",
        Tags=[{"TagKey": "team", "TagValue": "blue"}],
        save={
            "k1": "KeyMetadata.KeyId",
            "k1arn": "KeyMetadata.Arn",
            "acct": "KeyMetadata.AWSAccountId",
        },
        nested=KM,
    ),
    _s("create-key-symmetric-2", "CreateKey", save={"k2": "KeyMetadata.KeyId"}, nested=KM),
    _s("create-key-throwaway", "CreateKey", save={"k3": "KeyMetadata.KeyId"}),
    _s(
        "create-key-rsa-sign",
        "CreateKey",
        KeySpec="RSA_2048",
        KeyUsage="SIGN_VERIFY",
        save={"rsa_sign": "KeyMetadata.KeyId"},
        nested=KM,
    ),
    _s(
        "create-key-rsa-encrypt",
        "CreateKey",
        KeySpec="RSA_2048",
        KeyUsage="ENCRYPT_DECRYPT",
        save={"rsa_enc": "KeyMetadata.KeyId"},
        nested=KM,
    ),
    _s(
        "create-key-ecc-sign",
        "CreateKey",
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        save={"ecc": "KeyMetadata.KeyId"},
        nested=KM,
    ),
    _s(
        "create-key-hmac",
        "CreateKey",
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
        save={"hmac": "KeyMetadata.KeyId"},
        nested=KM,
    ),
    _s(
        "create-key-external",
        "CreateKey",
        Origin="EXTERNAL",
        save={"ext": "KeyMetadata.KeyId"},
        nested=KM,
    ),
    _s("create-key-with-policy", "CreateKey", Policy=_policy("kms:*"), nested=KM),
    _s("create-key-invalid-spec", "CreateKey", KeySpec="RSA_1024", KeyUsage="SIGN_VERIFY"),
    _s("create-key-invalid-usage", "CreateKey", KeyUsage="ENCRYPT_ONLY"),
    _s(
        "create-key-usage-mismatch",
        "CreateKey",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="SIGN_VERIFY",
    ),
    _s("create-key-hmac-without-usage", "CreateKey", KeySpec="HMAC_256"),
    _s("create-key-malformed-policy", "CreateKey", Policy="this is not a policy"),
    _s("create-key-description-too-long", "CreateKey", Description="d" * 8193),
    _s("describe-key", "DescribeKey", KeyId="${k1}", nested=KM),
    _s("describe-key-by-arn", "DescribeKey", KeyId="${k1arn}", nested=KM),
    _s("describe-key-rsa-sign", "DescribeKey", KeyId="${rsa_sign}", nested=KM),
    _s("describe-key-rsa-encrypt", "DescribeKey", KeyId="${rsa_enc}", nested=KM),
    _s("describe-key-hmac", "DescribeKey", KeyId="${hmac}", nested=KM),
    _s("describe-key-external", "DescribeKey", KeyId="${ext}", nested=KM),
    _s("describe-key-unknown", "DescribeKey", KeyId=UNKNOWN_KEY),
    _s("describe-key-malformed-id", "DescribeKey", KeyId="not-a-key-id"),
    _s("describe-key-unknown-alias", "DescribeKey", KeyId="alias/differential-none"),
    _s("describe-key-missing-id", "DescribeKey"),
    _s("list-keys", "ListKeys", nested=("Keys[]",)),
    _s("list-keys-limit-1", "ListKeys", Limit=1, nested=("Keys[]",)),
    _s("list-keys-limit-0", "ListKeys", Limit=0),
    _s("list-keys-limit-1001", "ListKeys", Limit=1001),
    _s(
        "update-key-description",
        "UpdateKeyDescription",
        KeyId="${k1}",
        Description="differential k1, renamed",
    ),
    _s(
        "update-key-description-unknown", "UpdateKeyDescription", KeyId=UNKNOWN_KEY, Description="x"
    ),
    # -- enable / disable ----------------------------------------------------------------------
    _s("disable-key", "DisableKey", KeyId="${k2}"),
    _s("describe-key-disabled", "DescribeKey", KeyId="${k2}", nested=KM),
    _s("encrypt-disabled-key", "Encrypt", KeyId="${k2}", Plaintext=b"x"),
    _s("generate-data-key-disabled-key", "GenerateDataKey", KeyId="${k2}", KeySpec="AES_256"),
    _s("enable-key", "EnableKey", KeyId="${k2}"),
    _s("enable-key-unknown", "EnableKey", KeyId=UNKNOWN_KEY),
    _s("disable-key-malformed-id", "DisableKey", KeyId="not-a-key-id"),
    # -- deletion ------------------------------------------------------------------------------
    _s("schedule-key-deletion", "ScheduleKeyDeletion", KeyId="${k3}", PendingWindowInDays=7),
    _s("describe-key-pending-deletion", "DescribeKey", KeyId="${k3}", nested=KM),
    _s("encrypt-pending-deletion", "Encrypt", KeyId="${k3}", Plaintext=b"x"),
    _s("enable-key-pending-deletion", "EnableKey", KeyId="${k3}"),
    _s("schedule-key-deletion-again", "ScheduleKeyDeletion", KeyId="${k3}", PendingWindowInDays=7),
    _s("cancel-key-deletion", "CancelKeyDeletion", KeyId="${k3}"),
    _s("describe-key-after-cancel", "DescribeKey", KeyId="${k3}", nested=KM),
    _s("cancel-key-deletion-not-pending", "CancelKeyDeletion", KeyId="${k1}"),
    _s(
        "schedule-key-deletion-window-6",
        "ScheduleKeyDeletion",
        KeyId="${k3}",
        PendingWindowInDays=6,
    ),
    _s(
        "schedule-key-deletion-window-31",
        "ScheduleKeyDeletion",
        KeyId="${k3}",
        PendingWindowInDays=31,
    ),
    _s("schedule-key-deletion-unknown", "ScheduleKeyDeletion", KeyId=UNKNOWN_KEY),
    # -- aliases -------------------------------------------------------------------------------
    _s("create-alias", "CreateAlias", AliasName="alias/differential-one", TargetKeyId="${k1}"),
    _s(
        "create-alias-duplicate",
        "CreateAlias",
        AliasName="alias/differential-one",
        TargetKeyId="${k2}",
    ),
    _s(
        "create-alias-reserved-prefix",
        "CreateAlias",
        AliasName="alias/aws/differential",
        TargetKeyId="${k1}",
    ),
    _s("create-alias-reserved-name", "CreateAlias", AliasName="alias/aws/ebs", TargetKeyId="${k1}"),
    _s(
        "create-alias-bad-characters",
        "CreateAlias",
        AliasName="alias/bad name!",
        TargetKeyId="${k1}",
    ),
    _s("create-alias-without-prefix", "CreateAlias", AliasName="differential", TargetKeyId="${k1}"),
    _s(
        "create-alias-unknown-key",
        "CreateAlias",
        AliasName="alias/differential-two",
        TargetKeyId=UNKNOWN_KEY,
    ),
    _s("describe-key-by-alias", "DescribeKey", KeyId="alias/differential-one", nested=KM),
    _s("encrypt-by-alias", "Encrypt", KeyId="alias/differential-one", Plaintext=b"x"),
    _s("list-aliases", "ListAliases", nested=("Aliases[]",)),
    _s("list-aliases-for-key", "ListAliases", KeyId="${k1}", nested=("Aliases[]",)),
    _s("list-aliases-unknown-key", "ListAliases", KeyId=UNKNOWN_KEY),
    _s("update-alias", "UpdateAlias", AliasName="alias/differential-one", TargetKeyId="${k2}"),
    _s(
        "update-alias-unknown",
        "UpdateAlias",
        AliasName="alias/differential-none",
        TargetKeyId="${k2}",
    ),
    _s("delete-alias", "DeleteAlias", AliasName="alias/differential-one"),
    _s("delete-alias-again", "DeleteAlias", AliasName="alias/differential-one"),
    # -- tags ----------------------------------------------------------------------------------
    _s(
        "tag-resource",
        "TagResource",
        KeyId="${k1}",
        Tags=[{"TagKey": "env", "TagValue": "test"}, {"TagKey": "owner", "TagValue": "m"}],
    ),
    _s("list-resource-tags", "ListResourceTags", KeyId="${k1}", nested=("Tags[]",)),
    _s("untag-resource", "UntagResource", KeyId="${k1}", TagKeys=["owner"]),
    _s(
        "tag-resource-aws-prefix",
        "TagResource",
        KeyId="${k1}",
        Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}],
    ),
    _s(
        "tag-resource-unknown-key",
        "TagResource",
        KeyId=UNKNOWN_KEY,
        Tags=[{"TagKey": "env", "TagValue": "test"}],
    ),
    _s("list-resource-tags-unknown-key", "ListResourceTags", KeyId=UNKNOWN_KEY),
    # -- key policies --------------------------------------------------------------------------
    _s("get-key-policy", "GetKeyPolicy", KeyId="${k1}", PolicyName="default"),
    _s("list-key-policies", "ListKeyPolicies", KeyId="${k1}"),
    _s(
        "put-key-policy",
        "PutKeyPolicy",
        KeyId="${k1}",
        PolicyName="default",
        Policy=_policy("kms:*"),
    ),
    _s(
        "put-key-policy-malformed",
        "PutKeyPolicy",
        KeyId="${k1}",
        PolicyName="default",
        Policy="{not json",
    ),
    _s("get-key-policy-unknown-key", "GetKeyPolicy", KeyId=UNKNOWN_KEY, PolicyName="default"),
    _s("list-key-policies-unknown-key", "ListKeyPolicies", KeyId=UNKNOWN_KEY),
    # -- rotation ------------------------------------------------------------------------------
    _s("get-key-rotation-status-off", "GetKeyRotationStatus", KeyId="${k1}"),
    _s("enable-key-rotation", "EnableKeyRotation", KeyId="${k1}", RotationPeriodInDays=180),
    _s("get-key-rotation-status-on", "GetKeyRotationStatus", KeyId="${k1}"),
    _s(
        "enable-key-rotation-period-89", "EnableKeyRotation", KeyId="${k1}", RotationPeriodInDays=89
    ),
    _s("enable-key-rotation-asymmetric", "EnableKeyRotation", KeyId="${rsa_sign}"),
    _s("enable-key-rotation-unknown", "EnableKeyRotation", KeyId=UNKNOWN_KEY),
    _s("rotate-key-on-demand", "RotateKeyOnDemand", KeyId="${k1}"),
    _s("list-key-rotations", "ListKeyRotations", KeyId="${k1}", nested=("Rotations[]",)),
    _s("rotate-key-on-demand-hmac", "RotateKeyOnDemand", KeyId="${hmac}"),
    _s("disable-key-rotation", "DisableKeyRotation", KeyId="${k1}"),
    # -- encrypt / decrypt / re-encrypt --------------------------------------------------------
    _s(
        "encrypt",
        "Encrypt",
        KeyId="${k1}",
        Plaintext=b"secret",
        EncryptionContext=CONTEXT,
        save={"ct1": "CiphertextBlob"},
    ),
    _s(
        "encrypt-without-context",
        "Encrypt",
        KeyId="${k1}",
        Plaintext=b"secret",
        save={"ct0": "CiphertextBlob"},
    ),
    _s("decrypt", "Decrypt", CiphertextBlob="${ct1}", EncryptionContext=CONTEXT),
    _s("decrypt-without-context", "Decrypt", CiphertextBlob="${ct0}"),
    _s(
        "decrypt-with-key-id",
        "Decrypt",
        CiphertextBlob="${ct1}",
        EncryptionContext=CONTEXT,
        KeyId="${k1}",
    ),
    _s(
        "decrypt-wrong-context",
        "Decrypt",
        CiphertextBlob="${ct1}",
        EncryptionContext={"tenant": "red", "purpose": "differential"},
    ),
    _s("decrypt-missing-context", "Decrypt", CiphertextBlob="${ct1}"),
    _s(
        "decrypt-wrong-key-id",
        "Decrypt",
        CiphertextBlob="${ct1}",
        EncryptionContext=CONTEXT,
        KeyId="${k2}",
    ),
    _s("decrypt-garbage", "Decrypt", CiphertextBlob=b"\x01" + bytes(100)),
    _s("encrypt-unknown-key", "Encrypt", KeyId=UNKNOWN_KEY, Plaintext=b"x"),
    _s("encrypt-sign-key", "Encrypt", KeyId="${rsa_sign}", Plaintext=b"x"),
    _s("encrypt-hmac-key", "Encrypt", KeyId="${hmac}", Plaintext=b"x"),
    _s("encrypt-plaintext-4097", "Encrypt", KeyId="${k1}", Plaintext=b"p" * 4097),
    _s("encrypt-plaintext-empty", "Encrypt", KeyId="${k1}", Plaintext=b""),
    _s(
        "encrypt-invalid-algorithm",
        "Encrypt",
        KeyId="${k1}",
        Plaintext=b"x",
        EncryptionAlgorithm="AES_GCM",
    ),
    _s(
        "encrypt-rsa",
        "Encrypt",
        KeyId="${rsa_enc}",
        Plaintext=b"secret",
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
        save={"rsa_ct": "CiphertextBlob"},
    ),
    _s(
        "decrypt-rsa",
        "Decrypt",
        KeyId="${rsa_enc}",
        CiphertextBlob="${rsa_ct}",
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    ),
    _s(
        "encrypt-rsa-symmetric-algorithm",
        "Encrypt",
        KeyId="${rsa_enc}",
        Plaintext=b"x",
        EncryptionAlgorithm="SYMMETRIC_DEFAULT",
    ),
    _s(
        "re-encrypt",
        "ReEncrypt",
        CiphertextBlob="${ct1}",
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId="${k2}",
        DestinationEncryptionContext={"moved": "yes"},
    ),
    _s(
        "re-encrypt-wrong-source-context",
        "ReEncrypt",
        CiphertextBlob="${ct1}",
        DestinationKeyId="${k2}",
    ),
    _s(
        "re-encrypt-unknown-destination",
        "ReEncrypt",
        CiphertextBlob="${ct1}",
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=UNKNOWN_KEY,
    ),
    # -- data keys and random ------------------------------------------------------------------
    _s(
        "generate-data-key",
        "GenerateDataKey",
        KeyId="${k1}",
        KeySpec="AES_256",
        EncryptionContext=CONTEXT,
    ),
    _s("generate-data-key-bytes", "GenerateDataKey", KeyId="${k1}", NumberOfBytes=64),
    _s(
        "generate-data-key-both",
        "GenerateDataKey",
        KeyId="${k1}",
        KeySpec="AES_256",
        NumberOfBytes=32,
    ),
    _s("generate-data-key-neither", "GenerateDataKey", KeyId="${k1}"),
    _s("generate-data-key-bytes-1025", "GenerateDataKey", KeyId="${k1}", NumberOfBytes=1025),
    _s("generate-data-key-invalid-spec", "GenerateDataKey", KeyId="${k1}", KeySpec="AES_512"),
    _s(
        "generate-data-key-asymmetric-key", "GenerateDataKey", KeyId="${rsa_enc}", KeySpec="AES_256"
    ),
    _s(
        "generate-data-key-without-plaintext",
        "GenerateDataKeyWithoutPlaintext",
        KeyId="${k1}",
        KeySpec="AES_128",
    ),
    _s("generate-data-key-pair", "GenerateDataKeyPair", KeyId="${k1}", KeyPairSpec="RSA_2048"),
    _s(
        "generate-data-key-pair-without-plaintext",
        "GenerateDataKeyPairWithoutPlaintext",
        KeyId="${k1}",
        KeyPairSpec="ECC_NIST_P256",
    ),
    _s("generate-random", "GenerateRandom", NumberOfBytes=32),
    _s("generate-random-0", "GenerateRandom", NumberOfBytes=0),
    _s("generate-random-1025", "GenerateRandom", NumberOfBytes=1025),
    # -- sign / verify / public keys -----------------------------------------------------------
    _s(
        "sign-rsa",
        "Sign",
        KeyId="${rsa_sign}",
        Message=MESSAGE,
        SigningAlgorithm="RSASSA_PSS_SHA_256",
        save={"rsa_sig": "Signature"},
    ),
    _s(
        "verify-rsa",
        "Verify",
        KeyId="${rsa_sign}",
        Message=MESSAGE,
        Signature="${rsa_sig}",
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    ),
    _s(
        "verify-rsa-other-message",
        "Verify",
        KeyId="${rsa_sign}",
        Message=OTHER_MESSAGE,
        Signature="${rsa_sig}",
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    ),
    _s(
        "sign-rsa-pkcs1",
        "Sign",
        KeyId="${rsa_sign}",
        Message=MESSAGE,
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_384",
    ),
    _s(
        "sign-ecc",
        "Sign",
        KeyId="${ecc}",
        Message=MESSAGE,
        SigningAlgorithm="ECDSA_SHA_256",
        save={"ecc_sig": "Signature"},
    ),
    _s(
        "verify-ecc",
        "Verify",
        KeyId="${ecc}",
        Message=MESSAGE,
        Signature="${ecc_sig}",
        SigningAlgorithm="ECDSA_SHA_256",
    ),
    _s(
        "verify-ecc-other-message",
        "Verify",
        KeyId="${ecc}",
        Message=OTHER_MESSAGE,
        Signature="${ecc_sig}",
        SigningAlgorithm="ECDSA_SHA_256",
    ),
    _s(
        "sign-ecc-rsa-algorithm",
        "Sign",
        KeyId="${ecc}",
        Message=MESSAGE,
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    ),
    _s(
        "sign-symmetric-key",
        "Sign",
        KeyId="${k1}",
        Message=MESSAGE,
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    ),
    _s(
        "sign-invalid-algorithm",
        "Sign",
        KeyId="${ecc}",
        Message=MESSAGE,
        SigningAlgorithm="ECDSA_SHA_999",
    ),
    _s(
        "sign-digest-wrong-length",
        "Sign",
        KeyId="${ecc}",
        Message=b"0123456789",
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    ),
    _s("get-public-key-rsa", "GetPublicKey", KeyId="${rsa_sign}"),
    _s("get-public-key-ecc", "GetPublicKey", KeyId="${ecc}"),
    _s("get-public-key-symmetric", "GetPublicKey", KeyId="${k1}"),
    # -- MACs ----------------------------------------------------------------------------------
    _s(
        "generate-mac",
        "GenerateMac",
        KeyId="${hmac}",
        Message=MESSAGE,
        MacAlgorithm="HMAC_SHA_256",
        save={"mac": "Mac"},
    ),
    _s(
        "verify-mac",
        "VerifyMac",
        KeyId="${hmac}",
        Message=MESSAGE,
        Mac="${mac}",
        MacAlgorithm="HMAC_SHA_256",
    ),
    _s(
        "verify-mac-other-message",
        "VerifyMac",
        KeyId="${hmac}",
        Message=OTHER_MESSAGE,
        Mac="${mac}",
        MacAlgorithm="HMAC_SHA_256",
    ),
    _s(
        "generate-mac-wrong-algorithm",
        "GenerateMac",
        KeyId="${hmac}",
        Message=MESSAGE,
        MacAlgorithm="HMAC_SHA_512",
    ),
    _s(
        "generate-mac-symmetric-key",
        "GenerateMac",
        KeyId="${k1}",
        Message=MESSAGE,
        MacAlgorithm="HMAC_SHA_256",
    ),
    # -- grants --------------------------------------------------------------------------------
    _s(
        "create-grant",
        "CreateGrant",
        KeyId="${k1}",
        GranteePrincipal=ROOT,
        RetiringPrincipal=ROOT,
        Operations=["Encrypt", "Decrypt"],
        Name="differential-one",
        save={"g1": "GrantId"},
    ),
    _s(
        "create-grant-with-constraints",
        "CreateGrant",
        KeyId="${k1}",
        GranteePrincipal=ROOT,
        Operations=["Decrypt"],
        Constraints={"EncryptionContextSubset": {"tenant": "blue"}},
        save={"g2": "GrantId"},
    ),
    _s("list-grants", "ListGrants", KeyId="${k1}", nested=("Grants[]",)),
    _s(
        "list-retirable-grants", "ListRetirableGrants", RetiringPrincipal=ROOT, nested=("Grants[]",)
    ),
    _s(
        "create-grant-invalid-operation",
        "CreateGrant",
        KeyId="${k1}",
        GranteePrincipal=ROOT,
        Operations=["Explode"],
    ),
    _s(
        "create-grant-unknown-key",
        "CreateGrant",
        KeyId=UNKNOWN_KEY,
        GranteePrincipal=ROOT,
        Operations=["Encrypt"],
    ),
    _s(
        "create-grant-sign-on-symmetric-key",
        "CreateGrant",
        KeyId="${k1}",
        GranteePrincipal=ROOT,
        Operations=["Sign"],
    ),
    _s("retire-grant", "RetireGrant", KeyId="${k1arn}", GrantId="${g1}"),
    _s("revoke-grant", "RevokeGrant", KeyId="${k1}", GrantId="${g2}"),
    _s("revoke-grant-again", "RevokeGrant", KeyId="${k1}", GrantId="${g2}"),
    _s("list-grants-unknown-key", "ListGrants", KeyId=UNKNOWN_KEY),
    # -- imported key material -----------------------------------------------------------------
    _s(
        "get-parameters-for-import",
        "GetParametersForImport",
        KeyId="${ext}",
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    ),
    _s(
        "get-parameters-for-import-aws-kms-key",
        "GetParametersForImport",
        KeyId="${k1}",
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    ),
    _s("encrypt-pending-import", "Encrypt", KeyId="${ext}", Plaintext=b"x"),
    # -- the end: everything made goes away ----------------------------------------------------
    _s("schedule-key-deletion-default-window", "ScheduleKeyDeletion", KeyId="${k2}"),
    _s("describe-key-k2-pending-deletion", "DescribeKey", KeyId="${k2}", nested=KM),
)
