"""KMS grants in the SQLite store, on a real database file: round trip, named retries, the
per-key limit, paging, the retirable-grant filter, and grants going with their key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from latchkey.store.base import KeyMaterialRecord, KmsGrantRecord, KmsKeyRecord, LimitReached
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "000000000000"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"


def kms_key(store: SqliteStore, key_id: str, *, account: str = ACCOUNT,
            region: str = "us-east-1") -> str:  # fmt: skip
    record = KmsKeyRecord(
        key_id=key_id, arn=f"arn:aws:kms:{region}:{account}:key/{key_id}", account=account,
        region=region, created=1.0, description="", key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT", state="Enabled", origin="AWS_KMS", policy="{}",
        current_version=1,
    )  # fmt: skip
    store.save_kms_key(record, KeyMaterialRecord(key_id, 1, b"wrapped", 1.0))
    return key_id


def grant(grant_id: str, key_id: str, created: float = 10.0, **extra: Any) -> KmsGrantRecord:
    values: dict[str, Any] = {
        "grantee_principal": ROLE,
        "operations": ("Encrypt", "Decrypt"),
        "issuing_account": ROOT,
    }
    return KmsGrantRecord(grant_id.ljust(64, "0"), key_id, created, **(values | extra))


def test_round_trip(store: SqliteStore) -> None:
    key_id = kms_key(store, "k1")
    made = grant("a", key_id, name="n", retiring_principal=ROOT, grantee_id="AROAEXAMPLE",
                 context_subset=(("b", "2"), ("a", "1")), context_equals=(("x", "y"),))  # fmt: skip
    assert store.add_kms_grant(made, limit=10) == made
    loaded = store.load_kms_grant(made.grant_id)
    assert loaded is not None
    assert loaded.context_subset == (("a", "1"), ("b", "2"))  # sorted by key
    assert loaded.context_equals == (("x", "y"),)
    assert (loaded.name, loaded.retiring_principal, loaded.grantee_id) == ("n", ROOT, "AROAEXAMPLE")
    assert loaded.operations == ("Encrypt", "Decrypt")
    assert store.load_kms_grant("f" * 64) is None
    assert store.delete_kms_grant(made.grant_id)
    assert not store.delete_kms_grant(made.grant_id)
    assert store.load_kms_grant(made.grant_id) is None


def test_a_named_retry_returns_the_existing_grant(store: SqliteStore) -> None:
    key_id = kms_key(store, "k1")
    first = store.add_kms_grant(grant("a", key_id, name="retry"), limit=10)
    retry = grant("b", key_id, 11.0, name="retry", operations=("Decrypt", "Encrypt"))
    assert store.add_kms_grant(retry, limit=10) == first
    other = grant("c", key_id, 12.0, name="retry", operations=("Decrypt",))
    assert store.add_kms_grant(other, limit=10) == other
    unnamed = [grant(i, key_id, 13.0) for i in ("d", "e")]
    assert [store.add_kms_grant(g, limit=10) for g in unnamed] == unnamed
    assert len(store.list_kms_grants(key_id)) == 4


def test_limit_per_key(store: SqliteStore) -> None:
    one, two = kms_key(store, "k1"), kms_key(store, "k2")
    store.add_kms_grant(grant("a", one), limit=2)
    store.add_kms_grant(grant("b", one), limit=2)
    with pytest.raises(LimitReached):
        store.add_kms_grant(grant("c", one), limit=2)
    store.add_kms_grant(grant("c", two), limit=2)  # the limit is per key
    assert store.load_kms_grant(grant("c", one).grant_id) is not None  # "c" went to key two
    assert [g.key_id for g in store.list_kms_grants(one)] == [one, one]


def test_paging_and_grantee_filter(store: SqliteStore) -> None:
    key_id = kms_key(store, "k1")
    made = [grant(c, key_id, float(n), grantee_principal=ROOT if n % 2 else ROLE)
            for n, c in enumerate("edcba")]  # fmt: skip
    for g in made:
        store.add_kms_grant(g, limit=10)
    assert store.list_kms_grants(key_id) == made  # by creation time, not id
    page = store.list_kms_grants(key_id, limit=2)
    assert page == made[:2]
    rest = store.list_kms_grants(key_id, after=(page[-1].created, page[-1].grant_id))
    assert rest == made[2:]
    store.delete_kms_grant(page[-1].grant_id)  # a deleted marker still pages on
    assert store.list_kms_grants(key_id, after=(page[-1].created, page[-1].grant_id)) == rest
    assert store.list_kms_grants(key_id, grantees=[ROOT]) == [made[3]]  # made[1] is gone
    assert store.list_kms_grants(key_id, grantees=[]) == []


def test_retirable_grants_by_account_and_region(store: SqliteStore) -> None:
    here = kms_key(store, "k1")
    elsewhere = kms_key(store, "k2", region="eu-west-1")
    mine = grant("a", here, retiring_principal=ROLE)
    for g in (mine, grant("b", elsewhere, retiring_principal=ROLE), grant("c", here)):
        store.add_kms_grant(g, limit=10)
    assert store.list_retirable_kms_grants(ROLE, ACCOUNT, "us-east-1") == [mine]
    assert store.list_retirable_kms_grants(ROOT, ACCOUNT, "us-east-1") == []


def test_grants_go_with_their_key(store: SqliteStore) -> None:
    doomed, kept = kms_key(store, "k1"), kms_key(store, "k2")
    store.add_kms_grant(grant("a", doomed), limit=10)
    survivor = store.add_kms_grant(grant("b", kept), limit=10)
    assert store.delete_kms_key(doomed)
    assert store.list_kms_grants(doomed) == []
    assert store.load_kms_grant(grant("a", doomed).grant_id) is None
    assert store.list_kms_grants(kept) == [survivor]


def test_grants_persist_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "latchkey.db"
    first = SqliteStore(path)
    made = grant("a", kms_key(first, "k1"), context_equals=(("k", "v"),))
    first.add_kms_grant(made, limit=10)
    first.close()
    again = SqliteStore(path)
    try:
        assert again.load_kms_grant(made.grant_id) == made
    finally:
        again.close()
