"""The audit trail's SQLite store: ``<data-dir>/audit/cloud.db``, the authoritative copy.

Its own file, not a table in ``latchkey.db``: SQLite has one writer per file, and the audit
writer commits a batch of events (one transaction, ``synchronous=FULL``) for every group of
concurrent calls; sharing the cloud store's file would put every key write behind audit
commits and the other way round. The audit directory then holds the whole trail (this store
and ``cloud.jsonl``). One connection writes (the audit writer's thread); reads (the node's
``GetKeyLastUsage``, ``latchkey audit``) use another, so they never wait for a commit.

Each event is kept as its exact sealed JSON line plus the columns queries need; the chain head
(sequence and hash) is kept apart, in the same transaction, so removing the last events shows.

Key usage (``GetKeyLastUsage``): each event row names the keys its successful cryptographic
operation used (``used``), and ``audit_last_use`` keeps the last such event per key. That table
is written at most once per ``LAST_USE_FLUSH`` seconds, inside a batch's transaction, with the
newest use of every key since the last time: a call on one of 100,000 keys would otherwise
write a page at a random place in it, every call. Uses not yet in the table are kept in memory
(and, after a crash, found again in the events past ``last_use_through``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from latchkey.secretfile import private_dir
from latchkey.store.base import StoreError
from latchkey.store.sqlitedb import insert_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    sequence INTEGER PRIMARY KEY, event_id TEXT NOT NULL, event_time TEXT NOT NULL,
    event_source TEXT NOT NULL, event_name TEXT NOT NULL, error_code TEXT,
    hash TEXT NOT NULL, line TEXT NOT NULL, used TEXT
);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (event_time);
CREATE INDEX IF NOT EXISTS audit_events_by_name ON audit_events (event_name, sequence);
CREATE TABLE IF NOT EXISTS audit_last_use (
    arn TEXT PRIMARY KEY, sequence INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), sequence INTEGER NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

ROW_COLUMNS = (
    "sequence, event_id, event_time, event_source, event_name, error_code, hash, line, used"
)
GENESIS = "0" * 64
LAST_USE_FLUSH = 1.0  # seconds between writes of audit_last_use
LAST_USE_THROUGH = "last_use_through"  # audit_meta: the sequence audit_last_use is complete to
# audit_meta: the first sequence whose ``used`` column was written with its event (a store from
# before that column has none for its older events); absent: every event's.
USED_FROM = "used_from"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One sealed event to append, with what its indexes need."""

    sequence: int
    event_id: str
    event_time: str
    event_source: str
    event_name: str
    error_code: str | None
    hash: str
    line: str
    used: tuple[str, ...] = ()  # ARNs a successful cryptographic operation used


@dataclass(frozen=True, slots=True)
class AuditRow:
    sequence: int
    event_id: str
    event_time: str
    event_source: str
    event_name: str
    error_code: str | None
    hash: str
    line: str
    used: str | None = None  # the ARNs of NewEvent.used, space-separated; None for none


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """``audit_last_use`` and what it covers, read in one snapshot (``verify`` checks them)."""

    through: int  # the table holds every key's newest use up to this sequence
    used_from: int  # events before this one predate the ``used`` column
    last_use: dict[str, int]  # ARN -> sequence


