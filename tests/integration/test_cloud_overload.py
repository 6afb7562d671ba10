"""Overload is shed, not queued (security promise 11): beyond ``cloud_max_inflight`` calls in
progress, a call is answered at once with the throttling error its SDK backs off from."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from latchkey.cloud.app import THROTTLED_KMS, THROTTLED_QUERY
from latchkey_testing import own_node

NO_RETRY = BotoConfig(retries={"total_max_attempts": 1}, proxies={})


def refused(call: Any, **kwargs: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response), time.monotonic() - started


def test_a_call_beyond_the_limit_is_throttled_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with own_node(data, cloud_max_inflight=1) as node:
        kms, sts = node.client("kms", NO_RETRY), node.client("sts", NO_RETRY)
        try:
            kms.list_keys()  # the audit store exists
            # One call in progress: its audit event waits behind a lock held on the store.
            lock = sqlite3.connect(data / "audit" / "cloud.db", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
            made: list[Any] = []
            slow = threading.Thread(target=lambda: made.append(kms.create_key()))
            slow.start()
            time.sleep(0.5)
            assert not made  # still in progress
            throttled, took = refused(kms.list_keys)
            assert took < 1.0  # at once, not after the call in progress
            assert throttled["Error"] == {"Code": "ThrottlingException", "Message": THROTTLED_KMS}
            assert throttled["ResponseMetadata"]["HTTPStatusCode"] == 400
            throttled, _ = refused(sts.get_caller_identity)
            assert throttled["Error"]["Code"] == "Throttling"
            assert throttled["Error"]["Message"] == THROTTLED_QUERY
            lock.execute("ROLLBACK")
            lock.close()
            slow.join(10)
            assert len(made) == 1  # the call in progress went through once the lock went
            assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [
                made[0]["KeyMetadata"]["KeyId"]
            ]
        finally:
            kms.close()
            sts.close()
