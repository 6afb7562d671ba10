"""Access events: batches into the control store (multi-row inserts) and the JSON-lines file."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from latchkey.control.runtime import EventRecorder
from latchkey.store.control import (
    EVENT_COLUMNS,
    AccessEvent,
    ControlStore,
    EventRow,
    event_json_line,
)


def event(n: int) -> AccessEvent:
    return AccessEvent(
        time=f"2026-11-29T00:00:{n % 60:02d}Z", source="127.0.0.1", client="app", server="kms",
        policy="p", decision="allowed", reason=None, detail=None, credential_provider="aws",
        method="POST", path="/", status=200, latency_ms=float(n), upstream_status=200,
    )  # fmt: skip


def test_a_batch_of_any_size_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    try:
        store.add_events([event(n) for n in range(200)])  # several multi-row statements
        store.add_events([event(200)])
        got = store.list_events(limit=1000)
        assert [e.latency_ms for e in got] == [float(n) for n in range(201)]
        assert replace(got[7], id=None) == event(7)
    finally:
        store.close()


def test_a_row_holds_the_fields_in_column_order() -> None:
    e = replace(event(3), reason="r", detail="d", evidence="e", credential_result="cached")
    assert e.row() == tuple(getattr(e, name) for name in EVENT_COLUMNS)
    assert "id" not in EVENT_COLUMNS


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"client": None, "policy": None, "credential_provider": None, "upstream_status": None},
        {"reason": "ConditionFailed", "detail": 'quote " backslash \\ tab \t nl \n cr \r nul \0'},
        {"detail": "non-ASCII: é ü ✓ \u2028 \U0001f512", "path": "/caf\u00e9/%2F?"},
        {"latency_ms": 1e-07, "status": 599, "upstream_status": 0},
        {"latency_ms": 12345678.125, "status": None, "method": None, "path": None},
        {"latency_ms": float("nan")},
        {"latency_ms": float("inf"), "evidence": "", "credential_result": "refreshing"},
        {"status": 10**20, "latency_ms": None},
    ],
)
def test_the_json_line_is_exactly_what_json_dumps_makes(changes: dict[str, object]) -> None:
    e = replace(event(7), **changes)  # type: ignore[arg-type]
    expected = json.dumps(e.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
    assert event_json_line(e.row()) == expected


def test_a_batch_of_rows_is_stored_as_events(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    try:
        store.add_event_rows([event(n).row() for n in range(3)])
        assert [replace(e, id=None) for e in store.list_events()] == [event(n) for n in range(3)]
    finally:
        store.close()


async def record_twice(recorder: EventRecorder) -> None:
    recorder.start()
    recorder([event(1).row()])
    await recorder.flush()
    recorder([event(2).row(), event(3).row()])
    await recorder.close()


def test_the_file_gets_every_batch_and_stays_private(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    path = tmp_path / "events" / "access.jsonl"
    try:
        asyncio.run(record_twice(EventRecorder(store, path)))
        text = path.read_text()
        lines = [json.loads(line) for line in text.splitlines()]
        assert [e["latency_ms"] for e in lines] == [1.0, 2.0, 3.0]
        assert text == "".join(event_json_line(event(n).row()) for n in (1, 2, 3))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(store.list_events()) == 3
    finally:
        store.close()


class SlowStore(ControlStore):
    def add_event_rows(self, rows: Sequence[EventRow]) -> None:
        if rows[0][12] == 1.0:  # the first batch (latency_ms 1.0) takes long to write
            time.sleep(0.3)  # (on the writer's thread)
        super().add_event_rows(rows)


async def close_while_writing(recorder: EventRecorder) -> None:
    recorder.start()
    recorder([event(1).row()])
    await asyncio.sleep(0.05)  # the writer has taken that batch and is writing it
    recorder([event(2).row()])
    await recorder.close()


def test_close_waits_for_the_batch_being_written(tmp_path: Path) -> None:
    store = SlowStore(tmp_path / "control.db")
    path = tmp_path / "access.jsonl"
    try:
        asyncio.run(close_while_writing(EventRecorder(store, path)))
        assert [json.loads(line)["latency_ms"] for line in path.read_text().splitlines()] == [
            1.0,
            2.0,
        ]
        assert len(store.list_events()) == 2
    finally:
        store.close()


async def record_many(recorder: EventRecorder, count: int) -> None:
    recorder.start()
    recorder([event(n).row() for n in range(count)])
    await recorder.close()


def test_a_large_batch_is_written_whole_and_in_order(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    path = tmp_path / "access.jsonl"
    try:
        asyncio.run(record_many(EventRecorder(store, path), 100))  # several slices
        assert path.read_text() == "".join(event_json_line(event(n).row()) for n in range(100))
        assert len(store.list_events(limit=1000)) == 100
    finally:
        store.close()
