"""The cryptographic operations through real boto3: round trips, results checked with pyca the
way real clients check them (the public key from GetPublicKey), and AWS's refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa

from latchkey_testing import (
    ROOT,
    Cloud,
    allow,
    deny,
    policy,
    refused,
    start_node_thread,
    stop_node_thread,
)

MESSAGE = b"the message latchkey signs"
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    handle, thread = start_node_thread(tmp_path_factory.mktemp("crypto") / "data")
    made = Cloud(handle)
    try:
        yield made
    finally:
        made.close()
        stop_node_thread(handle, thread)


@pytest.fixture(scope="module")
def kms(cloud: Cloud) -> Any:
    return cloud.client("kms")


@pytest.fixture(scope="module")
def key(kms: Any) -> Callable[..., str]:
    """One key per (spec, usage) for the module; generation is the slow part."""
    made: dict[tuple[str, str], str] = {}

    def get(spec: str = "SYMMETRIC_DEFAULT", usage: str = "ENCRYPT_DECRYPT") -> str:
        if (spec, usage) not in made:
            meta = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
            made[spec, usage] = meta["KeyId"]
        return made[spec, usage]

    return get


def public_key(kms: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def arn_of(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])


# -- symmetric encryption ----------------------------------------------------------------------


def test_symmetric_round_trip_needs_no_key_id_and_the_exact_context(kms: Any, key: Any) -> None:
    ctx = {"tenant": "a", "purpose": "test"}
    out = kms.encrypt(KeyId=key(), Plaintext=b"secret", EncryptionContext=ctx)
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(ctx.items())))
    assert (back["Plaintext"], back["KeyId"]) == (b"secret", out["KeyId"])
    for wrong in ({}, {"tenant": "b", "purpose": "test"}, {"tenant": "a"}):
        assert refused(kms.decrypt, CiphertextBlob=blob, EncryptionContext=wrong) == (
            "InvalidCiphertextException",
            400,
            "",
        )
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    err = refused(kms.decrypt, CiphertextBlob=tampered, EncryptionContext=ctx)
    assert err.code == "InvalidCiphertextException"


def test_decrypt_with_another_key_id_is_incorrect_key(kms: Any, key: Any) -> None:
    blob = kms.encrypt(KeyId=key(), Plaintext=b"x")["CiphertextBlob"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId=other) == (
        "IncorrectKeyException",
        400,
        "The key ID in the request does not identify a CMK that can perform this operation.",
    )
    hmac_key = key("HMAC_256", "GENERATE_VERIFY_MAC")
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId=hmac_key).code == (
        "IncorrectKeyException"
    )
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key())["Plaintext"] == b"x"


def test_symmetric_key_refuses_an_rsa_algorithm(kms: Any, key: Any) -> None:
    err = refused(kms.encrypt, KeyId=key(), Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert err == (
        "InvalidKeyUsageException",
        400,
        "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT.",
    )


def test_encrypt_with_a_signing_key_is_wrong_usage(kms: Any, key: Any) -> None:
    key_id = key("RSA_2048", "SIGN_VERIFY")
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x") == (
        "InvalidKeyUsageException",
        400,
        f"{arn_of(kms, key_id)} key usage is SIGN_VERIFY which is not valid for Encrypt.",
    )


# -- RSA encryption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "digest", "limit"),
    [("RSAES_OAEP_SHA_1", hashes.SHA1, 214), ("RSAES_OAEP_SHA_256", hashes.SHA256, 190)],
)
def test_rsa_encryption(
    kms: Any, key: Any, algorithm: str, digest: Callable[[], hashes.HashAlgorithm], limit: int
) -> None:
    key_id = key("RSA_2048", "ENCRYPT_DECRYPT")
    out = kms.encrypt(KeyId=key_id, Plaintext=b"p" * limit, EncryptionAlgorithm=algorithm)
    assert len(out["CiphertextBlob"]) == 256  # raw RSA output
    back = kms.decrypt(
        KeyId=key_id, CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm=algorithm
    )
    assert (back["Plaintext"], back["EncryptionAlgorithm"]) == (b"p" * limit, algorithm)
    # A client encrypts offline with the public key; KMS decrypts.
    public = public_key(kms, key_id)
    assert isinstance(public, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
    offline = public.encrypt(b"made offline", oaep)
    again = kms.decrypt(KeyId=key_id, CiphertextBlob=offline, EncryptionAlgorithm=algorithm)
    assert again["Plaintext"] == b"made offline"
    assert refused(
        kms.encrypt, KeyId=key_id, Plaintext=b"p" * (limit + 1), EncryptionAlgorithm=algorithm
    ) == (
        "ValidationException",
        400,
        f"Algorithm {algorithm} and key spec RSA_2048 cannot encrypt data larger than "
        f"{limit} bytes.",
    )


def test_rsa_decrypt_needs_the_key_and_the_algorithm(kms: Any, key: Any) -> None:
    key_id = key("RSA_2048", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")[
        "CiphertextBlob"
    ]
    assert refused(kms.decrypt, CiphertextBlob=blob).code == "InvalidCiphertextException"
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId=key_id) == (
        "InvalidKeyUsageException",
        400,
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
    )
    wrong = refused(
        kms.decrypt, CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
    )
    assert wrong == ("InvalidCiphertextException", 400, "")
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x").message == (
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    )


# -- ReEncrypt -----------------------------------------------------------------------------------


def test_re_encrypt_across_keys_and_kinds(kms: Any, key: Any) -> None:
    first, second = key(), kms.create_key()["KeyMetadata"]["KeyId"]
    rsa_key = key("RSA_2048", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=first, Plaintext=b"move me", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]
    moved = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=second,
        DestinationEncryptionContext={"b": "2"},
    )
    assert moved["SourceKeyId"] == arn_of(kms, first)
    assert moved["KeyId"] == arn_of(kms, second)
    assert (
        kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"b": "2"})[
            "Plaintext"
        ]
        == b"move me"
    )
    to_rsa = kms.re_encrypt(
        CiphertextBlob=moved["CiphertextBlob"],
        SourceEncryptionContext={"b": "2"},
        DestinationKeyId=rsa_key,
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert to_rsa["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    back = kms.re_encrypt(
        CiphertextBlob=to_rsa["CiphertextBlob"],
        SourceKeyId=rsa_key,
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationKeyId=first,
    )
    assert kms.decrypt(CiphertextBlob=back["CiphertextBlob"])["Plaintext"] == b"move me"
    err = refused(
        kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"a": "2"},
        DestinationKeyId=second,
    )  # fmt: skip
    assert err.code == "InvalidCiphertextException"
    signing = key("ECC_NIST_P256", "SIGN_VERIFY")
    err = refused(
        kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"a": "1"},
        DestinationKeyId=signing,
    )  # fmt: skip
    assert err.message == (
        f"{arn_of(kms, signing)} key usage is SIGN_VERIFY which is not valid for ReEncrypt."
    )


@pytest.mark.parametrize("denied", ["kms:ReEncryptFrom", "kms:ReEncryptTo"])
def test_re_encrypt_needs_both_permissions(kms: Any, denied: str) -> None:
    doc = policy(allow("kms:*", ROOT), deny(denied, ROOT))
    guarded = kms.create_key(Policy=doc, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    source, dest = (
        (guarded["KeyId"], other) if denied.endswith("From") else (other, guarded["KeyId"])
    )
    blob = kms.encrypt(KeyId=source, Plaintext=b"x")["CiphertextBlob"]
    err = refused(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dest)
    assert err[:2] == ("AccessDeniedException", 400)
    assert f"perform: {denied} on resource: {guarded['Arn']}" in err.message


# -- data keys and random bytes ------------------------------------------------------------------


def test_data_keys(kms: Any, key: Any) -> None:
    ctx = {"file": "f1"}
    out = kms.generate_data_key(KeyId=key(), KeySpec="AES_256", EncryptionContext=ctx)
    assert len(out["Plaintext"]) == 32
    back = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=ctx)
    assert back["Plaintext"] == out["Plaintext"]
    bare = kms.generate_data_key_without_plaintext(KeyId=key(), NumberOfBytes=64)
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 64
    rsa_key = key("RSA_2048", "ENCRYPT_DECRYPT")
    err = refused(kms.generate_data_key, KeyId=rsa_key, KeySpec="AES_128")
    assert err[:2] == ("InvalidKeyUsageException", 400)


@pytest.mark.parametrize(
    ("pair_spec", "kind"),
    [
        ("ECC_NIST_P256", ec.EllipticCurvePrivateKey),
        ("RSA_2048", rsa.RSAPrivateKey),
        ("ECC_NIST_EDWARDS25519", ed25519.Ed25519PrivateKey),
        ("ML_KEM_768", mlkem.MLKEM768PrivateKey),
    ],
)
def test_data_key_pairs(kms: Any, key: Any, pair_spec: str, kind: type) -> None:
    ctx = {"pair": pair_spec}
    out = kms.generate_data_key_pair(KeyId=key(), KeyPairSpec=pair_spec, EncryptionContext=ctx)
    assert out["KeyPairSpec"] == pair_spec
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], None)
    assert isinstance(private, kind)
    assert private.public_key().public_bytes(DER, SPKI) == out["PublicKey"]
    sealed = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert sealed["Plaintext"] == out["PrivateKeyPlaintext"]
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=key(), KeyPairSpec=pair_spec)
    assert "PrivateKeyPlaintext" not in bare
    assert bare["PublicKey"] != out["PublicKey"]


def test_data_key_pair_refusals(kms: Any, key: Any) -> None:
    err = refused(kms.generate_data_key_pair, KeyId=key(), KeyPairSpec="SM2")
    assert err == (
        "UnsupportedOperationException",
        400,
        "KeyPairSpec SM2 is not supported in this Region",
    )
    err = refused(
        kms.generate_data_key_pair, KeyId=key("ECC_NIST_P256", "SIGN_VERIFY"),
        KeyPairSpec="ECC_NIST_P256",
    )  # fmt: skip
    assert err[:2] == ("InvalidKeyUsageException", 400)


def test_recipient_is_refused_not_ignored(kms: Any, key: Any) -> None:
    """A Nitro Enclaves recipient wants the result sealed to its key; answering in the clear
    would hand out what it meant to receive sealed."""
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"}
    blob = kms.encrypt(KeyId=key(), Plaintext=b"x")["CiphertextBlob"]
    for call, kwargs in [
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key(), "KeySpec": "AES_256"}),
        (kms.generate_random, {"NumberOfBytes": 8}),
    ]:
        err = refused(call, Recipient=recipient, **kwargs)
        assert err[:2] == ("UnsupportedOperationException", 400)
        assert "Nitro Enclaves" in err.message


def test_generate_random(cloud: Cloud, kms: Any) -> None:
    first = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    assert len(first) == 1024
    assert kms.generate_random(NumberOfBytes=1024)["Plaintext"] != first
    raw = cloud.unvalidated("kms")
    assert refused(raw.generate_random, NumberOfBytes=0).message == (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    )
    assert refused(raw.generate_random, NumberOfBytes=1025).message.endswith(
        "Member must have value less than or equal to 1024"
    )
    assert refused(raw.generate_random) == (
        "ValidationException",
        400,
        "NumberOfBytes is required.",
    )
    err = refused(kms.generate_random, NumberOfBytes=8, CustomKeyStoreId="cks-1")
    assert err.code == "UnsupportedOperationException"


# -- signatures ----------------------------------------------------------------------------------

SIGNING = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
]
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def pyca_verify(public: Any, algorithm: str, signature: bytes, message: bytes) -> None:
    digest = HASHES[algorithm[-3:]]()
    if isinstance(public, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        if "PSS" in algorithm:
            pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        public.verify(signature, message, pad, digest)
    else:
        public.verify(signature, message, ec.ECDSA(digest))


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING)
def test_sign_and_verify(kms: Any, key: Any, spec: str, algorithm: str) -> None:
    key_id = key(spec, "SIGN_VERIFY")
    public = public_key(kms, key_id)
    out = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)
    assert out["SigningAlgorithm"] == algorithm
    pyca_verify(public, algorithm, out["Signature"], MESSAGE)
    digest = hashlib.new(f"sha{algorithm[-3:]}", MESSAGE).digest()
    over_digest = kms.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm
    )["Signature"]
    pyca_verify(public, algorithm, over_digest, MESSAGE)  # the digest's signature is the message's
    assert kms.verify(
        KeyId=key_id, Message=MESSAGE, Signature=over_digest, SigningAlgorithm=algorithm
    )["SignatureValid"]
    assert refused(
        kms.verify, KeyId=key_id, Message=MESSAGE + b"!", Signature=out["Signature"],
        SigningAlgorithm=algorithm,
    ) == ("KMSInvalidSignatureException", 400, "")  # fmt: skip
    assert refused(
        kms.sign, KeyId=key_id, Message=MESSAGE, MessageType="DIGEST", SigningAlgorithm=algorithm
    ) == ("ValidationException", 400, f"Digest is invalid length for algorithm {algorithm}.")


def test_signing_refusals(kms: Any, key: Any) -> None:
    p256 = key("ECC_NIST_P256", "SIGN_VERIFY")
    assert refused(kms.sign, KeyId=p256, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_384") == (
        "InvalidKeyUsageException",
        400,
        "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
    )
    encrypting = key("RSA_2048", "ENCRYPT_DECRYPT")
    err = refused(
        kms.sign, KeyId=encrypting, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256"
    )
    assert err == (
        "InvalidKeyUsageException",
        400,
        f"{arn_of(kms, encrypting)} key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
    )
    assert refused(
        kms.verify, KeyId=key(), Message=MESSAGE, Signature=b"sig", SigningAlgorithm="ECDSA_SHA_256"
    ).message.endswith("key usage is ENCRYPT_DECRYPT which is not valid for Verify.")


def test_ed25519(kms: Any, key: Any) -> None:
    key_id = key("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    public = public_key(kms, key_id)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ED25519_SHA_512")
    public.verify(signature["Signature"], MESSAGE)
    err = refused(
        kms.sign, KeyId=key_id, Message=b"d" * 64, MessageType="DIGEST",
        SigningAlgorithm="ED25519_SHA_512",
    )  # fmt: skip
    assert err == (
        "ValidationException",
        400,
        "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.",
    )
    err = refused(
        kms.sign, KeyId=key_id, Message=b"d" * 64, MessageType="DIGEST",
        SigningAlgorithm="ED25519_PH_SHA_512",
    )  # fmt: skip
    assert err[:2] == ("UnsupportedOperationException", 400)  # pyca has no Ed25519ph


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_87"])
def test_ml_dsa_raw_and_external_mu(kms: Any, key: Any, spec: str) -> None:
    key_id = key(spec, "SIGN_VERIFY")
    public = public_key(kms, key_id)
    assert isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA87PublicKey)
    raw = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ML_DSA_SHAKE_256")
    public.verify(raw["Signature"], MESSAGE)
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(MESSAGE)
    mu = hasher.finalize()
    over_mu = kms.sign(
        KeyId=key_id, Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256"
    )
    public.verify(over_mu["Signature"], MESSAGE)
    assert kms.verify(
        KeyId=key_id, Message=MESSAGE, Signature=over_mu["Signature"],
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )["SignatureValid"]  # fmt: skip
    err = refused(
        kms.sign, KeyId=key_id, Message=b"d" * 32, MessageType="DIGEST",
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )  # fmt: skip
    assert err[:2] == ("ValidationException", 400)
    err = refused(
        kms.sign, KeyId=key_id, Message=b"m" * 63, MessageType="EXTERNAL_MU",
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )  # fmt: skip
    assert err.message == "Digest is invalid length for algorithm ML_DSA_SHAKE_256."


def test_signing_algorithm_condition_key(kms: Any) -> None:
    condition = {"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}}
    doc = policy(allow("kms:*", ROOT), {**deny("kms:Sign", ROOT), "Condition": condition})
    meta = kms.create_key(
        KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Policy=doc, BypassPolicyLockoutSafetyCheck=True
    )["KeyMetadata"]
    kms.sign(KeyId=meta["KeyId"], Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")
    err = refused(
        kms.sign, KeyId=meta["KeyId"], Message=MESSAGE,
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )  # fmt: skip
    assert err.code == "AccessDeniedException"


def test_dry_run(kms: Any, key: Any) -> None:
    want = (
        "DryRunOperationException",
        412,
        "The request would have succeeded, but the DryRun option is set.",
    )
    assert refused(kms.encrypt, KeyId=key(), Plaintext=b"x", DryRun=True) == want
    signer = key("ECC_NIST_P256", "SIGN_VERIFY")
    assert (
        refused(
            kms.sign, KeyId=signer, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256", DryRun=True
        )
        == want
    )
    assert refused(kms.generate_data_key, KeyId=key(), KeySpec="AES_256", DryRun=True) == want
    doc = policy(allow("kms:*", ROOT), deny("kms:Encrypt", ROOT))
    denied = kms.create_key(Policy=doc, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    err = refused(kms.encrypt, KeyId=denied["KeyId"], Plaintext=b"x", DryRun=True)
    assert err.code == "AccessDeniedException"  # authorization comes first


# -- HMAC ----------------------------------------------------------------------------------------


def test_mac(kms: Any, key: Any) -> None:
    key_id = key("HMAC_256", "GENERATE_VERIFY_MAC")
    out = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")
    assert len(out["Mac"]) == 32
    again = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")
    assert again["Mac"] == out["Mac"]
    assert kms.verify_mac(
        KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256", Mac=out["Mac"]
    )["MacValid"]
    assert refused(
        kms.verify_mac, KeyId=key_id, Message=b"other", MacAlgorithm="HMAC_SHA_256", Mac=out["Mac"]
    ) == ("KMSInvalidMacException", 400, "")
    assert refused(
        kms.generate_mac, KeyId=key_id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_512"
    ) == (
        "InvalidKeyUsageException",
        400,
        "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
    )
    err = refused(kms.generate_mac, KeyId=key(), Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")
    assert err.message.endswith("key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.")


# -- key agreement and encapsulation -------------------------------------------------------------


def test_derive_shared_secret(kms: Any, key: Any) -> None:
    ours = key("ECC_NIST_P256", "KEY_AGREEMENT")
    theirs = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    ours_public = kms.get_public_key(KeyId=ours)["PublicKey"]
    theirs_public = kms.get_public_key(KeyId=theirs["KeyId"])["PublicKey"]
    one = kms.derive_shared_secret(
        KeyId=ours, KeyAgreementAlgorithm="ECDH", PublicKey=theirs_public
    )
    two = kms.derive_shared_secret(
        KeyId=theirs["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=ours_public
    )
    assert one["SharedSecret"] == two["SharedSecret"]
    assert (one["KeyAgreementAlgorithm"], one["KeyOrigin"]) == ("ECDH", "AWS_KMS")
    local = ec.generate_private_key(ec.SECP256R1())
    peer = serialization.load_der_public_key(ours_public)
    assert isinstance(peer, ec.EllipticCurvePublicKey)
    with_local = kms.derive_shared_secret(
        KeyId=ours,
        KeyAgreementAlgorithm="ECDH",
        PublicKey=local.public_key().public_bytes(DER, SPKI),
    )
    assert with_local["SharedSecret"] == local.exchange(ec.ECDH(), peer)
    err = refused(
        kms.derive_shared_secret, KeyId=ours, KeyAgreementAlgorithm="ECDH", PublicKey=b"garbage"
    )
    assert err == ("ValidationException", 400, "")
    signing = key("ECC_NIST_P256", "SIGN_VERIFY")
    err = refused(
        kms.derive_shared_secret, KeyId=signing, KeyAgreementAlgorithm="ECDH",
        PublicKey=theirs_public,
    )  # fmt: skip
    assert err.message == (
        f"{arn_of(kms, signing)} key usage is SIGN_VERIFY which is not valid for "
        "DeriveSharedSecret."
    )


def test_encapsulate_and_decapsulate(kms: Any, key: Any) -> None:
    key_id = key("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")
    out = kms.encapsulate(KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
    assert len(out["SharedSecret"]) == 32
    back = kms.decapsulate(
        KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
        SharedSecretCiphertextBlob=out["SharedSecretCiphertextBlob"],
    )  # fmt: skip
    assert back["SharedSecret"] == out["SharedSecret"]
    public = public_key(kms, key_id)
    assert isinstance(public, mlkem.MLKEM768PublicKey)
    secret, ciphertext = public.encapsulate()  # a peer with only the public key
    from_peer = kms.decapsulate(
        KeyId=key_id, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=ciphertext
    )
    assert from_peer["SharedSecret"] == secret
    err = refused(
        kms.decapsulate, KeyId=key_id, EncapsulationAlgorithm="ML_KEM",
        SharedSecretCiphertextBlob=ciphertext[:-1],
    )  # fmt: skip
    assert err == ("InvalidCiphertextException", 400, "")
    err = refused(kms.encapsulate, KeyId=key(), EncapsulationAlgorithm="ML_KEM")
    assert err.message.endswith("key usage is ENCRYPT_DECRYPT which is not valid for Encapsulate.")


# -- material versions ---------------------------------------------------------------------------


def test_encrypts_with_the_current_version_and_decrypts_with_the_blobs(
    cloud: Cloud, kms: Any
) -> None:
    """Rotation adds material versions: old blobs keep opening with the version they name."""
    from dataclasses import replace

    from latchkey.cloud.kms.keys import MATERIAL_KIND, material_record_id
    from latchkey.store.base import KeyMaterialRecord

    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    old = kms.encrypt(KeyId=key_id, Plaintext=b"v1")["CiphertextBlob"]
    node = cloud.node.node
    assert node.store is not None
    assert node.root_key is not None
    wrapped = node.root_key.wrap(MATERIAL_KIND, material_record_id(key_id, 2), b"\x02" * 32)
    record = node.store.load_kms_key(key_id)
    assert record is not None
    node.store.save_key_material(
        KeyMaterialRecord(key_id, 2, wrapped, record.created), replace(record, current_version=2)
    )
    new = kms.encrypt(KeyId=key_id, Plaintext=b"v2")["CiphertextBlob"]
    assert new[17:21] == (2).to_bytes(4, "big")
    assert old[17:21] == (1).to_bytes(4, "big")
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"v1"
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"v2"
