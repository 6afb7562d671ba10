"""The audit trail's JSON-lines copy, ``cloud.jsonl``, and its repair after a crash.

The writer syncs the file beside the store's commit, so a crash can leave either one batch
ahead of the other (and the file with a torn last line). At start, ``restore_file`` levels the
file with the store, which is authoritative: a torn line is cut, events the file lacks are
copied from the store, and a batch the store never committed (its calls were never answered)
is moved aside to ``cloud.jsonl.unanswered``. A file whose end disagrees with the store in
any other way is refused (``latchkey audit verify`` says where); moving it away lets the node
write it again from the store. A file from before the chain is kept beside the new one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from latchkey.cloud.auditchain import CHAIN, GENESIS, BrokenLink, follows, open_line
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


def _hash_of(line: bytes) -> str | None:
    try:
        return open_line(line).hash
    except BrokenLink:
        return None


def _truncate(path: Path, length: int) -> None:
    with path.open("r+b") as f:
        f.truncate(length)
        os.fsync(f.fileno())


def _drop_unanswered(
    path: Path, lines: list[tuple[int, bytes]], last: int, head: int, head_hash: str, batch: int
) -> int:
    """Move the lines after the store's head to ``<file>.unanswered``: a batch the file synced
    and the store did not commit before a crash (its calls were never answered). Anything else
    ahead of the store (more than one batch, or lines that do not continue the store's chain)
    is refused."""
    extra = last - head
    links = []
    if extra <= min(batch, len(lines)):
        previous, sequence = head_hash, head + 1
        for offset, line in lines[-extra:]:
            try:
                link = open_line(line)
            except BrokenLink:
                break
            if follows(link, sequence, previous) is not None:
                break
            links.append((offset, link))
            previous, sequence = link.hash, sequence + 1
    if head > 0 and len(links) == extra:  # and the line before them is the store's head
        before = lines[-extra - 1][1] if len(lines) > extra else b""
        if _hash_of(before) != head_hash:
            raise TrailMismatch(f"{path.name} at sequence {head} is not the store's{ADVICE}")
    if not links or len(links) != extra:
        raise TrailMismatch(
            f"{path.name} goes past the audit store's head (sequence {head}) with events that "
            f"are not one unanswered batch (the store rolled back, or the file written to){ADVICE}"
        )
    # Moved aside, never destroyed: a store deleted on purpose looks the same as this.
    aside = path.with_name(path.name + ".unanswered")
    with aside.open("ab") as f:
        f.write(b"".join(line + b"\n" for _, line in lines[-extra:]))
        f.flush()
        os.fsync(f.fileno())
    _truncate(path, links[0][0])
    log.warning(
        "audit: moved %d events of a batch the store never committed (a crash; their calls "
        "were not answered) from %s to %s: eventIDs %s",
        extra, path.name, aside.name,
        ", ".join(str(link.event.get("eventID")) for _, link in links),
    )  # fmt: skip
    return extra


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


def restore_file(store: AuditStore, path: Path, *, batch: int) -> int:
    """Bring ``cloud.jsonl`` level with the store after a crash: cut a torn last line, cut an
    unanswered batch the store lacks, append the events the file lacks. Returns how many
    were restored. An end that disagrees otherwise is refused (``TrailMismatch``)."""
    head, head_hash = store.head()
    if not path.is_file():
        if head == 0 or path.exists():
            return 0
        path.touch(mode=0o600)
    lines, complete = _tail_lines(path, batch + 1)
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
        _drop_unanswered(path, lines, last, head, head_hash, batch)
        return 0
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
