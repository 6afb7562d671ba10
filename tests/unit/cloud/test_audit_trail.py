"""The audit trail on real files (no sockets): group commit, the chain across restarts,
``verify`` against every kind of tampering, repair after a crash, fail closed in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import latchkey.store.audit as audit_store
from latchkey.cloud.audit import AuditError, AuditEvent, AuditLog, JsonlFile
from latchkey.cloud.auditchain import GENESIS, open_line, seal
from latchkey.cloud.auditverify import Report, verify_trail
from latchkey.store.audit import AuditStore
from latchkey.store.base import StoreError

KEY = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def make_event(n: int, name: str = "Encrypt", error: str | None = None) -> AuditEvent:
    return AuditEvent(
        event_source="kms.amazonaws.com",
        event_name=name,
        region="us-east-1",
        source_ip="127.0.0.1",
        user_agent="test",
        request_id=f"request-{n}",
        event_time=f"2025-01-01T00:00:{n % 60:02d}Z",
        request_parameters={"KeyId": KEY},
        error_code=error,
        error_message="" if error else None,
        resources=[{"accountId": "000000000000", "type": "AWS::KMS::Key", "ARN": KEY}],
        used_keys=(KEY,) if error is None else (),
    )


async def record(log: AuditLog, *events: AuditEvent) -> list[int]:
    sealed = await asyncio.gather(*(log.record(e) for e in events))
    return [s.sequence for s in sealed]


def write_trail(path: Path, count: int) -> None:
    log = AuditLog(path)
    try:
        asyncio.run(record(log, *(make_event(n) for n in range(count))))
    finally:
        log.close()


def verify(path: Path) -> Report:
    store = AuditStore(path.with_suffix(".db"), readonly=True)
    try:
        return verify_trail(store, path, settle=0.0)
    finally:
        store.close()


def first(report: Report) -> tuple[str, int, str]:
    assert not report.ok
    f = report.findings[0]
    return f.where, f.sequence, f.reason


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def event_ids(path: Path) -> list[str]:
    return [json.loads(line)["eventID"] for line in lines_of(path)]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """Five events, the writer closed."""
    path = tmp_path / "audit" / "cloud.jsonl"
    write_trail(path, 5)
    return path


@contextlib.contextmanager
def db(path: Path) -> Iterator[sqlite3.Connection]:
    """The audit store, opened by someone else (as an attacker or a stuck disk would)."""
    conn = sqlite3.connect(path.with_suffix(".db"), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


# -- the chain as written -------------------------------------------------------------------------


def test_concurrent_calls_share_batches_and_get_consecutive_links(tmp_path: Path) -> None:
    appends = []

    class CountingFile(JsonlFile):
        def append(self, data: bytes) -> None:
            appends.append(data.count(b"\n"))
            super().append(data)

    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, open_file=CountingFile)
    try:
        sequences = asyncio.run(record(log, *(make_event(n) for n in range(64))))
    finally:
        log.close()
    assert sorted(sequences) == list(range(1, 65))
    assert sum(appends) == 64
    assert len(appends) < 64  # group commit: fewer syncs than events
    assert verify(path).ok
    store = AuditStore(path.with_suffix(".db"), readonly=True)
    try:
        assert [r.line for r in store.events_after(0)] == lines_of(path)
    finally:
        store.close()


def test_a_restart_continues_the_chain(trail: Path) -> None:
    head = open_line(lines_of(trail)[-1])
    log = AuditLog(trail)
    try:
        assert log.head == (5, head.hash)
        assert asyncio.run(record(log, make_event(6))) == [6]
    finally:
        log.close()
    sixth = open_line(lines_of(trail)[-1])
    assert (sixth.sequence, sixth.previous) == (6, head.hash)
    report = verify(trail)
    assert report.ok, report.findings
    assert (report.events, report.head_sequence, report.head_hash) == (6, 6, sixth.hash)


def test_an_empty_trail_verifies(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    AuditLog(path).close()
    report = verify(path)
    assert report.ok
    assert (report.events, report.head_hash) == (0, GENESIS)


# -- tampering the file ---------------------------------------------------------------------------


def rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_an_edited_file_line_is_found(trail: Path) -> None:
    lines = lines_of(trail)
    ids = event_ids(trail)
    lines[2] = lines[2].replace('"eventName":"Encrypt"', '"eventName":"Decrypt"')
    rewrite(trail, lines)
    report = verify(trail)
    assert first(report)[:2] == ("file", 3)
    assert report.findings[0].event_id == ids[2]
    assert "hash does not match" in report.findings[0].reason
    assert "sequence 3 (eventID " in str(report.findings[0])


def test_an_edited_and_rehashed_file_line_is_found(trail: Path) -> None:
    lines = lines_of(trail)
    doc = json.loads(lines[1])
    chain = doc.pop("chain")
    doc["userAgent"] = "someone else"
    lines[1] = seal(doc, chain["sequence"], chain["previousHash"]).line
    rewrite(trail, lines)
    assert first(verify(trail)) == (
        "file", 2, "line 2 differs from the store's event (replaced, or edited and re-hashed)"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "sequence", "reason"),
    [
        (lambda ls: ls[:2] + ls[3:], 3,  # deleted
         "line 3 holds sequence 4: this event is missing from cloud.jsonl (removed, or moved)"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2,  # reordered
         "line 2 holds sequence 3: this event is missing from cloud.jsonl (removed, or moved)"),
        (lambda ls: ls[:3], 4, "missing: cloud.jsonl ends before this event (truncated)"),
        (lambda ls: [], 1, "missing: cloud.jsonl ends before this event (truncated)"),
    ],
)  # fmt: skip
def test_removed_reordered_or_truncated_file_lines_are_found(
    trail: Path, change: object, sequence: int, reason: str
) -> None:
    rewrite(trail, change(lines_of(trail)))  # type: ignore[operator]
    assert first(verify(trail)) == ("file", sequence, reason)


def test_a_repeated_file_line_is_found(trail: Path) -> None:
    lines = lines_of(trail)
    rewrite(trail, [*lines[:2], lines[1], *lines[2:]])  # a valid line, twice
    report = verify(trail)
    assert [(f.where, f.sequence, f.reason) for f in report.findings] == [
        ("file", 3, "line 3 holds sequence 2 after sequence 2: a repeated or added line")
    ]


def test_a_forged_line_inserted_mid_file_is_found(trail: Path) -> None:
    lines = lines_of(trail)
    doc = json.loads(lines[0])
    del doc["chain"]
    doc["eventName"] = "Decrypt"
    forged = seal(doc, 1, GENESIS).line  # a sound first link, not the store's
    rewrite(trail, [*lines[:3], forged, *lines[3:]])
    assert first(verify(trail)) == (
        "file", 4, "line 4 holds sequence 1 after sequence 3: a repeated or added line"
    )  # fmt: skip


def test_only_lines_of_events_the_store_lost_are_passed_over(trail: Path) -> None:
    lines = lines_of(trail)
    with db(trail) as conn:
        conn.execute("DELETE FROM audit_events WHERE sequence = 3")
    rewrite(trail, [*lines[:2], lines[1], *lines[2:]])  # and a repeated line before the gap
    report = verify(trail)
    assert [(f.where, f.sequence) for f in report.findings] == [("store", 4), ("file", 4)]
    assert report.findings[1].reason == (
        "line 3 holds sequence 2 after sequence 2: a repeated or added line"
    )


def test_a_truncated_file_names_the_first_missing_event(trail: Path) -> None:
    ids = event_ids(trail)
    rewrite(trail, lines_of(trail)[:4])
    report = verify(trail)
    assert first(report) == ("file", 5, "missing: cloud.jsonl ends before this event (truncated)")
    assert report.findings[0].event_id == ids[4]


def test_a_torn_last_line_and_an_added_line_are_found(trail: Path) -> None:
    text = trail.read_text()
    trail.write_text(text[:-40])
    assert first(verify(trail)) == (
        "file", 5, "cloud.jsonl ends in a torn line here (a crash while writing?)"
    )  # fmt: skip
    extra = seal({"eventID": "x"}, 6, open_line(text.splitlines()[-1]).hash)
    trail.write_text(text + extra.line + "\n")
    assert first(verify(trail)) == ("file", 6, "a line the store does not have (added)")


def test_a_deleted_file_is_found(trail: Path) -> None:
    trail.unlink()
    assert first(verify(trail)) == ("file", 1, "cloud.jsonl is missing")


# -- tampering the store --------------------------------------------------------------------------


def test_an_edited_store_event_is_found(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("UPDATE audit_events SET line = replace(line, 'request-2', 'request-9')"
                     " WHERE sequence = 3")  # fmt: skip
    report = verify(trail)
    assert [(f.where, f.sequence) for f in report.findings] == [("store", 3)]  # the file is fine
    assert "hash does not match" in report.findings[0].reason


def test_an_edited_file_line_beside_an_edited_store_event_is_still_found(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("UPDATE audit_events SET line = replace(line, 'request-2', 'request-9')"
                     " WHERE sequence = 3")  # fmt: skip
    lines = lines_of(trail)
    doc = json.loads(lines[2])
    chain = doc.pop("chain")
    doc["userAgent"] = "someone else"
    lines[2] = seal(doc, chain["sequence"], chain["previousHash"]).line
    rewrite(trail, lines)
    report = verify(trail)
    assert [(f.where, f.sequence) for f in report.findings] == [("store", 3), ("file", 3)]


def test_an_edited_index_column_is_found(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("UPDATE audit_events SET error_code = 'AccessDeniedException'"
                     " WHERE sequence = 2")  # fmt: skip
    assert first(verify(trail)) == (
        "store", 2, "its errorCode column says 'AccessDeniedException' but the event says None"
        " (edited)",
    )  # fmt: skip


def test_a_cleared_key_usage_column_is_found(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("UPDATE audit_events SET used = NULL WHERE sequence = 2")
    assert first(verify(trail)) == (
        "store", 2, f"its used column says None but the event says {KEY!r} (edited)"
    )  # fmt: skip


def test_a_key_usage_column_on_a_failed_call_is_found(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path)
    try:
        asyncio.run(record(log, make_event(1), make_event(2, error="DisabledException")))
    finally:
        log.close()
    with db(path) as conn:
        conn.execute("UPDATE audit_events SET used = ? WHERE sequence = 2", (KEY,))
    assert first(verify(path))[:2] == ("store", 2)


@pytest.fixture
def flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Five uses of KEY with ``audit_last_use`` written at every batch."""
    monkeypatch.setattr(audit_store, "LAST_USE_FLUSH", 0.0)
    path = tmp_path / "audit" / "cloud.jsonl"
    log = AuditLog(path)
    try:
        for n in range(5):
            asyncio.run(record(log, make_event(n)))
    finally:
        log.close()
    with db(path) as conn:
        assert conn.execute("SELECT arn, sequence FROM audit_last_use").fetchall() == [(KEY, 5)]
    return path


