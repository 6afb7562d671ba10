"""Key lifecycle as AWS KMS answers it (real boto3, real node): EnableKey, DisableKey,
ScheduleKeyDeletion, CancelKeyDeletion, UpdateKeyDescription, DescribeKey, ListKeys; the
sweeper deleting keys once their deletion date passes (moved there with a settable clock); and
everything surviving a restart of the node."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from latchkey_testing import (
    ACCOUNT,
    Cloud,
    SettableClock,
    allow,
    deny,
    policy,
    refused,
    start_node_thread,
    stop_node_thread,
)

DAY = 86400


def sweep(cloud: Cloud) -> None:
    """One sweep of the node's sweeper, on the node's event loop (as its task runs it)."""
    sweeper = cloud.node.node.sweeper
    assert sweeper is not None

    async def once() -> None:
        await sweeper.sweep()

    cloud.node.run(once())


def sweep_after(cloud: Cloud, clock: SettableClock, seconds: float) -> None:
    """A sweep ``seconds`` from now; then the clock goes back (SigV4 needs real time)."""
    clock.advance(seconds)
    try:
        sweep(cloud)
    finally:
        clock.advance(-seconds)


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def user_kms(cloud: Cloud, name: str, inline: str | None = None) -> tuple[Any, str]:
    """An IAM user (with ``inline`` as its only policy) and a KMS client signing as it."""
    iam = cloud.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if inline is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return cloud.as_key("kms", key), str(arn)


# -- enable / disable ---------------------------------------------------------------------------


def test_disable_and_enable_key(kms: Any) -> None:
    key_id, arn = new_key(kms)
    kms.disable_key(KeyId=key_id)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x") == (
        "DisabledException", 400, f"{arn} is disabled."
    )  # fmt: skip
    kms.disable_key(KeyId=arn)  # again, by ARN: no change, no error
    kms.enable_key(KeyId=arn)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"back")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"back"


def test_disabled_key_still_decrypts_nothing(kms: Any) -> None:
    key_id, _ = new_key(kms)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    assert refused(kms.decrypt, CiphertextBlob=blob)[:2] == ("DisabledException", 400)


def test_management_operations_take_no_alias(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.create_alias(AliasName="alias/mgmt", TargetKeyId=key_id)
    err = refused(kms.disable_key, KeyId="alias/mgmt")
    assert err == ("NotFoundException", 400, "Invalid keyId 'alias/mgmt'")
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/mgmt"
    assert refused(kms.schedule_key_deletion, KeyId=alias_arn).code == "NotFoundException"
    assert kms.describe_key(KeyId="alias/mgmt")["KeyMetadata"]["KeyState"] == "Enabled"


def test_unknown_keys(kms: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    err = refused(kms.enable_key, KeyId=missing)
    assert err == (
        "NotFoundException", 400,
        f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist",
    )  # fmt: skip
    assert refused(kms.cancel_key_deletion, KeyId="nope").message == "Invalid keyId 'nope'"


# -- deletion -----------------------------------------------------------------------------------


def test_schedule_key_deletion(kms: Any) -> None:
    key_id, arn = new_key(kms)
    before = dt.datetime.now(dt.UTC)
    resp = kms.schedule_key_deletion(KeyId=key_id)
    assert resp["KeyId"] == arn
    assert (resp["KeyState"], resp["PendingWindowInDays"]) == ("PendingDeletion", 30)
    expected = before + dt.timedelta(days=30)
    assert abs((resp["DeletionDate"] - expected).total_seconds()) < 60
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert meta["Enabled"] is False
    assert "PendingDeletionWindowInDays" not in meta  # AWS: only for PendingReplicaDeletion
    assert meta["DeletionDate"] == resp["DeletionDate"]
    pending = ("KMSInvalidStateException", 400, f"{arn} is pending deletion.")
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x") == pending
    assert refused(kms.schedule_key_deletion, KeyId=key_id) == pending
    assert refused(kms.enable_key, KeyId=key_id) == pending
    assert refused(kms.disable_key, KeyId=key_id) == pending
    assert refused(kms.update_key_description, KeyId=key_id, Description="d") == pending
    # Still listed, described and readable while pending.
    assert key_id in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    assert kms.get_key_policy(KeyId=key_id)["PolicyName"] == "default"


def test_pending_deletion_refuses_decrypt(kms: Any) -> None:
    key_id, arn = new_key(kms)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert refused(kms.decrypt, CiphertextBlob=blob) == (
        "KMSInvalidStateException", 400, f"{arn} is pending deletion."
    )  # fmt: skip


@pytest.mark.parametrize("days", [6, 31])
def test_pending_window_is_seven_to_thirty_days(kms: Any, days: int) -> None:
    key_id, _ = new_key(kms)
    err = refused(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=days)
    assert err[:2] == ("ValidationException", 400)
    assert "PendingWindowInDays" in err.message
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_cancel_key_deletion_leaves_the_key_disabled(kms: Any) -> None:
    key_id, arn = new_key(kms)
    assert refused(kms.cancel_key_deletion, KeyId=key_id) == (
        "KMSInvalidStateException", 400, f"{arn} is not pending deletion."
    )  # fmt: skip
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Disabled"
    assert "DeletionDate" not in meta
    assert "PendingDeletionWindowInDays" not in meta
    kms.enable_key(KeyId=key_id)
    kms.encrypt(KeyId=key_id, Plaintext=b"alive")


def test_cancelled_deletion_of_a_key_without_material_is_pending_import(kms: Any) -> None:
    key_id, arn = new_key(kms, Origin="EXTERNAL")
    assert refused(kms.enable_key, KeyId=key_id) == (
        "KMSInvalidStateException", 400, f"{arn} is pending import."
    )  # fmt: skip
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_sweeper_deletes_the_key_once_its_deletion_date_passes(
    cloud: Cloud, kms: Any, settable_clock: SettableClock
) -> None:
    key_id, _ = new_key(kms, Tags=[{"TagKey": "team", "TagValue": "a"}])
    kept, _ = new_key(kms)
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    sweep_after(cloud, settable_clock, 6 * DAY)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    sweep_after(cloud, settable_clock, 7 * DAY + 60)
    assert refused(kms.describe_key, KeyId=key_id).code == "NotFoundException"
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [kept]
    assert kms.list_aliases()["Aliases"] == []  # the alias went with its key
    store = cloud.node.node.store
    assert store is not None
    assert store.list_key_materials(key_id) == []
    assert store.list_kms_key_tags(key_id) == ()
    assert kms.describe_key(KeyId=kept)["KeyMetadata"]["KeyState"] == "Enabled"


def test_sweeper_task_runs_in_the_background(
    cloud: Cloud, kms: Any, settable_clock: SettableClock
) -> None:
    key_id, _ = new_key(kms)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    sweeper = cloud.node.node.sweeper
    assert sweeper is not None
    settable_clock.advance(8 * DAY)
    try:
        deadline = time.monotonic() + 10
        # Two poked sweeps: a periodic one already under way may have read the clock before
        # it moved, and its end alone would pass for the poked one.
        for _ in range(2):
            seen = sweeper.sweeps
            cloud.node.loop.call_soon_threadsafe(sweeper.poke)
            while sweeper.sweeps == seen and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        settable_clock.advance(-8 * DAY)
    assert refused(kms.describe_key, KeyId=key_id).code == "NotFoundException"
    # CloudTrail's record of a scheduled deletion: an event of the service, not of a caller.
    lines = (cloud.node.data_dir / "audit" / "cloud.jsonl").read_text().splitlines()
    deletions = [e for e in map(json.loads, lines) if e["eventName"] == "DeleteKey"]
    assert len(deletions) == 1
    event = deletions[0]
    assert event["eventType"] == "AwsServiceEvent"
    assert event["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "AWS Internal"}
    assert event["sourceIPAddress"] == "AWS Internal"
    assert event["serviceEventDetails"] == {"keyId": key_id}
    assert [r["ARN"] for r in event["resources"]] == [
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    ]
    assert "requestID" not in event


def test_a_cancelled_deletion_is_not_swept(
    cloud: Cloud, kms: Any, settable_clock: SettableClock
) -> None:
    key_id, _ = new_key(kms)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key_id)
    sweep_after(cloud, settable_clock, 8 * DAY)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


# -- description, listing -----------------------------------------------------------------------


def test_update_key_description(kms: Any) -> None:
    key_id, _ = new_key(kms, Description="old")
    kms.update_key_description(KeyId=key_id, Description="new words")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "new words"
    kms.update_key_description(KeyId=key_id, Description="")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""


def test_list_keys_pages(kms: Any) -> None:
    made = [new_key(kms)[0] for _ in range(3)]
    kms.schedule_key_deletion(KeyId=made[1], PendingWindowInDays=7)
    first = kms.list_keys(Limit=2)
    assert first["Truncated"] is True
    rest = kms.list_keys(Limit=2, Marker=first["NextMarker"])
    assert rest["Truncated"] is False
    assert "NextMarker" not in rest
    assert [k["KeyId"] for k in first["Keys"] + rest["Keys"]] == made
    assert refused(kms.list_keys, Marker="!!not-a-marker")[:2] == ("InvalidMarkerException", 400)
    # well-formed base64, but no marker this service made: refused, not a page from the start
    for forged in ("AAAA", base64.urlsafe_b64encode(made[0].encode()).decode()):
        assert refused(kms.list_keys, Marker=forged)[:2] == ("InvalidMarkerException", 400)
    mangled = first["NextMarker"][:-2] + ("A" if first["NextMarker"][-2] != "A" else "B") + "="
    assert refused(kms.list_keys, Marker=mangled)[:2] == ("InvalidMarkerException", 400)


# -- authorization ------------------------------------------------------------------------------


def test_lifecycle_operations_need_their_permission(cloud: Cloud, kms: Any) -> None:
    key_id, _ = new_key(kms)
    reader, _ = user_kms(cloud, "reader", policy(allow(["kms:DescribeKey", "kms:ListKeys"])))
    assert reader.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    for call, extra in [
        (reader.disable_key, {}),
        (reader.enable_key, {}),
        (reader.schedule_key_deletion, {"PendingWindowInDays": 7}),
        (reader.cancel_key_deletion, {}),
        (reader.update_key_description, {"Description": "x"}),
    ]:
        err = refused(call, KeyId=key_id, **extra)
        assert err[:2] == ("AccessDeniedException", 400)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_pending_window_condition_key(cloud: Cloud, kms: Any) -> None:
    condition = {"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "14"}}
    admin, _ = user_kms(
        cloud,
        "admin",
        policy(allow("kms:ScheduleKeyDeletion", Condition=condition), deny("kms:Decrypt")),
    )
    key_id, _ = new_key(kms)
    err = refused(admin.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=7)
    assert err.code == "AccessDeniedException"
    assert admin.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=14)["KeyState"] == (
        "PendingDeletion"
    )


# -- restart ------------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, settable_clock: SettableClock) -> None:
    handle, thread = start_node_thread(tmp_path / "data", clock=settable_clock)
    try:
        cloud = Cloud(handle)
        kms = cloud.client("kms")
        key_id, arn = new_key(kms, Description="kept", Tags=[{"TagKey": "k", "TagValue": "v"}])
        kms.create_alias(AliasName="alias/kept", TargetKeyId=key_id)
        kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
        blob = kms.encrypt(KeyId="alias/kept", Plaintext=b"before")["CiphertextBlob"]
        kms.rotate_key_on_demand(KeyId=key_id)
        doomed, _ = new_key(kms)
        kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
        disabled, _ = new_key(kms)
        kms.disable_key(KeyId=disabled)
        cloud.close()
    finally:
        stop_node_thread(handle, thread)

    handle, thread = start_node_thread(tmp_path / "data", clock=settable_clock)
    try:
        cloud = Cloud(handle)
        kms = cloud.client("kms")
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
        meta = kms.describe_key(KeyId="alias/kept")["KeyMetadata"]
        assert (meta["Arn"], meta["Description"]) == (arn, "kept")
        assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "k", "TagValue": "v"}]
        status = kms.get_key_rotation_status(KeyId=key_id)
        assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 90)
        rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
        assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
        assert kms.describe_key(KeyId=doomed)["KeyMetadata"]["KeyState"] == "PendingDeletion"
        assert kms.describe_key(KeyId=disabled)["KeyMetadata"]["KeyState"] == "Disabled"
        # The restarted node's sweeper still deletes the key when its date passes.
        sweep_after(cloud, settable_clock, 8 * DAY)
        assert refused(kms.describe_key, KeyId=doomed).code == "NotFoundException"
        cloud.close()
    finally:
        stop_node_thread(handle, thread)
