"""The cloud store on a fresh file, for every test here that asks for ``store``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    made = SqliteStore(tmp_path / "latchkey.db")
    yield made
    made.close()