def test_a_flushed_key_usage_table_verifies(flushed: Path) -> None:
    report = verify(flushed)
    assert report.ok, report.findings


@pytest.mark.parametrize(
    ("sql", "sequence", "reason"),
    [
        ("UPDATE audit_last_use SET sequence = 2", 2,
         f"audit_last_use says key {KEY} was last used by sequence 2, but sequence 5 used it"
         " last (edited)"),
        ("DELETE FROM audit_last_use", 5,
         f"audit_last_use lacks key {KEY}, which sequence 5 used (removed)"),
        ("INSERT INTO audit_last_use VALUES ('arn:aws:kms:us-east-1:000000000000:key/other', 3)",
         3, "audit_last_use says key arn:aws:kms:us-east-1:000000000000:key/other was last used"
         " by sequence 3, but no event up to"
         " that table's last flush used it (edited)"),
    ],
)  # fmt: skip
def test_an_edited_key_usage_table_is_found(
    flushed: Path, sql: str, sequence: int, reason: str
) -> None:
    with db(flushed) as conn:
        conn.execute(sql)
    assert first(verify(flushed)) == ("store", sequence, reason)


def test_key_usage_of_a_store_from_before_the_used_column_is_not_checked(
    flushed: Path,
) -> None:
    with db(flushed) as conn:  # as _migrate leaves a store whose events 1..3 predate the column
        conn.execute("UPDATE audit_events SET used = NULL WHERE sequence <= 3")
        conn.execute("INSERT INTO audit_meta VALUES ('used_from', '4')")
        conn.execute("UPDATE audit_last_use SET sequence = 2")
    assert first(verify(flushed))[:2] == ("store", 2)  # a later use (5) is known
    with db(flushed) as conn:
        conn.execute("UPDATE audit_events SET used = NULL")
        conn.execute("UPDATE audit_meta SET value = '6' WHERE name = 'used_from'")
    assert verify(flushed).ok  # only uses before the column: nothing to check them against


