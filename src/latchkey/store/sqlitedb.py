"""One SQLite database file: WAL, ``synchronous=FULL``, one connection, refuse-after-failure.

After a failed write (disk full, I/O error) the database stops accepting writes and says so,
rather than carrying on with state it cannot vouch for. Backends subclass this and add their
schema and queries.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from latchkey.store.base import Conflict, StoreError
from latchkey.store.readcache import GENERAL_SIZE, ReadCache

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


# Queries every KMS call makes per key (the key's record, its material): sized so that a busy
# cloud with 100,000 keys in use still answers from memory (about 1 KiB per key).
KEY_CACHE_SIZE = 131072


class SqliteDatabase:
    SCHEMA = ""
    # Columns added to tables that already existed in earlier releases: (table, column, decl).
    ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = ()
    # Indexes, made after the columns above exist (an index may name an added column).
    INDEXES = ""

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
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(self.SCHEMA)
            self._migrate()
            self._db.executescript(self.INDEXES)
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
        caller is sure, since a key missing there would be served stale."""
        with self._lock:
            if self._failed is not None:
                raise StoreError(f"store refuses writes after an earlier failure: {self._failed}")
            try:
                changes = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
                if self._db.total_changes != changes:
                    self.reads.changed(keys)
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                self.reads.changed(None)
                raise Conflict(str(exc)) from None
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self.reads.changed(None)
                self._failed = f"{type(exc).__name__}: {exc}"
                raise StoreError(f"write failed: {exc}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self.reads.changed(None)
                raise

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
