"""The differential test: one scripted sequence of KMS calls (``tests/kms_script.py``), happy and
error paths, against moto's server and against latchkey's cloud, compared step by step.

Per step: success or refusal; the error code when both refuse; for successes the set of
top-level answer members (``ResponseMetadata`` aside) and, where the step names them, the member
sets of nested structures (``KeyMetadata``, list items). Values that differ by nature (ids,
ARNs, dates, ciphertexts) are never compared.

moto is not AWS. Where it is wrong, the step is listed in ``KNOWN_MOTO_DEVIATIONS`` with the
reason, taken from the AWS KMS API reference (botocore's service model carries its text) or the
developer guide's key-state table, and with what AWS answers instead; latchkey is then checked
against that. Where latchkey is the one that differs from AWS, the step is in ``OURS_WRONG`` and
xfails strictly, so fixing it turns the run red until the entry goes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from kms_script import SCRIPT, Step
from latchkey_testing import Cloud, start_node_thread, stop_node_thread

# -- what one step answered -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """A step's answer reduced to what can be compared: the error code, or the member sets."""

    error: str | None = None
    keys: frozenset[str] = frozenset()
    nested: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def show(self) -> str:
        if self.error is not None:
            return f"error {self.error}"
        inner = {name: sorted(members) for name, members in self.nested.items()}
        return f"ok {sorted(self.keys)} {inner}" if inner else f"ok {sorted(self.keys)}"


def _resolve(value: Any, kept: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            return kept[value[2:-1]]
        while "${" in value:
            head, _, rest = value.partition("${")
            name, _, tail = rest.partition("}")
            value = f"{head}{kept[name]}{tail}"
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, kept) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, kept) for v in value]
    return value