def test_a_deleted_store_event_is_found_once(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("DELETE FROM audit_events WHERE sequence = 2")
    report = verify(trail)
    assert [(f.where, f.sequence, f.reason) for f in report.findings] == [
        ("store", 3, "events 2..2 are missing (removed)")
    ]


def test_deleting_the_last_store_events_is_found(trail: Path) -> None:
    with db(trail) as conn:
        conn.execute("DELETE FROM audit_events WHERE sequence >= 4")
    report = verify(trail)
    assert ("store", 5) in [(f.where, f.sequence) for f in report.findings]  # the head says 5
    with db(trail) as conn:  # a careful attacker moves the head back too: the file still says
        row = conn.execute("SELECT hash FROM audit_events WHERE sequence = 3").fetchone()
        conn.execute("UPDATE audit_head SET sequence = 3, hash = ?", row)
    assert first(verify(trail)) == ("file", 4, "a line the store does not have (added)")


# -- after a crash --------------------------------------------------------------------------------


def test_a_file_behind_the_store_is_restored_at_start(trail: Path) -> None:
    full = trail.read_text()
    trail.write_text(full[: full.rindex("\n", 0, len(full) - 1) + 1] + full[-30:-1])  # torn
    assert not verify(trail).ok
    AuditLog(trail).close()
    assert trail.read_text() == full
    assert verify(trail).ok


def test_a_deleted_file_is_restored_from_the_store_at_start(trail: Path) -> None:
    full = trail.read_text()
    trail.unlink()
    AuditLog(trail).close()
    assert trail.read_text() == full


def forget_after(path: Path, sequence: int) -> None:
    """The store as if its commits after ``sequence`` never happened."""
    with db(path) as conn:
        conn.execute("DELETE FROM audit_events WHERE sequence > ?", (sequence,))
        row = conn.execute("SELECT hash FROM audit_events WHERE sequence = ?", (sequence,))
        conn.execute("UPDATE audit_head SET sequence = ?, hash = ?", (sequence, *row.fetchone()))


def test_a_file_ahead_of_the_store_refuses_to_start(trail: Path) -> None:
    """The store is committed before the file is written: no crash leaves the file ahead, so
    a file ahead means a store rolled back (or lines added). Nothing is moved or cut."""
    lines = lines_of(trail)
    forget_after(trail, 3)
    assert first(verify(trail)) == ("file", 4, "a line the store does not have (added)")
    with pytest.raises(AuditError) as info:
        AuditLog(trail)
    message = str(info.value)
    assert f"{trail} holds events 4..5 that the audit store {trail.with_suffix('.db')}" in message
    assert "move cloud.jsonl away" in message
    assert lines_of(trail) == lines  # left alone
    assert not trail.with_name("cloud.jsonl.unanswered").exists()
    assert not verify(trail).ok  # still says so
    trail.rename(trail.with_name("kept.jsonl"))  # the way out it names
    AuditLog(trail).close()
    assert lines_of(trail) == lines[:3]
    assert verify(trail).ok


def test_a_deleted_store_refuses_to_start(trail: Path) -> None:
    lines = lines_of(trail)
    for db_file in trail.parent.glob("cloud.db*"):
        db_file.unlink()
    with pytest.raises(AuditError, match=r"holds events 1\.\.5 that the audit store"):
        AuditLog(trail)
    assert lines_of(trail) == lines
    assert first(verify(trail)) == ("file", 1, "a line the store does not have (added)")


def test_a_failed_store_commit_writes_nothing_to_the_file(trail: Path) -> None:
    """Why the file is never ahead: a batch the store did not commit never reaches it."""
    lines = lines_of(trail)
    log = AuditLog(trail)
    try:

        def failing(rows: object) -> None:
            raise StoreError("disk I/O error")

        log.store.append = failing  # type: ignore[method-assign]
        with pytest.raises(AuditError):
            asyncio.run(record(log, make_event(6)))
    finally:
        log.close()
    assert lines_of(trail) == lines
    AuditLog(trail).close()
    assert verify(trail).ok


def test_a_file_ahead_by_lines_that_do_not_chain_refuses_to_start(trail: Path) -> None:
    lines = lines_of(trail)
    forget_after(trail, 3)
    lines[3] = lines[3].replace('"eventName":"Encrypt"', '"eventName":"Decrypt"')
    rewrite(trail, lines)
    with pytest.raises(AuditError, match=r"holds events 4\.\.5 that the audit store"):
        AuditLog(trail)
    assert lines_of(trail) == lines  # left alone


@pytest.mark.parametrize("edited", [3, 4])
def test_a_file_whose_end_disagrees_with_the_store_refuses_to_start(
    trail: Path, edited: int
) -> None:
    lines = lines_of(trail)
    forget_after(trail, 4)
    lines[edited] = lines[edited].replace('"eventName":"Encrypt"', '"eventName":"Decrypt"')
    rewrite(trail, lines)
    with pytest.raises(AuditError, match="audit verify"):
        AuditLog(trail)
    trail.rename(trail.with_name("tampered.jsonl"))  # the way out: the store writes it again
    AuditLog(trail).close()
    assert verify(trail).ok


# -- fail closed -------------------------------------------------------------------------------


class FullDisk(JsonlFile):
    """The real file, on a disk that has just filled up."""

    def append(self, data: bytes) -> None:
        raise OSError(28, "No space left on device")


def test_a_failed_write_fails_the_call_and_every_later_one(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, open_file=FullDisk)
    try:
        with pytest.raises(AuditError):
            asyncio.run(record(log, make_event(1)))
        with pytest.raises(AuditError, match="refuses writes after a failure"):
            asyncio.run(record(log, make_event(2)))
    finally:
        log.close()
    AuditLog(path).close()  # the next start levels the file with the store
    assert verify(path).ok


def test_a_stuck_store_fails_calls_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, timeout=0.3)
    try:
        with db(path) as conn:
            conn.execute("BEGIN IMMEDIATE")  # the store cannot commit while this is held
            started = time.monotonic()
            # 1 is being committed when its time runs out: it waits one timeout more, then
            # fails, and the trail refuses from then on (it may yet record 1 as it was).
            with pytest.raises(AuditError, match="timed out"):
                asyncio.run(record(log, make_event(1)))
            took = time.monotonic() - started
            assert 0.5 < took < 4.0  # two 0.3 s timeouts, not the 5 s default
            assert log.refusing is not None
            with pytest.raises(AuditError, match="refuses writes after a failure"):
                asyncio.run(record(log, make_event(2)))
            conn.execute("ROLLBACK")
        with pytest.raises(AuditError, match="refuses writes after a failure"):
            asyncio.run(record(log, make_event(3)))  # until the node restarts
    finally:
        log.close()
    AuditLog(path).close()
    assert verify(path).ok
    events = [json.loads(line) for line in lines_of(path)]
    assert [e["requestID"] for e in events] == ["request-1"]  # committed once unstuck


