"""``latchkey audit verify``: walk the store's chain and the file side by side.

The store is authoritative: each of its events must be a sound link (its hash matches its
contents, its sequence and ``previousHash`` follow the event before it, its index columns say
what its line says, ``used`` included), the persisted head must be its last event, and
``audit_last_use`` must name each key's latest use up to its last flush. The file must hold
the same lines, byte for byte, in the same order: a line removed, repeated, added or moved is
named by line number and sequence; only the lines of events the store itself lacks (the
store's finding) are passed over. The first broken link of each is reported by sequence
number and eventID. Reading runs beside a live node: a file a batch behind the store is given
a moment to catch up before it counts as truncated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from latchkey.cloud.auditchain import GENESIS, BrokenLink, Finding, Link, follows, open_line
from latchkey.cloud.kms.usage import TRACKED_OPERATIONS
from latchkey.store.audit import AuditRow, AuditStore, KeyUsage

MAX_FINDINGS = 20
PAGE = 1000


@dataclass(slots=True)
class Report:
    events: int = 0
    head_sequence: int = 0
    head_hash: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Lines:
    """Complete lines of a file that may still be growing; a partial last line is held back.
    ``number`` is the line number of the last line read (peeked or not)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.partial = b""
        self._peeked: bytes | None = None
        self.number = 0

    def next(self) -> bytes | None:
        if self._peeked is not None:
            line, self._peeked = self._peeked, None
            return line
        line = self.partial + self._f.readline()
        self.partial = b""
        if not line:
            return None
        if not line.endswith(b"\n"):
            self.partial = line
            return None
        self.number += 1
        return line[:-1]

    def peek(self) -> bytes | None:
        if self._peeked is None:
            self._peeked = self.next()
        return self._peeked


def _rows(store: AuditStore, after: int) -> Iterator[AuditRow]:
    while True:
        page = store.events_after(after, PAGE)
        if not page:
            return
        yield from page
        after = page[-1].sequence


def expected_used(event: dict[str, Any]) -> str | None:
    """The ``used`` column the writer gives ``event`` (``audit._row``, ``describe_call``): the
    ARNs in its resources when it is a successful cryptographic operation GetKeyLastUsage
    reports, else None."""
    if (
        event.get("eventSource") != "kms.amazonaws.com"
        or event.get("eventName") not in TRACKED_OPERATIONS
        or event.get("eventType") != "AwsApiCall"
        or "errorCode" in event
    ):
        return None
    resources = event.get("resources")
    if not isinstance(resources, list):
        return None
    arns = [r.get("ARN") for r in resources if isinstance(r, dict)]
    return " ".join(a for a in arns if isinstance(a, str)) or None


def check_row(row: AuditRow, sequence: int, previous: str, *, used_from: int = 1) -> str | None:
    """Why the store's ``row`` is not link ``sequence`` after ``previous`` (None: it is).
    Rows before ``used_from`` predate the ``used`` column, which is then not checked."""
    if row.sequence != sequence:
        return f"events {sequence}..{row.sequence - 1} are missing (removed)"
    try:
        link = open_line(row.line)
    except BrokenLink as exc:
        return str(exc)
    why = follows(link, sequence, previous)
    if why is not None:
        return why
    event = link.event
    columns = {
        "hash": (row.hash, link.hash),
        "eventID": (row.event_id, event.get("eventID")),
        "eventTime": (row.event_time, event.get("eventTime")),
        "eventSource": (row.event_source, event.get("eventSource")),
        "eventName": (row.event_name, event.get("eventName")),
        "errorCode": (row.error_code, event.get("errorCode")),
    }
    if row.sequence >= used_from:  # the key usage GetKeyLastUsage answers from
        columns["used"] = (row.used, expected_used(event))
    for name, (column, value) in columns.items():
        if column != value:
            return f"its {name} column says {column!r} but the event says {value!r} (edited)"
    return None


class _FileCheck:
    """The file's lines against the store's rows, in order."""

    def __init__(self, lines: _Lines, name: str, settle: float) -> None:
        self.lines = lines
        self.name = name
        self.settle = settle
        self.matched = 0  # the sequence of the last line found to be the store's event

    def check(self, row: AuditRow, missing_from: int) -> Finding | None:
        """Find ``row`` as the file's next line. The store lacks the events from
        ``missing_from`` up to ``row`` (the store's finding): their lines are passed over."""
        while True:
            line = _next_line(self.lines, self.settle)
            if line is None:
                why = f"missing: {self.name} ends before this event (truncated)"
                if self.lines.partial:
                    why = f"{self.name} ends in a torn line here (a crash while writing?)"
                return Finding("file", row.sequence, row.event_id, why)
            if line == row.line.encode():
                self.matched = row.sequence
                return None
            try:
                link = open_line(line)
            except BrokenLink as exc:
                return self._finding(row, f"differs from the store's event: {exc}")
            if missing_from <= link.sequence < row.sequence:
                continue
            misplaced = self._misplaced(row, link)
            if misplaced is None:  # the file holds the event the store's row was edited from
                self.matched = row.sequence
                return None
            return self._finding(row, misplaced)

    def _misplaced(self, row: AuditRow, link: Link) -> str | None:
        """Why a sound line that is not ``row``'s stands where ``row`` should."""
        at = f"holds sequence {link.sequence}"
        if link.sequence <= self.matched:
            return f"{at} after sequence {self.matched}: a repeated or added line"
        if link.sequence > row.sequence:
            return f"{at}: this event is missing from {self.name} (removed, or moved)"
        if link.sequence < row.sequence:
            return f"{at}, which the store does not have here (added, or moved)"
        if link.hash == row.hash:  # the row's line no longer hashes to its hash column
            return None
        return "differs from the store's event (replaced, or edited and re-hashed)"

    def _finding(self, row: AuditRow, why: str) -> Finding:
        return Finding("file", row.sequence, row.event_id, f"line {self.lines.number} {why}")