@dataclass(frozen=True, slots=True)
class TrailState:
    """The persisted head and what the events table holds, read in one snapshot."""

    head_sequence: int
    head_hash: str
    last_sequence: int
    last_hash: str
    count: int


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{quote(str(path))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    else:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=60000")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """A store from before ``audit_last_use``: its ``audit_resources`` rows give the table, and
    the events gain their ``used`` column (empty for the old ones, which the table covers)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(audit_events)")}
    old = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_resources'"
    ).fetchone()
    if "used" in columns and old is None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if "used" not in columns:
            db.execute("ALTER TABLE audit_events ADD COLUMN used TEXT")
            db.execute(
                "INSERT OR IGNORE INTO audit_meta SELECT ?, COALESCE(MAX(sequence), 0) + 1"
                " FROM audit_events",
                (USED_FROM,),
            )
        if old is not None:
            db.execute(
                "INSERT OR REPLACE INTO audit_last_use SELECT arn, MAX(sequence)"
                " FROM audit_resources WHERE used = 1 GROUP BY arn"
            )
            db.execute("DROP TABLE audit_resources")
        db.execute(
            "INSERT OR REPLACE INTO audit_meta SELECT ?, COALESCE(MAX(sequence), 0)"
            " FROM audit_events",
            (LAST_USE_THROUGH,),
        )
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class AuditStore:
    """Append batches (the audit writer's thread only) and read (anyone)."""

    def __init__(self, path: Path, *, readonly: bool = False, now: float | None = None) -> None:
        self.path = path
        self._read_lock = threading.Lock()
        self._failed: str | None = None
        # Key uses committed with their events but not yet in audit_last_use: ARN -> sequence.
        self._unflushed: dict[str, int] = {}
        self._use_lock = threading.Lock()
        self._flushed_at = time.monotonic()
        try:
            if readonly:
                if not path.exists():
                    raise StoreError(f"no audit store at {path}")
                self._writer: sqlite3.Connection | None = None
            else:
                private_dir(path.parent)
                self._writer = _connect(path, readonly=False)
                self._writer.executescript(SCHEMA)
                self._writer.execute(
                    "INSERT OR IGNORE INTO audit_meta VALUES ('tracking_start', ?)",
                    (repr(time.time() if now is None else now),),
                )
                _migrate(self._writer)
                self._unflushed = self._uses_after_last_flush(self._writer)
                with contextlib.suppress(OSError):
                    path.chmod(0o600)
            self._reader = _connect(path, readonly=readonly)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the audit store {path}: {exc}") from None

    # -- writing (one thread) ---------------------------------------------------------------

    @staticmethod
    def _uses_after_last_flush(db: sqlite3.Connection) -> dict[str, int]:
        """The key uses of the events audit_last_use does not cover yet (after a crash)."""
        row = db.execute(
            "SELECT value FROM audit_meta WHERE name = ?", (LAST_USE_THROUGH,)
        ).fetchone()
        through = int(row[0]) if row else 0
        uses: dict[str, int] = {}
        for sequence, used in db.execute(
            "SELECT sequence, used FROM audit_events WHERE sequence > ? AND used IS NOT NULL"
            " ORDER BY sequence",
            (through,),
        ):
            for arn in used.split():
                uses[arn] = sequence
        return uses

    def append(self, events: Sequence[NewEvent]) -> None:
        """All of ``events`` and the new head in one durable transaction, or none of them."""
        db = self._writer
        if db is None:
            raise StoreError("the audit store is open read-only")
        if self._failed is not None:
            raise StoreError(f"the audit store refuses writes after a failure: {self._failed}")
        uses = {arn: e.sequence for e in events for arn in e.used}
        now = time.monotonic()
        flush = now - self._flushed_at >= LAST_USE_FLUSH
        last = events[-1]
        try:
            db.execute("BEGIN IMMEDIATE")
            event_rows = [
                (e.sequence, e.event_id, e.event_time, e.event_source, e.event_name,
                 e.error_code, e.hash, e.line, " ".join(e.used) or None)
                for e in events
            ]  # fmt: skip
            insert_rows(db, "audit_events", ROW_COLUMNS, event_rows)
            if flush:
                with self._use_lock:
                    due = {**self._unflushed, **uses}
                insert_rows(
                    db,
                    "audit_last_use",
                    "arn, sequence",
                    sorted(due.items()),
                    conflict="ON CONFLICT (arn) DO UPDATE"
                    " SET sequence = max(sequence, excluded.sequence)",
                )
                db.execute(
                    "INSERT OR REPLACE INTO audit_meta VALUES (?, ?)",
                    (LAST_USE_THROUGH, str(last.sequence)),
                )
            db.execute(
                "INSERT INTO audit_head VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
                " SET sequence = excluded.sequence, hash = excluded.hash",
                (last.sequence, last.hash),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._failed = f"{type(exc).__name__}: {exc}"
            raise StoreError(f"audit store write failed: {exc}") from None
        with self._use_lock:  # after the commit: a reader finds a use here or in the table
            if flush:
                self._unflushed = {}
                self._flushed_at = now
            else:
                self._unflushed.update(uses)

    # -- reading ------------------------------------------------------------------------------

    def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return list(self._reader.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"audit store read failed: {exc}") from None

    def head(self) -> tuple[int, str]:
        """The persisted chain head: (sequence, hash); (0, GENESIS) when empty."""
        rows = self._rows("SELECT sequence, hash FROM audit_head WHERE id = 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    def state(self) -> TrailState:
        with self._read_lock:
            try:
                self._reader.execute("BEGIN")
                head = self._reader.execute(
                    "SELECT sequence, hash FROM audit_head WHERE id = 1"
                ).fetchone()
                last = self._reader.execute(
                    "SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1"
                ).fetchone()
                count = self._reader.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
                self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._reader.execute("ROLLBACK")
                raise StoreError(f"audit store read failed: {exc}") from None
        head = head or (0, GENESIS)
        last = last or (0, GENESIS)
        return TrailState(int(head[0]), str(head[1]), int(last[0]), str(last[1]), int(count))

    def key_usage(self) -> KeyUsage:
        """``audit_last_use`` with its ``last_use_through`` (one snapshot), for ``verify``."""
        with self._read_lock:
            try:
                self._reader.execute("BEGIN")
                meta = dict(self._reader.execute(
                    "SELECT name, value FROM audit_meta WHERE name IN (?, ?)",
                    (LAST_USE_THROUGH, USED_FROM),
                ).fetchall())  # fmt: skip
                table = dict(self._reader.execute("SELECT arn, sequence FROM audit_last_use"))
                self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._reader.execute("ROLLBACK")
                raise StoreError(f"audit store read failed: {exc}") from None
        return KeyUsage(int(meta.get(LAST_USE_THROUGH, 0)), int(meta.get(USED_FROM, 1)), table)

    def tracking_start(self) -> float:
        rows = self._rows("SELECT value FROM audit_meta WHERE name = 'tracking_start'")
        return float(str(rows[0][0])) if rows else 0.0

    def events_after(self, sequence: int, limit: int = 1000) -> list[AuditRow]:
        """Up to ``limit`` events after ``sequence``, in order."""
        rows = self._rows(
            f"SELECT {ROW_COLUMNS} FROM audit_events WHERE sequence > ?"  # noqa: S608
            " ORDER BY sequence LIMIT ?",
            sequence,
            limit,
        )
        return [AuditRow(*r) for r in rows]

    def find(
        self,
        *,
        after: int = 0,
        since: str | None = None,
        event_name: str | None = None,
        errors_only: bool = False,
        limit: int = 1000,
    ) -> list[AuditRow]:
        """A page of events after ``after`` matching the filters that have a column."""
        sql = f"SELECT {ROW_COLUMNS} FROM audit_events WHERE sequence > ?"  # noqa: S608
        args: list[object] = [after]
        if since is not None:
            sql += " AND event_time >= ?"
            args.append(since)
        if event_name is not None:
            sql += " AND event_name = ?"
            args.append(event_name)
        if errors_only:
            sql += " AND error_code IS NOT NULL"
        sql += " ORDER BY sequence LIMIT ?"
        args.append(limit)
        return [AuditRow(*r) for r in self._rows(sql, *args)]

    def last_use(self, arn: str) -> AuditRow | None:
        """The latest event whose successful cryptographic operation used key ``arn``."""
        with self._use_lock:
            sequence = self._unflushed.get(arn)
        if sequence is None:
            rows = self._rows("SELECT sequence FROM audit_last_use WHERE arn = ?", arn)
            if not rows:
                return None
            sequence = int(rows[0][0])
        rows = self._rows(
            f"SELECT {ROW_COLUMNS} FROM audit_events WHERE sequence = ?",  # noqa: S608
            sequence,
        )
        return AuditRow(*rows[0]) if rows else None

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        if self._writer is not None:
            self._writer.close()
