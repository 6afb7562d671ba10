"""The hash chain as pure functions: sealing, reading a line back, following a link."""

from __future__ import annotations

import hashlib
import json

import pytest

from latchkey.cloud.auditchain import GENESIS, BrokenLink, canonical, follows, open_line, seal


def event(n: int) -> dict[str, object]:
    return {"eventID": f"id-{n}", "eventName": "Encrypt", "requestParameters": {"KeyId": "k"}}


def chain(count: int) -> list[str]:
    lines, previous = [], GENESIS
    for n in range(1, count + 1):
        link = seal(event(n), n, previous)
        lines.append(link.line)
        previous = link.hash
    return lines


def test_the_hash_covers_the_event_and_its_place_but_not_itself() -> None:
    link = seal(event(1), 1, GENESIS)
    doc = json.loads(link.line)
    assert doc["chain"] == {"sequence": 1, "previousHash": GENESIS, "hash": link.hash}
    del doc["chain"]["hash"]
    assert hashlib.sha256(canonical(doc)).hexdigest() == link.hash
    assert link.line == canonical(json.loads(link.line)).decode()  # the line is canonical
    assert (link.sequence, link.event_id) == (1, "id-1")


def test_canonical_json_is_order_free_and_ascii() -> None:
    assert canonical({"b": 1, "a": "\udc80é"}) == b'{"a":"\\udc80\\u00e9","b":1}'
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})


def test_a_sound_chain_follows_link_by_link() -> None:
    previous = GENESIS
    for n, line in enumerate(chain(5), start=1):
        link = open_line(line)
        assert follows(link, n, previous) is None
        previous = link.hash


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(eventName="Decrypt"), "hash does not match"),
        (lambda d: d["requestParameters"].update(KeyId="other"), "hash does not match"),
        (lambda d: d["chain"].update(sequence=9), "hash does not match"),
        (lambda d: d["chain"].update(previousHash="1" * 64), "hash does not match"),
        (lambda d: d["chain"].update(hash="2" * 64), "hash does not match"),
        (lambda d: d["chain"].update(extra=1), "hash does not match"),
        (lambda d: d.pop("chain"), "no chain fields"),
        (lambda d: d["chain"].update(sequence="1"), "malformed chain fields"),
    ],
)
def test_an_edited_line_is_refused(edit: object, why: str) -> None:
    doc = json.loads(chain(1)[0])
    edit(doc)  # type: ignore[operator]
    with pytest.raises(BrokenLink, match=why):
        open_line(json.dumps(doc))


@pytest.mark.parametrize("line", ["", "{", "[1]", '{"chain": 1}', "null"])
def test_unreadable_lines_are_refused(line: str) -> None:
    with pytest.raises(BrokenLink):
        open_line(line)


def test_removed_reordered_and_repeated_links_do_not_follow() -> None:
    a, b, c = (open_line(line) for line in chain(3))
    assert "removed" in str(follows(c, 2, a.hash))  # b removed
    assert "reordered or repeated" in str(follows(b, 3, c.hash))  # b after c
    assert "reordered or repeated" in str(follows(b, 3, b.hash))  # b twice
    assert follows(b, 2, GENESIS) == (
        "its previousHash is not the hash of the event before it (removed or reordered)"
    )


def test_a_rehashed_edit_still_breaks_the_next_link() -> None:
    lines = chain(3)
    doc = json.loads(lines[1])
    doc["eventName"] = "Decrypt"
    forged = seal({k: v for k, v in doc.items() if k != "chain"}, 2, doc["chain"]["previousHash"])
    assert open_line(forged.line).sequence == 2  # sound on its own
    third = open_line(lines[2])
    assert follows(third, 3, forged.hash) is not None


def test_a_sealed_line_is_the_canonical_json_of_the_event_with_its_chain() -> None:
    # Members sorting before and after "chain", nesting, and text that must be escaped.
    event = {
        "additionalEventData": {"z": 1, "a": [True, None]},
        "awsRegion": "us-east-1",
        "eventID": "e-1",
        "requestParameters": {"keyId": 'quote " and \\ and \u00e9 and \ud800'},
        "userAgent": "agent",
    }
    link = seal(event, 7, GENESIS)
    chain = {"sequence": 7, "previousHash": GENESIS, "hash": link.hash}
    assert link.line == canonical({**event, "chain": chain}).decode()
    assert open_line(link.line).hash == link.hash
