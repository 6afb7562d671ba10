"""The control plane's SQLite store: configuration objects and access events."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from urllib.parse import quote

from latchkey.store.sqlitedb import SqliteDatabase, insert_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS control_objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS control_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, source TEXT NOT NULL,
    client TEXT, server TEXT NOT NULL, policy TEXT, decision TEXT NOT NULL, reason TEXT,
    detail TEXT, credential_provider TEXT, method TEXT, path TEXT, status INTEGER,
    latency_ms REAL
);
CREATE INDEX IF NOT EXISTS access_events_time ON access_events (time);
"""


# Set by the first write of the objects (seeded, applied, given to ``up --config``): an empty
# stored configuration is then one someone chose (deny everything), not a store never used.
WRITTEN_KEY = "objects-written"
# What older releases set when they seeded the default configuration (they had no marker).
SEEDED_KEY = "seeded-default"
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # how the edge writes an event's time


@dataclass(frozen=True, slots=True)
class ObjectRow:
    kind: str
    name: str
    spec: dict[str, object]


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One request at the edge: who, to what, the decision and why. Never a secret."""

    time: str  # ISO 8601 UTC
    source: str  # the caller's address
    client: str | None
    server: str
    policy: str | None
    decision: str  # "allowed" | "denied"
    reason: str | None  # IdentityNotMatched, NoMatchingPolicy, ConditionFailed, ...
    detail: str | None
    credential_provider: str | None
    method: str | None
    path: str | None  # without the query
    status: int | None
    latency_ms: float | None
    id: int | None = None
    evidence: str | None = None  # what identified the client ("sourceCidr 127.0.0.0/8; ...")
    credential_result: str | None = None  # cached | fetched | refreshing | unavailable
    upstream_status: int | None = None  # the upstream's own status (None: never sent)

    def to_json(self) -> dict[str, object]:
        # (every field is a str, int, float or None: no asdict deep copy needed)
        values = ((name, getattr(self, name)) for name in self.__dataclass_fields__)
        return {name: value for name, value in values if value is not None}

    def row(self) -> EventRow:
        """The event's values in ``EVENT_COLUMNS`` order (without the id)."""
        return (
            self.time, self.source, self.client, self.server, self.policy, self.decision,
            self.reason, self.detail, self.credential_provider, self.method, self.path,
            self.status, self.latency_ms, self.evidence, self.credential_result,
            self.upstream_status,
        )  # fmt: skip


EVENT_COLUMNS = tuple(f for f in AccessEvent.__dataclass_fields__ if f != "id")

# An access event as the edge records it: the values of ``EVENT_COLUMNS`` in that order. A
# tuple costs the edge's event loop a fraction of what an ``AccessEvent`` does (frozen
# dataclasses set every field through ``object.__setattr__``); the store takes rows as they are.
EventRow = tuple[
    str, str, str | None, str, str | None, str, str | None, str | None, str | None,
    str | None, str | None, int | None, float | None, str | None, str | None, int | None,
]  # fmt: skip

_EVENT_COLUMN_LIST = ", ".join(EVENT_COLUMNS)
# (position in a row, '"name":') in the key order of ``json.dumps(..., sort_keys=True)``
_JSON_KEYS = tuple((i, f'"{name}":') for name, i in sorted(zip(EVENT_COLUMNS, itertools.count())))


def event_json_line(row: EventRow) -> str:
    """The event as one line of JSON (with its newline), exactly what ``json.dumps`` makes of
    ``event.to_json()`` with ``separators=(",", ":"), sort_keys=True`` (keys sorted, None left
    out), at a fraction of its cost: the key order and the keys' text are worked out once."""
    parts = []
    for i, key in _JSON_KEYS:
        value = row[i]
        if value is None:
            continue
        if type(value) is str:
            parts.append(key + encode_basestring_ascii(value))
        elif type(value) is int or (type(value) is float and math.isfinite(value)):
            parts.append(key + repr(value))  # (what json writes for them; not for a bool)
        else:
            parts.append(key + json.dumps(value))
    return "{" + ",".join(parts) + "}\n"