async def record_while_stuck(
    log: AuditLog, path: Path, *, release_after: float, second_after: float
) -> list[BaseException | int]:
    """Record event 1 while someone holds the store's lock, event 2 ``second_after`` seconds
    later (a batch of its own, behind 1's commit); the lock goes ``release_after`` seconds
    after the start. What each call got: its sequence or its error."""
    with db(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        loop.call_later(release_after, conn.execute, "ROLLBACK")
        first = asyncio.ensure_future(log.record(make_event(1)))
        await asyncio.sleep(second_after)
        second = asyncio.ensure_future(log.record(make_event(2)))
        results = await asyncio.gather(first, second, return_exceptions=True)
    return [r if isinstance(r, BaseException) else r.sequence for r in results]


def test_a_commit_under_way_at_the_deadline_is_waited_for_and_agrees_with_the_answer(
    tmp_path: Path,
) -> None:
    """The writer has taken event 1 and is committing it when 1's deadline passes: 1 is not
    abandoned (its event is sealed as a success), so its call waits and answers what the trail
    says. Event 2, not yet taken at its deadline, is abandoned: the call fails, and so says
    its event."""
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, timeout=1.0)
    try:
        started = time.monotonic()
        got = asyncio.run(record_while_stuck(log, path, release_after=1.5, second_after=0.1))
        assert got[0] == 1, got  # answered once the commit went through: a success
        assert 1.3 < time.monotonic() - started < 4.0
        assert isinstance(got[1], AuditError)
        assert "timed out" in str(got[1])
        assert log.refusing is None  # nothing was lost: the trail goes on
        assert asyncio.run(record(log, make_event(3))) == [3]
    finally:
        log.close()
    assert verify(path).ok
    events = [json.loads(line) for line in lines_of(path)]
    assert [e["requestID"] for e in events] == ["request-1", "request-2", "request-3"]
    assert [e.get("errorCode") for e in events] == [None, "KMSInternalException", None]
    assert events[1]["errorMessage"] == "The audit trail is unavailable."


