"""Key rotation as AWS KMS answers it (real boto3, real node): automatic rotation switched on
and off, on-demand rotation and its limit, the rotation history, and the sweeper performing a
rotation that has fallen due. A rotated key encrypts with its newest material and still
decrypts what older material encrypted (the ciphertext names its material version)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from latchkey.crypto import ciphertext
from latchkey_testing import Cloud, SettableClock, allow, policy, refused

DAY = 86400


def sweep_after(cloud: Cloud, clock: SettableClock, seconds: float) -> None:
    """One sweep of the node's sweeper ``seconds`` from now, on the node's loop; then the
    clock goes back (SigV4 needs real time)."""
    sweeper = cloud.node.node.sweeper
    assert sweeper is not None

    async def once() -> None:
        await sweeper.sweep()

    clock.advance(seconds)
    try:
        cloud.node.run(once())
    finally:
        clock.advance(-seconds)


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def rotation_status(kms: Any, key_id: str) -> dict[str, Any]:
    status = kms.get_key_rotation_status(KeyId=key_id)
    status.pop("ResponseMetadata")
    return dict(status)


def material_of(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"])


def user_kms(cloud: Cloud, name: str, inline: str) -> Any:
    iam = cloud.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
    return cloud.as_key("kms", iam.create_access_key(UserName=name)["AccessKey"])


# -- automatic rotation: switching it on and off ------------------------------------------------


def test_rotation_is_off_until_enabled(kms: Any) -> None:
    key_id, arn = new_key(kms)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert (status["KeyId"], status["KeyRotationEnabled"]) == (arn, False)
    assert "RotationPeriodInDays" not in status
    assert "NextRotationDate" not in status


def test_enable_rotation_defaults_to_a_year(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.enable_key_rotation(KeyId=key_id)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 365)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 60


def test_rotation_period_and_disable(kms: Any) -> None:
    key_id, arn = new_key(kms)
    kms.enable_key_rotation(KeyId=arn, RotationPeriodInDays=90)
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 90
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)  # a new period
    status = kms.get_key_rotation_status(KeyId=key_id)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=180)
    assert status["RotationPeriodInDays"] == 180
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 60
    kms.disable_key_rotation(KeyId=key_id)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is False
    assert "RotationPeriodInDays" not in status


@pytest.mark.parametrize("days", [89, 2561])
def test_rotation_period_bounds(cloud: Cloud, days: int) -> None:
    kms = cloud.unvalidated("kms")
    key_id, _ = new_key(kms)
    err = refused(kms.enable_key_rotation, KeyId=key_id, RotationPeriodInDays=days)
    assert err[:2] == ("ValidationException", 400)
    assert "rotationPeriodInDays" in err.message
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_rotation_needs_an_enabled_key(kms: Any) -> None:
    key_id, arn = new_key(kms)
    kms.disable_key(KeyId=key_id)
    disabled = ("DisabledException", 400, f"{arn} is disabled.")
    assert refused(kms.enable_key_rotation, KeyId=key_id) == disabled
    assert refused(kms.disable_key_rotation, KeyId=key_id) == disabled
    assert refused(kms.rotate_key_on_demand, KeyId=key_id) == disabled
    kms.enable_key(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert refused(kms.enable_key_rotation, KeyId=key_id) == (
        "KMSInvalidStateException", 400, f"{arn} is pending deletion."
    )  # fmt: skip


def test_pending_deletion_reports_rotation_off_until_cancelled(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.enable_key_rotation(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_imported_material_keys_do_not_rotate_automatically(kms: Any) -> None:
    key_id, arn = new_key(kms, Origin="EXTERNAL")
    external = (
        "UnsupportedOperationException", 400,
        f"{arn} origin is EXTERNAL which is not valid for this operation.",
    )  # fmt: skip
    assert refused(kms.enable_key_rotation, KeyId=key_id) == external
    assert rotation_status(kms, key_id) == {"KeyId": arn, "KeyRotationEnabled": False}


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("RSA_2048", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ],
)
def test_keys_that_cannot_rotate_report_rotation_off(kms: Any, spec: str, usage: str) -> None:
    """AWS answers false for them (Terraform reads every key's status), and refuses to enable."""
    key_id, arn = new_key(kms, KeySpec=spec, KeyUsage=usage)
    assert refused(kms.enable_key_rotation, KeyId=key_id)[0] == "UnsupportedOperationException"
    assert rotation_status(kms, key_id) == {"KeyId": arn, "KeyRotationEnabled": False}


# -- on demand ------------------------------------------------------------------------------


def test_on_demand_rotation_keeps_old_ciphertext_readable(kms: Any) -> None:
    key_id, arn = new_key(kms)
    first = material_of(kms, key_id)
    old = kms.encrypt(KeyId=key_id, Plaintext=b"old", EncryptionContext={"a": "1"})
    assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"] == arn
    second = material_of(kms, key_id)
    assert second != first
    assert len(second) == 64
    new = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    # The blob names the material version it was made with.
    assert ciphertext.decode_blob(old["CiphertextBlob"]).material_version == 1
    assert ciphertext.decode_blob(new).material_version == 2
    got = kms.decrypt(CiphertextBlob=old["CiphertextBlob"], EncryptionContext={"a": "1"})
    assert (got["Plaintext"], got["KeyId"]) == (b"old", arn)
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"new"
    # On-demand rotation leaves automatic rotation as it was.
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_on_demand_rotations_are_limited_to_25(kms: Any) -> None:
    key_id, arn = new_key(kms)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"first")["CiphertextBlob"]
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=key_id)
    assert refused(kms.rotate_key_on_demand, KeyId=key_id) == (
        "LimitExceededException", 400,
        "The on-demand rotations limit has been reached for the given keyId. No more "
        f"on-demand rotations can be performed for this key: {arn}",
    )  # fmt: skip
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"first"
    assert len(kms.list_key_rotations(KeyId=key_id, Limit=1000)["Rotations"]) == 25


