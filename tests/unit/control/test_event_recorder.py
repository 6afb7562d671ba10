"""Access events: batches into the control store (multi-row inserts) and the JSON-lines file."""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import replace
from pathlib import Path

from latchkey.control.runtime import EventRecorder
from latchkey.store.control import AccessEvent, ControlStore


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


async def record_twice(recorder: EventRecorder) -> None:
    recorder.start()
    recorder(event(1))
    await recorder.flush()
    recorder(event(2))
    recorder(event(3))
    await recorder.close()


def test_the_file_gets_every_batch_and_stays_private(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    path = tmp_path / "events" / "access.jsonl"
    try:
        asyncio.run(record_twice(EventRecorder(store, path)))
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [e["latency_ms"] for e in lines] == [1.0, 2.0, 3.0]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(store.list_events()) == 3
    finally:
        store.close()