def _member_sets(answer: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """``Name``: the members of a structure; ``Name[]``: the union over a list's items."""
    sets: dict[str, frozenset[str]] = {}
    for name in names:
        if name.endswith("[]"):
            union: set[str] = set()
            for item in answer.get(name[:-2], []):
                union |= set(item)
            sets[name] = frozenset(union)
        else:
            sets[name] = frozenset(answer.get(name, {}))
    return sets


def run_script(client: Any) -> dict[str, Outcome]:
    """Every step of the script on one target, in order, values kept per target."""
    kept: dict[str, Any] = {}
    outcomes: dict[str, Outcome] = {}
    for step in SCRIPT:
        try:
            params = _resolve(step.params, kept)
        except KeyError as missing:
            outcomes[step.name] = Outcome(error=f"unresolved {missing} (an earlier step failed)")
            continue
        try:
            answer = getattr(client, xform_name(step.op))(**params)
        except ClientError as err:
            # keep only the code: the exception's traceback would hold the connection open
            outcomes[step.name] = Outcome(error=str(err.response["Error"].get("Code")))
            continue
        answer.pop("ResponseMetadata", None)
        for name, path in step.save.items():
            value = answer
            for part in path.split("."):
                value = value[part]
            kept[name] = value
        outcomes[step.name] = Outcome(None, frozenset(answer), _member_sets(answer, step.nested))
    return outcomes


# -- where moto is wrong ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MotoWrong:
    """moto's answer to a step differs from AWS's. AWS's answer is, in this order of checks:
    the refusal ``error``; or a success with the top-level members ``keys`` (moto fails the
    step); or moto's success with the members in ``lacks`` added and those in ``adds`` removed
    (``""`` is the top level, other names are the step's nested structures)."""

    reason: str
    error: str | None = None
    keys: frozenset[str] | None = None
    lacks: Mapping[str, frozenset[str]] = field(default_factory=dict)
    adds: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def aws(self, moto: Outcome) -> Outcome:
        if self.error is not None:
            return Outcome(error=self.error)
        if self.keys is not None:
            return Outcome(keys=self.keys)
        assert moto.error is None, f"moto refused ({moto.error}); the entry expects a success"
        keys = (moto.keys | self.lacks.get("", frozenset())) - self.adds.get("", frozenset())
        nested = {
            name: (members | self.lacks.get(name, frozenset())) - self.adds.get(name, frozenset())
            for name, members in moto.nested.items()
        }
        return Outcome(None, keys, nested)


def _refuses(code: str, reason: str) -> MotoWrong:
    return MotoWrong(reason, error=code)


def _lacks(reason: str, top: str = "", **nested: str) -> MotoWrong:
    return MotoWrong(
        reason,
        lacks={"": frozenset(top.split())}
        | {f"{n}[]": frozenset(m.split()) for n, m in nested.items()},
    )


# KeyMetadata as moto builds it, against the API reference's KeyMetadata: "MultiRegion" is always
# there; "KeyUsage" too (moto leaves it out unless the request named one); "CurrentKeyMaterialId"
# is "present for symmetric encryption keys with AWS_KMS or EXTERNAL origin"; "SigningAlgorithms
# ... appears only when the KeyUsage of the KMS key is SIGN_VERIFY", "EncryptionAlgorithms ...
# only when ... ENCRYPT_DECRYPT", "MacAlgorithms ... only when ... GENERATE_VERIFY_MAC";
# "ExpirationModel ... present only when Origin is EXTERNAL".
_KM = "KeyMetadata"
_KM_SYMMETRIC = MotoWrong(
    "moto's KeyMetadata of a symmetric key lacks KeyUsage, MultiRegion and CurrentKeyMaterialId "
    "and carries SigningAlgorithms, which AWS shows only for SIGN_VERIFY keys",
    lacks={_KM: frozenset({"KeyUsage", "MultiRegion", "CurrentKeyMaterialId"})},
    adds={_KM: frozenset({"SigningAlgorithms"})},
)
_KM_ASYMMETRIC = MotoWrong(
    "moto's KeyMetadata lacks MultiRegion, which AWS always returns",
    lacks={_KM: frozenset({"MultiRegion"})},
)
_KM_HMAC = MotoWrong(
    "moto's KeyMetadata of an HMAC key lacks MultiRegion and MacAlgorithms and carries "
    "EncryptionAlgorithms and SigningAlgorithms, which AWS shows only for ENCRYPT_DECRYPT and "
    "SIGN_VERIFY keys",
    lacks={_KM: frozenset({"MultiRegion", "MacAlgorithms"})},
    adds={_KM: frozenset({"EncryptionAlgorithms", "SigningAlgorithms"})},
)
_KM_EXTERNAL = MotoWrong(
    "moto's KeyMetadata of an EXTERNAL key lacks KeyUsage and MultiRegion and carries "
    "SigningAlgorithms (ExpirationModel is absent in both: the key has no material yet)",
    lacks={_KM: frozenset({"KeyUsage", "MultiRegion"})},
    adds={_KM: frozenset({"SigningAlgorithms"})},
)
_KEY_MATERIAL_ID = (
    "moto omits KeyMaterialId, which the API reference's response syntax returns ('The "
    "identifier of the key material used ...')"
)
_NO_ENUM_CHECK = "moto does not check enum values; AWS answers ValidationException"
_NO_RANGE_CHECK = "moto does not check the model's value range; AWS answers ValidationException"
_NO_STATE_CHECK = "moto ignores the key state; AWS's key-state table gives"
_NO_USAGE_CHECK = (
    "moto ignores the key's usage and spec; AWS answers InvalidKeyUsageException ('The KeyUsage "
    "value of the KMS key is incompatible with the API operation' / 'The encryption algorithm or "
    "signing algorithm ... is incompatible with the type of key material')"
)
_MOTO_500 = "moto answers 500 (an unhandled exception in its server)"
_NOT_IN_MOTO = "moto does not implement the operation (500 NotImplementedError)"

KNOWN_MOTO_DEVIATIONS: dict[str, MotoWrong] = {
    # -- keys
    "create-key-symmetric": _KM_SYMMETRIC,
    "create-key-symmetric-2": _KM_SYMMETRIC,
    "create-key-rsa-sign": _KM_ASYMMETRIC,
    "create-key-rsa-encrypt": _KM_ASYMMETRIC,
    "create-key-ecc-sign": _KM_ASYMMETRIC,
    "create-key-hmac": _KM_HMAC,
    "create-key-external": _KM_EXTERNAL,
    "create-key-with-policy": _KM_SYMMETRIC,
    "create-key-invalid-usage": _refuses("ValidationException", _NO_ENUM_CHECK),
    "create-key-usage-mismatch": _refuses(
        "ValidationException",
        "moto creates a SYMMETRIC_DEFAULT key for SIGN_VERIFY; CreateKey's KeyUsage: 'For "
        "symmetric encryption KMS keys, omit the parameter or specify ENCRYPT_DECRYPT'",
    ),
    "create-key-hmac-without-usage": _refuses(
        "ValidationException",
        "moto defaults KeyUsage for an HMAC key; CreateKey's KeyUsage is 'optional when you are "
        "creating a symmetric encryption KMS key; otherwise, it is required'",
    ),
    "create-key-malformed-policy": _refuses(
        "MalformedPolicyDocumentException",
        "moto stores a policy that is not JSON; AWS: 'the specified policy is not syntactically "
        "or semantically correct'",
    ),
    "create-key-description-too-long": _refuses(
        "ValidationException", "moto does not check Description's length (model: at most 8,192)"
    ),
    "describe-key": _KM_SYMMETRIC,
    "describe-key-by-arn": _KM_SYMMETRIC,
    "describe-key-rsa-sign": _KM_ASYMMETRIC,
    "describe-key-rsa-encrypt": _KM_ASYMMETRIC,
    "describe-key-hmac": _KM_HMAC,
    "describe-key-external": _KM_EXTERNAL,
    "describe-key-missing-id": _refuses(
        "ValidationException", f"{_MOTO_500}; KeyId is required: 'Member must not be null'"
    ),
    "list-keys-limit-1": _lacks(
        "moto ignores Limit and never truncates; AWS pages and returns NextMarker", "NextMarker"
    ),
    "list-keys-limit-0": _refuses("ValidationException", f"{_NO_RANGE_CHECK} (Limit 1..1,000)"),
    "list-keys-limit-1001": _refuses("ValidationException", f"{_NO_RANGE_CHECK} (Limit 1..1,000)"),
    # -- enable / disable
    "describe-key-disabled": _KM_SYMMETRIC,
    "encrypt-disabled-key": _refuses("DisabledException", f"{_NO_STATE_CHECK} DisabledException"),
    "generate-data-key-disabled-key": _refuses(
        "DisabledException", f"{_NO_STATE_CHECK} DisabledException"
    ),
    # -- deletion
    "schedule-key-deletion": _lacks(
        "moto's answer lacks KeyState and PendingWindowInDays (API reference response syntax)",
        "KeyState PendingWindowInDays",
    ),
    "describe-key-pending-deletion": _KM_SYMMETRIC,
    "encrypt-pending-deletion": _refuses(
        "KMSInvalidStateException", f"{_NO_STATE_CHECK} KMSInvalidStateException (pending deletion)"
    ),
    "enable-key-pending-deletion": _refuses(
        "KMSInvalidStateException", f"{_NO_STATE_CHECK} KMSInvalidStateException (pending deletion)"
    ),
    "schedule-key-deletion-again": _refuses(
        "KMSInvalidStateException", f"{_NO_STATE_CHECK} KMSInvalidStateException (pending deletion)"
    ),
    "describe-key-after-cancel": _KM_SYMMETRIC,
    "cancel-key-deletion-not-pending": _refuses(
        "KMSInvalidStateException",
        f"{_NO_STATE_CHECK} KMSInvalidStateException ('is not pending deletion')",
    ),
    "schedule-key-deletion-window-6": _refuses(
        "ValidationException",
        "moto accepts any window; ScheduleKeyDeletion: 'it must be between 7 and 30, inclusive'",
    ),
    "schedule-key-deletion-window-31": _refuses(
        "ValidationException",
        "moto accepts any window; ScheduleKeyDeletion: 'it must be between 7 and 30, inclusive'",
    ),
    # -- aliases
    "create-alias-reserved-prefix": _refuses(
        "NotAuthorizedException",
        "moto refuses only a fixed list of alias/aws/ names; CreateAlias: 'The alias name cannot "
        "begin with alias/aws/'. The code is the one moto itself gives for its listed names "
        "(step create-alias-reserved-name); the public model names none",
    ),
    "describe-key-by-alias": _KM_SYMMETRIC,
    "encrypt-by-alias": _lacks(
        "moto's Encrypt answer lacks EncryptionAlgorithm", "EncryptionAlgorithm"
    ),
    "list-aliases": _lacks(
        "moto's alias entries lack CreationDate and LastUpdatedDate (AliasListEntry)",
        Aliases="CreationDate LastUpdatedDate",
    ),
    "list-aliases-for-key": _lacks(
        "moto's alias entries lack CreationDate and LastUpdatedDate (AliasListEntry)",
        Aliases="CreationDate LastUpdatedDate",
    ),
    # -- tags
    "tag-resource-aws-prefix": _refuses(
        "TagException", "moto accepts tag keys beginning with the reserved 'aws:' prefix"
    ),
    # -- key policies
    "get-key-policy": _lacks("moto's answer lacks PolicyName (response syntax)", "PolicyName"),
    "put-key-policy-malformed": _refuses(
        "MalformedPolicyDocumentException", "moto stores a policy that is not JSON"
    ),
    # -- rotation
    "get-key-rotation-status-off": _lacks("moto's answer lacks KeyId (response syntax)", "KeyId"),
    "get-key-rotation-status-on": _lacks(
        "moto's answer lacks KeyId, RotationPeriodInDays and NextRotationDate",
        "KeyId RotationPeriodInDays NextRotationDate",
    ),
    "enable-key-rotation-period-89": _refuses(
        "ValidationException", f"{_NO_RANGE_CHECK} (RotationPeriodInDays 90..2,560)"
    ),
    "enable-key-rotation-asymmetric": _refuses(
        "UnsupportedOperationException",
        "moto enables rotation of an RSA key; EnableKeyRotation: 'You cannot enable automatic "
        "rotation of asymmetric KMS keys'",
    ),
    "list-key-rotations": _lacks(
        "moto's rotation entries lack KeyMaterialId and KeyMaterialState (RotationsListEntry)",
        Rotations="KeyMaterialId KeyMaterialState",
    ),
    "rotate-key-on-demand-hmac": _refuses(
        "UnsupportedOperationException",
        "moto rotates an HMAC key; RotateKeyOnDemand: 'You cannot perform on-demand rotation of "
        "asymmetric KMS keys, HMAC KMS keys'",
    ),
    # -- encrypt / decrypt / re-encrypt
    "encrypt": _lacks("moto's Encrypt answer lacks EncryptionAlgorithm", "EncryptionAlgorithm"),
    "encrypt-without-context": _lacks(
        "moto's Encrypt answer lacks EncryptionAlgorithm", "EncryptionAlgorithm"
    ),
    "decrypt": _lacks(
        f"moto's Decrypt answer lacks EncryptionAlgorithm; {_KEY_MATERIAL_ID} (for Decrypt "
        "'present only when the operation uses a symmetric encryption KMS key')",
        "EncryptionAlgorithm KeyMaterialId",
    ),
    "decrypt-without-context": _lacks(
        f"moto's Decrypt answer lacks EncryptionAlgorithm; {_KEY_MATERIAL_ID}",
        "EncryptionAlgorithm KeyMaterialId",
    ),
    "decrypt-with-key-id": _lacks(
        f"moto's Decrypt answer lacks EncryptionAlgorithm; {_KEY_MATERIAL_ID}",
        "EncryptionAlgorithm KeyMaterialId",
    ),
    "decrypt-wrong-key-id": _refuses(
        "IncorrectKeyException",
        "moto answers AccessDeniedException; Decrypt's KeyId: 'If you identify a different KMS "
        "key, the Decrypt operation throws an IncorrectKeyException'",
    ),
    "decrypt-garbage": _refuses(
        "InvalidCiphertextException",
        "moto answers AccessDeniedException for a ciphertext it cannot parse",
    ),
    "encrypt-sign-key": _refuses("InvalidKeyUsageException", _NO_USAGE_CHECK),
    "encrypt-hmac-key": _refuses("InvalidKeyUsageException", _NO_USAGE_CHECK),
    "encrypt-invalid-algorithm": _refuses("ValidationException", _NO_ENUM_CHECK),
    "encrypt-rsa": _lacks("moto's Encrypt answer lacks EncryptionAlgorithm", "EncryptionAlgorithm"),
    "decrypt-rsa": _lacks("moto's Decrypt answer lacks EncryptionAlgorithm", "EncryptionAlgorithm"),
    "encrypt-rsa-symmetric-algorithm": _refuses("InvalidKeyUsageException", _NO_USAGE_CHECK),
    "re-encrypt": _lacks(
        "moto's ReEncrypt answer lacks SourceEncryptionAlgorithm and DestinationEncryptionAlgorithm"
        ", and SourceKeyMaterialId and DestinationKeyMaterialId ('present only when ... a "
        "symmetric encryption KMS key')",
        "SourceEncryptionAlgorithm DestinationEncryptionAlgorithm SourceKeyMaterialId "
        "DestinationKeyMaterialId",
    ),
    # -- data keys and random
    "generate-data-key": _lacks(_KEY_MATERIAL_ID, "KeyMaterialId"),
    "generate-data-key-bytes": _lacks(_KEY_MATERIAL_ID, "KeyMaterialId"),
    "generate-data-key-asymmetric-key": _refuses(
        "InvalidKeyUsageException",
        f"{_NO_USAGE_CHECK}; GenerateDataKey needs a symmetric encryption KMS key",
    ),
    "generate-data-key-without-plaintext": _lacks(_KEY_MATERIAL_ID, "KeyMaterialId"),
    "generate-data-key-pair": MotoWrong(
        _NOT_IN_MOTO,
        keys=frozenset(
            {
                "KeyId",
                "KeyPairSpec",
                "PrivateKeyCiphertextBlob",
                "PrivateKeyPlaintext",
                "PublicKey",
                "KeyMaterialId",
            }
        ),
    ),
    "generate-data-key-pair-without-plaintext": MotoWrong(
        _NOT_IN_MOTO,
        keys=frozenset(
            {"KeyId", "KeyPairSpec", "PrivateKeyCiphertextBlob", "PublicKey", "KeyMaterialId"}
        ),
    ),
    "generate-random-0": _refuses("ValidationException", f"{_NO_RANGE_CHECK} (1..1,024)"),
    # -- sign / verify / public keys
    "verify-rsa-other-message": _refuses(
        "KMSInvalidSignatureException",
        "moto answers SignatureValid: false; Verify: 'If the signature verification fails, the "
        "Verify operation fails with an KMSInvalidSignatureException exception'",
    ),
    "verify-ecc-other-message": _refuses(
        "KMSInvalidSignatureException",
        "moto answers SignatureValid: false (see verify-rsa-other-message)",
    ),
    "sign-ecc-rsa-algorithm": _refuses(
        "InvalidKeyUsageException",
        "moto answers ValidationException; AWS: InvalidKeyUsageException when 'the ... signing "
        "algorithm specified for the operation is incompatible with the type of key material'",
    ),
    "sign-symmetric-key": _refuses(
        "InvalidKeyUsageException",
        "moto answers ValidationException; AWS: InvalidKeyUsageException when 'The KeyUsage "
        "value of the KMS key is incompatible with the API operation'",
    ),
    "sign-digest-wrong-length": _refuses(
        "ValidationException",
        "moto signs a 10-byte 'digest' for ECDSA_SHA_256; Sign: 'When the value of MessageType "
        "is DIGEST, the length of the Message value must match the length of hashed messages "
        "for the specified signing algorithm' (the code is latchkey's reading: the reference "
        "names none)",
    ),
    "get-public-key-rsa": _lacks("moto's answer lacks KeySpec (response syntax)", "KeySpec"),
    "get-public-key-ecc": _lacks("moto's answer lacks KeySpec (response syntax)", "KeySpec"),
    "get-public-key-symmetric": _refuses(
        "UnsupportedOperationException",
        "moto returns a 'public key' for a symmetric key; GetPublicKey 'Returns the public key "
        "of an asymmetric KMS key' (the code is latchkey's choice of the two the reference "
        "lists, UnsupportedOperationException and InvalidKeyUsageException)",
    ),
    # -- MACs
    "generate-mac-wrong-algorithm": _refuses("InvalidKeyUsageException", _NO_USAGE_CHECK),
    # -- grants
    "list-grants": _lacks(
        "moto's grant entries lack CreationDate and IssuingAccount (GrantListEntry)",
        Grants="CreationDate IssuingAccount",
    ),
    "list-retirable-grants": _lacks(
        "moto's grant entries lack CreationDate and IssuingAccount (GrantListEntry)",
        Grants="CreationDate IssuingAccount",
    ),
    "create-grant-invalid-operation": _refuses("ValidationException", _NO_ENUM_CHECK),
    "create-grant-unknown-key": _refuses("NotFoundException", _MOTO_500),
    "create-grant-sign-on-symmetric-key": _refuses(
        "ValidationException",
        "moto grants Sign on a symmetric key; CreateGrant's Operations: 'you cannot create a "
        "grant for a symmetric encryption KMS key that allows the Sign operation ... KMS returns "
        "a ValidationError exception'",
    ),
    "list-grants-unknown-key": _refuses("NotFoundException", _MOTO_500),
    # -- imported key material
    "get-parameters-for-import": MotoWrong(
        _NOT_IN_MOTO, keys=frozenset({"KeyId", "ImportToken", "PublicKey", "ParametersValidTo"})
    ),
    "get-parameters-for-import-aws-kms-key": _refuses(
        "UnsupportedOperationException",
        f"{_NOT_IN_MOTO}; the key-state table: 'If the KMS key cannot ... have imported key "
        "material: UnsupportedOperationException'",
    ),
    "encrypt-pending-import": _refuses(
        "KMSInvalidStateException", f"{_NO_STATE_CHECK} KMSInvalidStateException (pending import)"
    ),
    # -- the end
    "schedule-key-deletion-default-window": _lacks(
        "moto's answer lacks KeyState and PendingWindowInDays (API reference response syntax)",
        "KeyState PendingWindowInDays",
    ),
    "describe-key-k2-pending-deletion": _KM_SYMMETRIC,
}

# -- where latchkey differs from AWS ----------------------------------------------------------

# Empty now: the KeyMaterialId members, CurrentKeyMaterialId only on symmetric keys and no
# PendingDeletionWindowInDays outside PendingReplicaDeletion were fixed after this test found them.
OURS_WRONG: dict[str, str] = {}

# -- the two targets --------------------------------------------------------------------------

UNVALIDATED = BotoConfig(retries={"max_attempts": 1}, proxies={}, parameter_validation=False)


@pytest.fixture(scope="module")
def moto_outcomes() -> Iterator[dict[str, Outcome]]:
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "kms",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="AKIAMOTODIFFERENTIAL",
            aws_secret_access_key="moto-does-not-check-this",
            config=UNVALIDATED,
        )
        try:
            yield run_script(client)
        finally:
            client.close()
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def our_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    handle, thread = start_node_thread(tmp_path_factory.mktemp("differential") / "data")
    cloud = Cloud(handle)
    try:
        yield run_script(cloud.unvalidated("kms"))
    finally:
        cloud.close()
        stop_node_thread(handle, thread)