class ControlStore(SqliteDatabase):
    SCHEMA = SCHEMA
    ADDED_COLUMNS = (
        ("access_events", "evidence", "TEXT"),
        ("access_events", "credential_result", "TEXT"),
        ("access_events", "upstream_status", "INTEGER"),
    )

    # -- objects --------------------------------------------------------------------------

    def list_objects(self) -> list[ObjectRow]:
        rows = self._rows("SELECT kind, name, spec FROM control_objects ORDER BY kind, name")
        return [ObjectRow(r["kind"], r["name"], json.loads(r["spec"])) for r in rows]

    def replace_objects(
        self, objects: Sequence[ObjectRow], meta: dict[str, str] | None = None
    ) -> None:
        """Make the stored set exactly ``objects``, in one transaction (apply is all or nothing)."""
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM control_objects")
            db.executemany(
                "INSERT INTO control_objects VALUES (?,?,?,?)",
                [(o.kind, o.name, json.dumps(o.spec, sort_keys=True), now) for o in objects],
            )
            for key, value in {**(meta or {}), WRITTEN_KEY: "1"}.items():
                db.execute(
                    "INSERT INTO control_meta VALUES (?,?) ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value",
                    (key, value),
                )

    def meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM control_meta WHERE key = ?", key)
        return str(rows[0]["value"]) if rows else None

    def objects_written(self) -> bool:
        """Whether objects were ever stored, even if none are left. A store from before the
        marker counts as written when it holds objects or was seeded."""
        if self.meta(WRITTEN_KEY) is not None or self.meta(SEEDED_KEY) is not None:
            return True
        return bool(self._rows("SELECT 1 FROM control_objects LIMIT 1"))

    # -- access events --------------------------------------------------------------------

    def add_events(self, events: Sequence[AccessEvent]) -> None:
        """Record a batch of events in one transaction."""
        self.add_event_rows([event.row() for event in events])

    def add_event_rows(self, rows: Sequence[EventRow]) -> None:
        """Record a batch of events, given as rows, in one transaction."""
        with self._write() as db:  # column names come from the dataclass, values are bound
            insert_rows(db, "access_events", _EVENT_COLUMN_LIST, rows)

    def list_events(
        self,
        *,
        after_id: int = 0,
        limit: int = 100,
        client: str | None = None,
        server: str | None = None,
        decision: str | None = None,
        since: dt.datetime | None = None,
    ) -> list[AccessEvent]:
        """Events with id > ``after_id`` (the paging cursor), oldest first; ``since``: at or
        after that (aware) time."""
        where: list[str] = ["id > ?"]
        args: list[object] = [after_id]
        for column, value in (("client", client), ("server", server), ("decision", decision)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            # Event times are UTC text of one width (EVENT_TIME_FORMAT), so text order is time
            # order and the index serves; a time written without a fraction ("...:57Z") sorts
            # after every fraction of its second, so it is left out by hand when too early.
            bound = since.astimezone(dt.UTC).strftime(EVENT_TIME_FORMAT)
            where.append("time >= ?")
            args.append(bound)
            if since.microsecond:
                where.append("time != ?")
                args.append(bound[:19] + "Z")
        rows = self._rows(  # fixed column names, values bound
            f"SELECT * FROM access_events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",  # noqa: S608
            *args,
            limit,
        )
        return [AccessEvent(**dict(r)) for r in rows]


def read_objects(path: Path) -> list[ObjectRow]:
    """The stored objects, read without the node (read-only: nothing is created or migrated).
    ``FileNotFoundError`` when there is no store."""
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, name, spec FROM control_objects ORDER BY kind, name")
        return [ObjectRow(kind, name, json.loads(spec)) for kind, name, spec in rows]
    finally:
        db.close()
