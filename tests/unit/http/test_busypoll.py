"""latchkey.http.busypoll.BusyPoll: the loop polls for the budget after a kick, then sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest

from latchkey.http import busypoll
from latchkey.http.busypoll import BusyPoll


class FakeClock:
    now = 0.0

    def perf_counter(self) -> float:
        return self.now


async def turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def lifecycle(clock: FakeClock) -> list[object]:
    busy = BusyPoll(0.05)
    seen: list[object] = [busy.spinning]
    busy.kick()
    await turns()
    seen.append(busy.spinning)
    clock.now = 0.02
    busy.kick()  # extends the budget from now: to 0.07
    clock.now = 0.06  # past the first kick's budget, within the second's
    await turns()
    seen.append(busy.spinning)
    fired = time.monotonic()
    await asyncio.sleep(0.01)  # timers still fire while the loop polls
    seen.append(time.monotonic() - fired < 5)
    clock.now = 0.08
    await turns()
    seen.append(busy.spinning)
    return seen


def test_kick_spins_for_the_budget_then_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(busypoll.time, "perf_counter", clock.perf_counter)
    assert asyncio.run(lifecycle(clock)) == [False, True, True, True, False]


async def disabled() -> bool:
    busy = BusyPoll(0)
    busy.kick()
    return busy.spinning


def test_a_zero_budget_never_spins() -> None:
    assert asyncio.run(disabled()) is False


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        BusyPoll(-0.001)


async def adaptive() -> list[bool]:
    busy = BusyPoll(0.05)
    seen = []
    busy.awaiting("slow")  # no answer yet: spin
    seen.append(busy.spinning)
    busy.answered("slow", 0.2)  # slower than the budget: no spinning for it from now on
    busy.awaiting("fast")
    busy.answered("fast", 0.001)
    await asyncio.sleep(0.1)
    busy.awaiting("slow")
    seen.append(busy.spinning)
    busy.answered("slow", 0.01)  # fast again: spinning again
    busy.awaiting("fast")
    seen.append(busy.spinning)
    busy.answered("fast", 0.001)
    await asyncio.sleep(0.1)
    busy.awaiting("slow")
    seen.append(busy.spinning)
    busy.answered("slow", 0.001)
    return seen


def test_spins_only_for_peers_that_answer_within_the_budget() -> None:
    assert asyncio.run(adaptive()) == [True, False, True, True]


async def concurrent() -> list[bool]:
    busy = BusyPoll(0.05)
    busy.working = 2  # two requests in progress: the loop has work coming, no kick
    busy.awaiting("a")
    seen = [busy.spinning]
    busy.working = 1
    busy.awaiting("a")
    seen.append(busy.spinning)
    return seen


def test_spins_only_when_alone() -> None:
    assert asyncio.run(concurrent()) == [False, True]