def _param(step: Step) -> Any:
    marks = []
    if step.name in OURS_WRONG:
        marks.append(pytest.mark.xfail(strict=True, reason=OURS_WRONG[step.name]))
    return pytest.param(step, id=step.name, marks=marks)


# -- the tests --------------------------------------------------------------------------------


def test_the_script_is_sound() -> None:
    """About a hundred calls or more, unique names, real operations, and the tables name only
    steps of the script."""
    names = [step.name for step in SCRIPT]
    assert len(names) >= 100
    assert len(set(names)) == len(names)
    model = botocore.session.get_session().get_service_model("kms")
    assert {step.op for step in SCRIPT} <= set(model.operation_names)
    assert set(KNOWN_MOTO_DEVIATIONS) <= set(names)
    assert set(OURS_WRONG) <= set(names)


@pytest.mark.parametrize("step", [_param(step) for step in SCRIPT])
def test_step_answers_as_aws(
    step: Step, our_outcomes: dict[str, Outcome], moto_outcomes: dict[str, Outcome]
) -> None:
    ours, moto = our_outcomes[step.name], moto_outcomes[step.name]
    wrong = KNOWN_MOTO_DEVIATIONS.get(step.name)
    expected = moto if wrong is None else wrong.aws(moto)
    why = "moto's answer" if wrong is None else f"AWS's answer ({wrong.reason})"
    assert ours == expected, f"{step.op}: latchkey {ours.show()}; expected {why}: {expected.show()}"


def test_every_listed_moto_deviation_is_still_one(moto_outcomes: dict[str, Outcome]) -> None:
    """The table stays honest: an entry whose step moto now answers as AWS does goes."""
    fixed = [
        name
        for name, wrong in KNOWN_MOTO_DEVIATIONS.items()
        if moto_outcomes[name] == wrong.aws(moto_outcomes[name])
    ]
    assert not fixed, f"moto now answers these as AWS does; drop them from the table: {fixed}"


def test_our_answers_use_only_members_of_the_model(our_outcomes: dict[str, Outcome]) -> None:
    """Every member latchkey returns exists in botocore's output shape of the operation."""
    model = botocore.session.get_session().get_service_model("kms")
    strays = {}
    for step in SCRIPT:
        outcome = our_outcomes[step.name]
        output = model.operation_model(step.op).output_shape
        known = set(output.members) if output is not None else set()
        if outcome.error is None and not outcome.keys <= known:
            strays[step.name] = sorted(outcome.keys - known)
    assert not strays
