"""The audit trail's hash chain. Pure: events in, sealed JSON lines out, findings out.

Each event carries ``chain = {sequence, previousHash, hash}``: ``hash`` is the SHA-256 of the
canonical JSON of the event with ``chain`` holding only ``sequence`` and ``previousHash``, and
``previousHash`` is the hash of the event before it (64 zeros for the first). The canonical
form is also the stored line, so a line is checked by parsing it, taking its hash out and
hashing the rest again. An edited event no longer matches its hash; a removed or reordered one
breaks the next event's ``previousHash`` or the sequence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
CHAIN = "chain"


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only (a lone surrogate cannot break the encoding)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class Sealed:
    sequence: int
    event_id: str
    hash: str
    line: str  # the canonical JSON of the event with its chain, no newline


def prepare(event: dict[str, Any]) -> tuple[str, str]:
    """The canonical JSON of ``event`` (without ``chain``) as the members that sort before
    ``chain`` and those after it, braces left off: a link is then made by joining strings,
    with one JSON encoding per event, not two."""
    before = {k: v for k, v in event.items() if k < CHAIN}
    after = {k: v for k, v in event.items() if k > CHAIN}
    return canonical(before).decode()[1:-1], canonical(after).decode()[1:-1]


def _joined(parts: tuple[str, str], chain: str) -> str:
    before, after = parts
    return "{" + ",".join(p for p in (before, chain, after) if p) + "}"


def seal(event: dict[str, Any], sequence: int, previous: str) -> Sealed:
    """``event`` (CloudTrail-shaped, without ``chain``) as link ``sequence`` after ``previous``."""
    return link(prepare(event), str(event.get("eventID", "")), sequence, previous)


def link(parts: tuple[str, str], event_id: str, sequence: int, previous: str) -> Sealed:
    """The event ``prepare`` made ``parts`` of, as link ``sequence`` after ``previous``.

    The hash covers the event with ``chain = {previousHash, sequence}``; the line is the same
    canonical text with ``chain.hash`` added (keys sorted: ``hash`` comes first)."""
    tail = f'"previousHash":{json.dumps(previous)},"sequence":{int(sequence)}}}'
    digest = hashlib.sha256(_joined(parts, '"chain":{' + tail).encode()).hexdigest()
    line = _joined(parts, f'"chain":{{"hash":"{digest}",' + tail)
    return Sealed(sequence, event_id, digest, line)


@dataclass(frozen=True, slots=True)
class Link:
    """What a line says about itself, once its hash is known to match its contents."""

    sequence: int
    previous: str
    hash: str
    event: dict[str, Any]


class BrokenLink(ValueError):
    """A line that is not a sound link: unreadable, or its hash does not match its contents."""


def open_line(line: str | bytes) -> Link:
    """Parse a sealed line and check its hash against its contents (not its place)."""
    try:
        event = json.loads(line)
    except ValueError:
        raise BrokenLink("not a JSON event (truncated or edited)") from None
    chain = event.get(CHAIN) if isinstance(event, dict) else None
    if not isinstance(chain, dict):
        raise BrokenLink("no chain fields")
    sequence, previous, digest = (chain.get(k) for k in ("sequence", "previousHash", "hash"))
    if (
        not isinstance(sequence, int)
        or not isinstance(previous, str)
        or not isinstance(digest, str)
    ):
        raise BrokenLink("malformed chain fields")
    body = {**event, CHAIN: {"sequence": sequence, "previousHash": previous}}
    if len(chain) != 3 or hashlib.sha256(canonical(body)).hexdigest() != digest:
        raise BrokenLink("its hash does not match its contents (edited)")
    return Link(sequence, previous, digest, event)


def follows(link: Link, sequence: int, previous: str) -> str | None:
    """Why ``link`` cannot be link ``sequence`` after hash ``previous`` (None: it can)."""
    if link.sequence != sequence:
        if link.sequence > sequence:
            return f"sequence {link.sequence} where {sequence} was expected (events removed)"
        return f"sequence {link.sequence} where {sequence} was expected (reordered or repeated)"
    if link.previous != previous:
        return "its previousHash is not the hash of the event before it (removed or reordered)"
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken link: where (``store`` or ``file``), at which sequence and event, and why."""

    where: str
    sequence: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        event = f" (eventID {self.event_id})" if self.event_id else ""
        return f"{self.where}: sequence {self.sequence}{event}: {self.reason}"
