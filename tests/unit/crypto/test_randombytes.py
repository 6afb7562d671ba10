"""Random bytes drawn in blocks: each byte handed out once, also across a fork."""

from __future__ import annotations

import os
import uuid

from latchkey.crypto import randombytes


def test_uuids_are_version_4_in_canonical_form_and_distinct() -> None:
    seen = {randombytes.uuid4() for _ in range(5000)}
    assert len(seen) == 5000
    for text in list(seen)[:200]:
        value = uuid.UUID(text)
        assert str(value) == text
        assert value.version == 4
        assert value.variant == uuid.RFC_4122


def test_sizes_and_no_value_handed_out_twice() -> None:
    assert [len(randombytes.token_bytes(n)) for n in (1, 12, 32, 1024, 1025, 5000)] == [
        1, 12, 32, 1024, 1025, 5000,
    ]  # fmt: skip
    values = [randombytes.token_bytes(12) for _ in range(3000)]  # spans several blocks
    assert len(set(values)) == len(values)


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    randombytes.token_bytes(12)  # a block is open in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draws, then leave at once
        os.close(read)
        os.write(write, b"".join(randombytes.token_bytes(12) for _ in range(8)))
        os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(randombytes.token_bytes(12) for _ in range(8))
    assert len(child) == 96
    assert child != parent
    child_values = {child[i : i + 12] for i in range(0, 96, 12)}
    parent_values = {parent[i : i + 12] for i in range(0, 96, 12)}
    assert not child_values & parent_values