def test_on_demand_rotation_of_a_key_without_material(kms: Any) -> None:
    key_id, arn = new_key(kms, Origin="EXTERNAL")
    assert refused(kms.rotate_key_on_demand, KeyId=key_id) == (
        "KMSInvalidStateException", 400, f"{arn} is pending import."
    )  # fmt: skip


# -- history --------------------------------------------------------------------------------


def test_list_key_rotations(kms: Any) -> None:
    key_id, _ = new_key(kms)
    assert kms.list_key_rotations(KeyId=key_id)["Rotations"] == []
    first = material_of(kms, key_id)
    kms.rotate_key_on_demand(KeyId=key_id)
    second = material_of(kms, key_id)
    kms.rotate_key_on_demand(KeyId=key_id)
    third = material_of(kms, key_id)
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in rotations] == [
        (second, "NON_CURRENT"),
        (third, "CURRENT"),
    ]
    assert {r["RotationType"] for r in rotations} == {"ON_DEMAND"}
    assert {r["KeyId"] for r in rotations} == {key_id}
    now = dt.datetime.now(dt.UTC)
    assert all(abs((r["RotationDate"] - now).total_seconds()) < 60 for r in rotations)

    everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    original = everything["Rotations"][0]
    assert (original["KeyMaterialId"], original["KeyMaterialState"]) == (first, "NON_CURRENT")
    assert "RotationDate" not in original
    assert "RotationType" not in original

    page = kms.list_key_rotations(KeyId=key_id, Limit=1)
    assert page["Truncated"] is True
    rest = kms.list_key_rotations(KeyId=key_id, Limit=1, Marker=page["NextMarker"])
    assert [r["KeyMaterialId"] for r in page["Rotations"] + rest["Rotations"]] == [second, third]
    assert rest["Truncated"] is False


# -- the sweeper ------------------------------------------------------------------------------


def test_sweeper_rotates_when_due(cloud: Cloud, kms: Any, settable_clock: SettableClock) -> None:
    key_id, _ = new_key(kms)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    first = material_of(kms, key_id)
    old = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]
    due = kms.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]

    sweep_after(cloud, settable_clock, 89 * DAY)
    assert material_of(kms, key_id) == first

    sweep_after(cloud, settable_clock, 90 * DAY + 60)
    second = material_of(kms, key_id)
    assert second != first
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [(r["RotationType"], r["KeyMaterialId"]) for r in rotations] == [("AUTOMATIC", second)]
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True
    assert (status["NextRotationDate"] - due).days >= 89  # the next one, a period later
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"before rotation"
    new = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"after"

    sweep_after(cloud, settable_clock, 91 * DAY)  # not due again yet
    assert material_of(kms, key_id) == second
    # One AwsServiceEvent for the one automatic rotation, in CloudTrail's shape.
    lines = (cloud.node.data_dir / "audit" / "cloud.jsonl").read_text().splitlines()
    rotated = [e for e in map(json.loads, lines) if e["eventName"] == "RotateKey"]
    assert [(e["eventType"], e["serviceEventDetails"]) for e in rotated] == [
        ("AwsServiceEvent", {"rotationType": "AUTOMATIC", "keyId": key_id})
    ]


def test_sweeper_skips_disabled_keys_and_catches_up(
    cloud: Cloud, kms: Any, settable_clock: SettableClock
) -> None:
    key_id, _ = new_key(kms)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    first = material_of(kms, key_id)
    kms.disable_key(KeyId=key_id)
    sweep_after(cloud, settable_clock, 100 * DAY)
    assert material_of(kms, key_id) == first
    kms.enable_key(KeyId=key_id)  # overdue: rotated at the next sweep
    sweep_after(cloud, settable_clock, 100 * DAY)
    assert material_of(kms, key_id) != first


# -- authorization ----------------------------------------------------------------------------


def test_rotation_operations_need_their_permission(cloud: Cloud, kms: Any) -> None:
    key_id, _ = new_key(kms)
    viewer = user_kms(cloud, "viewer", policy(allow("kms:GetKeyRotationStatus")))
    assert viewer.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    for call in (
        viewer.enable_key_rotation,
        viewer.disable_key_rotation,
        viewer.rotate_key_on_demand,
        viewer.list_key_rotations,
    ):
        assert refused(call, KeyId=key_id)[:2] == ("AccessDeniedException", 400)
    assert kms.list_key_rotations(KeyId=key_id)["Rotations"] == []


def test_rotation_period_condition_key(cloud: Cloud, kms: Any) -> None:
    condition = {"NumericLessThanEquals": {"kms:RotationPeriodInDays": "180"}}
    admin = user_kms(cloud, "rotator", policy(allow("kms:EnableKeyRotation", Condition=condition)))
    key_id, _ = new_key(kms)
    assert refused(admin.enable_key_rotation, KeyId=key_id).code == "AccessDeniedException"
    admin.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 180