def test_events_that_failed_or_used_no_key_are_not_key_usage(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path)
    try:
        asyncio.run(record(log, make_event(1), make_event(2, "Decrypt")))
        asyncio.run(record(log, make_event(3, "Encrypt", error="DisabledException")))
        last = log.store.last_use(KEY)
        assert last is not None
        assert (last.sequence, last.event_name) == (2, "Decrypt")
        assert log.store.last_use(KEY.replace("1234", "9999")) is None
    finally:
        log.close()


def test_a_file_behind_the_store_that_ends_on_a_forged_event_refuses_to_start(
    trail: Path,
) -> None:
    lines = lines_of(trail)[:3]
    doc = json.loads(lines[2])
    chain = doc.pop("chain")
    doc["eventName"] = "Decrypt"
    lines[2] = seal(doc, chain["sequence"], chain["previousHash"]).line  # sound, not the store's
    rewrite(trail, lines)
    with pytest.raises(AuditError, match="at sequence 3 is not the store's"):
        AuditLog(trail)


def test_a_trail_from_before_the_chain_is_kept_beside_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "cloud.jsonl"
    path.parent.mkdir()
    old = "".join(json.dumps(make_event(n).to_json()) + "\n" for n in range(3))
    path.write_text(old)
    log = AuditLog(path)
    try:
        assert asyncio.run(record(log, make_event(9))) == [1]
    finally:
        log.close()
    assert path.with_name("cloud.jsonl.unchained").read_text() == old
    assert verify(path).ok


