"""The store's read cache: a value lives until a write changes a row, and no longer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from latchkey.store.base import RoleRecord
from latchkey.store.sqlite import SqliteStore

TRUST = '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    made = SqliteStore(tmp_path / "latchkey.db")
    yield made
    made.close()


def loader(values: list[str], calls: list[str]) -> Callable[[], str]:
    def load() -> str:
        calls.append(values[-1])
        return values[-1]

    return load


def test_a_write_that_changes_nothing_keeps_the_cache(store: SqliteStore) -> None:
    values, calls = ["first"], []
    load = loader(values, calls)
    assert store.cached("t", "k", load) == "first"
    # The sweeper's jobs with nothing due: DELETEs and SELECTs in a write transaction.
    assert store.delete_import_tokens_expired_before(0.0) == 0
    assert store.expire_imported_key_material(0.0) == []
    values.append("second")
    assert store.cached("t", "k", load) == "first"
    assert calls == ["first"]


def test_a_write_that_changes_a_row_drops_every_cached_value(store: SqliteStore) -> None:
    values, calls = ["first"], []
    load = loader(values, calls)
    store.cached("t", "k", load)
    store.save_role(
        RoleRecord(
            name="App",
            arn="arn:aws:iam::000000000000:role/App",
            role_id="AROAAPP",
            path="/",
            trust_policy=TRUST,
            max_session_duration=3600,
            created=1.0,
        )
    )
    values.append("second")
    assert store.cached("t", "k", load) == "second"
    assert calls == ["first", "second"]


def test_a_failed_write_drops_the_cache_too(store: SqliteStore) -> None:
    values, calls = ["first"], []
    load = loader(values, calls)
    store.cached("t", "k", load)
    with pytest.raises(RuntimeError), store._write():
        raise RuntimeError("the transaction's body failed")
    values.append("second")
    assert store.cached("t", "k", load) == "second"


def test_the_oldest_entry_goes_first(store: SqliteStore) -> None:
    loaded: list[str] = []

    def load(name: str) -> Callable[[], str]:
        return lambda: loaded.append(name) or name

    for name in ("a", "b", "c", "b", "a"):
        store.cached("t", name, load(name), size=2)
    # "a" left when "c" came in; "b" was still there (a hit does not renew it), so when "a"
    # came back, "b" was the oldest and went; "c" stays.
    assert loaded == ["a", "b", "c", "a"]
    store.cached("t", "c", load("c"), size=2)
    assert loaded == ["a", "b", "c", "a"]