class _Walk:
    """The state of one verification: where the chain is, what was found."""

    def __init__(self, files: _FileCheck | None, file_name: str, usage: KeyUsage) -> None:
        self.report = Report()
        self.previous, self.expected = GENESIS, 1
        self.files = files
        self.file_name = file_name
        self.store_broken = False
        self.file_broken = False
        self.usage = usage
        self.uses: dict[str, int] = {}  # ARN -> its latest use up to usage.through

    def visit(self, row: AuditRow) -> None:
        why = check_row(row, self.expected, self.previous, used_from=self.usage.used_from)
        if why is not None and not self.store_broken:
            self.report.findings.append(Finding("store", row.sequence, row.event_id, why))
            self.store_broken = True
        if why is None and row.used and row.sequence <= self.usage.through:
            for arn in row.used.split():
                self.uses[arn] = row.sequence
        missing_from = self.expected
        # Carry on from what the row claims, so one edit is one finding.
        self.previous, self.expected = row.hash, row.sequence + 1
        self.report.events += 1
        if self.file_broken:
            return
        finding = (
            self.files.check(row, missing_from)
            if self.files is not None
            else Finding("file", row.sequence, row.event_id, f"{self.file_name} is missing")
        )
        if finding is not None:
            self.report.findings.append(finding)
            self.file_broken = True

    def file_has_more(self) -> bool:
        if self.files is None or self.file_broken:
            return False
        return self.files.lines.peek() is not None or bool(self.files.lines.partial)

    def check_last_use(self) -> None:
        """``audit_last_use`` (what GetKeyLastUsage answers) against the uses the walk saw."""
        usage, findings = self.usage, self.report.findings
        for arn, sequence in usage.last_use.items():
            latest = self.uses.get(arn)
            if latest == sequence or (latest is None and sequence < usage.used_from):
                continue  # right, or a use from before the used column (not checkable)
            why = f"audit_last_use says key {arn} was last used by sequence {sequence}"
            why += (
                f", but sequence {latest} used it last (edited)"
                if latest is not None
                else ", but no event up to that table's last flush used it (edited)"
            )
            findings.append(Finding("store", sequence, "", why))
            if len(findings) > MAX_FINDINGS:
                return
        for arn, latest in self.uses.items():
            if arn not in usage.last_use:
                why = f"audit_last_use lacks key {arn}, which sequence {latest} used (removed)"
                findings.append(Finding("store", latest, "", why))
                if len(findings) > MAX_FINDINGS:
                    return


def verify_trail(store: AuditStore, path: Path, *, settle: float = 1.0) -> Report:
    """Check the store's chain and the file against it. A live node syncs the file beside
    the store's commit, so either may be a batch ahead for a moment: ``settle`` is how long
    the other may take to catch up before the difference counts."""
    f: BinaryIO | None = None
    try:
        files = None
        if path.is_file():
            f = path.open("rb")
            files = _FileCheck(_Lines(f), path.name, settle)
        # Read before the walk: the table then covers only events the walk will see.
        walk = _Walk(files, path.name, store.key_usage())
        deadline = None
        while True:
            for row in _rows(store, walk.expected - 1):
                walk.visit(row)
                deadline = None
            if not walk.file_has_more():
                break
            deadline = deadline or time.monotonic() + settle
            if time.monotonic() >= deadline:
                walk.report.findings.append(
                    Finding("file", walk.expected, "", "a line the store does not have (added)")
                )
                break
            time.sleep(0.05)
    finally:
        if f is not None:
            f.close()
    walk.check_last_use()
    report = walk.report
    report.head_sequence, report.head_hash = walk.expected - 1, walk.previous
    state = store.state()
    if state.head_sequence != state.last_sequence or state.head_hash != state.last_hash:
        why = (
            f"the chain head is sequence {state.head_sequence} but the last event is "
            f"{state.last_sequence} (events removed from the end, or the head edited)"
        )
        report.findings.append(Finding("store", state.head_sequence, "", why))
    report.findings.sort(key=lambda x: (x.sequence, x.where != "store"))
    del report.findings[MAX_FINDINGS:]
    return report


def _next_line(lines: _Lines, settle: float) -> bytes | None:
    deadline = time.monotonic() + settle
    while True:
        line = lines.next()
        if line is not None or time.monotonic() >= deadline:
            return line
        time.sleep(0.05)
