"""Shared fixtures: a latchkey node in-process (on a clock the test can move) or as a real
`latchkey up` process. Helpers live in ``latchkey_testing``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey_testing import (
    NodeHandle,
    SettableClock,
    UpProcess,
    start_node_thread,
    start_up_process,
    stop_node_thread,
)


@pytest.fixture
def settable_clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def node(tmp_path: Path, settable_clock: SettableClock) -> Iterator[NodeHandle]:
    """A whole node in this process, on a clock the test can move forward."""
    handle, thread = start_node_thread(tmp_path / "data", clock=settable_clock)
    try:
        yield handle
    finally:
        stop_node_thread(handle, thread)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    """`latchkey up` with the default configuration, shared by a module's tests."""
    proc = start_up_process(tmp_path_factory.mktemp("up") / "data")
    try:
        yield proc
    finally:
        proc.stop()