def test_the_file_is_written_before_the_answer_and_synced_soon_after(tmp_path: Path) -> None:
    syncs: list[int] = []

    class WatchedFile(JsonlFile):
        def sync(self) -> None:
            syncs.append(len(lines_of(self.path)))
            super().sync()

    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, open_file=WatchedFile)
    try:
        asyncio.run(record(log, make_event(1)))
        assert len(lines_of(path)) == 1  # written when the call may answer
        deadline = time.monotonic() + 5
        while not syncs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert syncs == [1]  # then synced, off the call's path
    finally:
        log.close()


class FailingSync(JsonlFile):
    """Writes land; the disk then fails to make them durable."""

    def sync(self) -> None:
        raise OSError(5, "Input/output error")


def test_a_failed_file_sync_fails_every_later_call(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path, open_file=FailingSync)
    try:
        assert asyncio.run(record(log, make_event(1))) == [1]  # durable in the store
        deadline = time.monotonic() + 5
        while log.refusing is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(AuditError, match="refuses writes after a failure"):
            asyncio.run(record(log, make_event(2)))
    finally:
        log.close()
    AuditLog(path).close()
    assert verify(path).ok


def test_a_batch_larger_than_one_insert_is_still_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "cloud.jsonl"
    log = AuditLog(path)
    try:  # 200 calls at once: batches beyond one INSERT's 64 rows
        sequences = asyncio.run(record(log, *(make_event(n) for n in range(200))))
        assert sorted(sequences) == list(range(1, 201))
        assert log.store.head()[0] == 200
        last = log.store.last_use(KEY)
        assert last is not None
        assert last.sequence == 200
    finally:
        log.close()
    report = verify(path)
    assert report.ok, report.findings
    assert report.events == 200
