"""The audit trail's JSON-lines copy, ``cloud.jsonl``, and its repair after a crash.

The writer commits each batch to the store (authoritative) and only then appends it to the
file, which is synced soon after. So a crash can leave the file behind the store (a batch or
so, maybe with a torn last line), never ahead of it. At start, ``restore_file`` levels the file
with the store: a torn line is cut and the events the file lacks are copied from the store. A
file that holds events the store lacks (the store rolled back, replaced or deleted, or lines
added to the file), or whose end disagrees with the store in any other way, is refused and
left as it is (``latchkey audit verify`` says where). A file from before the chain is kept
beside the new one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from latchkey.cloud.auditchain import CHAIN, GENESIS, BrokenLink, open_line
from latchkey.secretfile import private_dir
from latchkey.store.audit import AuditStore

log = logging.getLogger("latchkey.audit")


ADVICE = (
    "; `latchkey audit verify` says where. Moving the file away lets the node write it again "
    "from the store"
)


class TrailMismatch(Exception):
    """The file's end disagrees with the store in a way no crash explains."""


class JsonlFile:
    """``cloud.jsonl``: append-only, 0600. ``append`` writes; ``sync`` makes it durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def _tail_lines(path: Path, count: int) -> tuple[list[tuple[int, bytes]], int]:
    """The last ``count`` complete lines of ``path`` (offset, line without its newline) and
    the length of the file up to its last newline; bytes after it are a torn write."""
    with path.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        data = b""
        while pos > 0 and data.count(b"\n") <= count:
            step = min(1 << 20, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], pos
    i = 0 if pos == 0 else data.index(b"\n") + 1  # the first chunk may start mid-line
    lines = []
    while i < end:
        j = data.index(b"\n", i)
        lines.append((pos + i, data[i:j]))
        i = j + 1
    return lines[-count:], pos + end


def _truncate(path: Path, length: int) -> None:
    with path.open("r+b") as f:
        f.truncate(length)
        os.fsync(f.fileno())


def _refuse_ahead(store: AuditStore, path: Path, last: int, head: int) -> TrailMismatch:
    """The file holds events past the store's head. ``AuditLog`` commits each batch to the
    store before it writes the batch to the file, so no crash leaves the file ahead: the store
    lost events (rolled back, replaced, deleted) or lines were added to the file. Nothing is
    moved or cut: which copy is right is for a person to decide."""
    return TrailMismatch(
        f"{path} holds events {head + 1}..{last} that the audit store {store.path} lacks (its "
        f"head is sequence {head}). The store is written before the file, so no crash explains "
        f"this: the store was rolled back, replaced or deleted, or lines were added to the file. "
        f"Restore the store from a backup; or, to go on from the store as it is, move {path.name} "
        f"away (keep it: it holds the events the store lost) and start again, and the node "
        f"writes the file anew from the store; `latchkey audit verify` says where they part"
    )


def _unchained(line: bytes) -> bool:
    """An event from before the hash chain (an older latchkey): JSON, no ``chain``."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and "eventID" in event and CHAIN not in event


def _keep_unchained(path: Path) -> None:
    """A trail an older latchkey wrote, with no chain and no store: kept as it is, beside the
    new one, which starts its chain afresh."""
    n = 0
    while (kept := path.with_name(f"{path.name}.unchained{f'.{n}' if n else ''}")).exists():
        n += 1
    path.rename(kept)
    log.warning("audit: %s predates the hash chain; kept as %s", path.name, kept.name)


def restore_file(store: AuditStore, path: Path) -> int:
    """Bring ``cloud.jsonl`` level with the store after a crash: cut a torn last line, append
    the events the file lacks. Returns how many were restored. A file ahead of the store, or
    whose end disagrees with it otherwise, is refused (``TrailMismatch``)."""
    head, head_hash = store.head()
    if not path.is_file():
        if head == 0 or path.exists():
            return 0
        path.touch(mode=0o600)
    lines, complete = _tail_lines(path, 1)
    size = path.stat().st_size
    if complete < size:
        log.warning("audit: cutting a torn last line (%d bytes) from %s", size - complete, path)
        _truncate(path, complete)
    last, last_hash = 0, GENESIS
    if lines:
        try:
            link = open_line(lines[-1][1])
        except BrokenLink as exc:
            if head == 0 and _unchained(lines[-1][1]):
                _keep_unchained(path)
                return 0
            raise TrailMismatch(f"the last line of {path.name} is unsound: {exc}{ADVICE}") from None
        last, last_hash = link.sequence, link.hash
    if last > head:
        raise _refuse_ahead(store, path, last, head)
    if last == head:
        if last_hash != head_hash:
            raise TrailMismatch(f"the last line of {path.name} is not the store's{ADVICE}")
        return 0
    if last > 0:  # the file must end on one of the store's events
        rows = store.events_after(last - 1, 1)
        if not rows or (rows[0].sequence, rows[0].hash) != (last, last_hash):
            raise TrailMismatch(f"{path.name} at sequence {last} is not the store's{ADVICE}")
    restored = 0
    with path.open("ab") as f:
        after = last
        while after < head:
            rows = store.events_after(after, 1000)
            if not rows:
                break
            f.write(b"".join(r.line.encode() + b"\n" for r in rows))
            restored += len(rows)
            after = rows[-1].sequence
        f.flush()
        os.fsync(f.fileno())
    log.warning("audit: restored %d events to %s from the audit store", restored, path.name)
    return restored
