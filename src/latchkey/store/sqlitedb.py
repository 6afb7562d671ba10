"""One SQLite database file: WAL, ``synchronous=FULL``, one connection, refuse-after-failure.

After a failed write of the I/O kind (disk full, an I/O or fsync error, a corrupt or vanished
file) the database stops accepting writes and says so, rather than carrying on with state it
cannot vouch for. A commit that fails that way may still have reached the disk: its caller gets
``WriteUnconfirmed`` (the outcome is unknown), never a plain failure. A write lock held by
another connection (an operator's ``sqlite3`` shell, a backup) is waited for at most
``BUSY_TIMEOUT_MS`` (the writes run on the event loop's thread), then the write is rolled back
and fails with ``StoreBusy``, and the store goes on: nothing about the disk is in doubt.
Backends subclass this and add their schema and queries.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from latchkey.store.base import Conflict, StoreBusy, StoreError, WriteUnconfirmed
from latchkey.store.readcache import GENERAL_SIZE, ReadCache

log = logging.getLogger("latchkey.store")

T = TypeVar("T")
CHUNK_ROWS = 64  # rows per INSERT at most
MAX_PARAMETERS = 999  # bound parameters per statement in SQLite before 3.32


def insert_rows(
    db: sqlite3.Connection,
    table: str,
    columns: str,
    rows: Sequence[Sequence[object]],
    *,
    conflict: str = "",
) -> None:
    """Insert ``rows`` (``columns``: our own names, comma-separated) with as few statements
    as power-of-two chunk sizes allow; ``conflict`` is an upsert clause or nothing.

    For a writer thread beside an event loop: the sqlite3 module releases the GIL once per
    statement step, and ``executemany`` steps once per row, so a batch of rows written that
    way wrestles the loop for the GIL once per row; a multi-row INSERT does it once per chunk.
    """
    width = columns.count(",") + 1
    most = min(CHUNK_ROWS, MAX_PARAMETERS // width)
    placeholder = "(" + ",".join("?" * width) + ")"
    start = 0
    while start < len(rows):
        size = min(most, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        values = ",".join([placeholder] * size)
        sql = f"INSERT INTO {table} ({columns}) VALUES {values} {conflict}"  # noqa: S608 (ours)
        db.execute(sql, [value for row in chunk for value in row])
        start += size


# SQLite's result codes (``sqlite3.Error.sqlite_errorname``, extended codes included) after
# which the database refuses writes: what is on the disk is in doubt (or the disk refuses).
# Any other error (a lock held elsewhere, a bad statement, a constraint) rolls back and leaves
# the database as it was.
LATCHING_ERRORS = (
    "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CANTOPEN",
    "SQLITE_READONLY", "SQLITE_PROTOCOL", "SQLITE_PERM", "SQLITE_NOLFS",
)  # fmt: skip
BUSY_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED")


def _errorname(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


# Queries every KMS call makes per key (the key's record, its material): sized so that a busy
# cloud with 100,000 keys in use still answers from memory (about 1 KiB per key).
KEY_CACHE_SIZE = 131072


class SqliteDatabase:
    SCHEMA = ""
    # Columns added to tables that already existed in earlier releases: (table, column, decl).
    ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = ()
    # Indexes, made after the columns above exist (an index may name an added column).
    INDEXES = ""
    # How long a write waits for a write lock another connection holds, in milliseconds. Writes
    # run on the event loop's thread: every call waits while one does. (At open: longer.)
    BUSY_TIMEOUT_MS = 200
    OPEN_BUSY_TIMEOUT_MS = 5000

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._failed: str | None = None
        # Told of every write transaction that changed a row, and of every one that failed; a
        # transaction that changed nothing (a sweep with nothing due) leaves the caches be.
        self.reads = ReadCache()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Deleted rows (key material above all) are overwritten with zeros, whatever the
            # SQLite build's default; ``_scrub`` then clears the write-ahead log of them.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(self.OPEN_BUSY_TIMEOUT_MS)}")
            self._db.executescript(self.SCHEMA)
            self._migrate()
            self._db.executescript(self.INDEXES)
            self._db.execute(f"PRAGMA busy_timeout={int(self.BUSY_TIMEOUT_MS)}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from None
        with contextlib.suppress(OSError):
            path.chmod(0o600)

    def _migrate(self) -> None:
        """Add the columns newer code expects, once, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, declaration in self.ADDED_COLUMNS:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _write(self, keys: Collection[str] | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``keys``: the KMS keys whose rows (``kms_keys``,
        ``kms_key_material``) it may change, ``()`` for none; ``None`` (any) unless the
        caller is sure, since a key missing there would be served stale.

        Raises ``Conflict`` (a constraint), ``StoreBusy`` (another connection's lock: retry),
        ``WriteUnconfirmed`` (the commit failed with an I/O error: outcome unknown) or
        ``StoreError``; after an I/O-kind failure every later write is refused."""
        with self._lock:
            if self._failed is not None:
                raise StoreError(f"the store refuses writes after a write failure: {self._failed}")
            committing = False
            try:
                changes = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                committing = True
                self._db.execute("COMMIT")
                if self._db.total_changes != changes:
                    self.reads.changed(keys)
            except sqlite3.IntegrityError as exc:
                self._rollback()
                self.reads.changed(None)
                raise Conflict(str(exc)) from None
            except sqlite3.Error as exc:
                self._rollback()
                self.reads.changed(None)
                name = _errorname(exc)
                if name.startswith(BUSY_ERRORS):
                    raise StoreBusy(
                        f"the store is locked by another connection ({name}); nothing changed"
                    ) from None
                if not name.startswith(LATCHING_ERRORS):
                    raise StoreError(
                        f"write failed ({name or type(exc).__name__}): {exc}"
                    ) from None
                self._failed = f"{name}: {exc}"
                log.error("store %s: write failed, refusing writes until restart: %s",
                          self.path.name, self._failed)  # fmt: skip
                if committing:
                    raise WriteUnconfirmed(
                        f"the commit failed ({name}: {exc}); the write may or may not stand"
                    ) from None
                raise StoreError(f"write failed ({name}: {exc})") from None
            except BaseException:
                self._rollback()
                self.reads.changed(None)
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _scrub(self) -> None:
        """After deleting key material: move the write-ahead log into the database and empty
        it, so the deleted rows' old pages (with ``secure_delete``, the database's own copy is
        zeroed) are in neither file. Never fails the write it follows: a reader holding the
        log, or any error, leaves the pages there until a later checkpoint, and is logged."""
        try:
            with self._lock:
                row = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("store %s: deleted key material may stay in its write-ahead log until "
                        "a later checkpoint: %s", self.path.name, exc)  # fmt: skip
            return
        if row is not None and row[0]:
            log.warning("store %s: deleted key material may stay in its write-ahead log until "
                        "a later checkpoint: a reader holds the log", self.path.name)  # fmt: skip

    def cached(
        self, name: str, key: Hashable, load: Callable[[], T], *, size: int = GENERAL_SIZE
    ) -> T:
        """``load()``'s value, remembered until the next write that changes a row of this
        database. Values must be immutable (frozen records, tuples): every caller shares them.
        ``load`` may derive its value from reads of this database only (e.g. an authorization
        decision). At most ``size`` entries per ``name``; the oldest goes first."""
        return self.reads.cached(name, key, load, size=size)

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.execute(sql, args)
            cur.row_factory = sqlite3.Row
            return list(cur.fetchall())

    @staticmethod
    def _count(db: sqlite3.Connection, sql: str, *args: object) -> int:
        return int(db.execute(sql, args).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
