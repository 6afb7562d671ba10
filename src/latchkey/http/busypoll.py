"""Busy polling: keep the event loop polling, not sleeping, while an answer is due any moment.

When nothing is ready, the loop sleeps in ``epoll_wait`` and the CPU goes idle; an idle
(virtual) CPU that is woken for the answer costs tens of microseconds of latency, more than a
fast upstream takes to answer. ``kick`` keeps the loop turning (each turn polls with a zero
timeout) for at most ``budget`` seconds, so an answer that arrives within it is read without
that wake-up. Nothing runs but the loop's own turns: callbacks, timers and I/O go on as
usual, and once the budget is spent the loop sleeps again.

Spinning pays only when the loop would otherwise sleep and the answer is near: ``awaiting(peer)``
kicks only when the caller is the only work in progress (``working``, which the caller
counts: with more, the loop has work coming anyway, and polling more often would only cost
it the batching of its ``epoll_wait``) and only for a peer whose last answer (``answered``)
came within the budget, or that has not answered yet (spinning for a slow peer burns CPU for
nothing).
"""

from __future__ import annotations

import asyncio
import time

MAX_PEERS = 1024  # peers whose last answer time is kept


class BusyPoll:
    """One per event loop user; ``budget`` 0 disables it."""

    __slots__ = ("_quick", "_spinning", "_until", "budget", "working")

    def __init__(self, budget: float) -> None:
        if budget < 0:
            raise ValueError("budget must not be negative")
        self.budget = budget
        self._until = 0.0
        self._spinning = False
        self._quick: dict[str, bool] = {}  # peer -> its last answer came within the budget
        self.working = 0  # units of work in progress (requests, say): the caller counts them

    def awaiting(self, peer: str) -> None:
        """An answer from ``peer`` is awaited: kick when at most one unit of work is in
        progress and ``peer`` answered within the budget last time (or never yet)."""
        if self.working <= 1 and self._quick.get(peer, True):
            self.kick()

    def answered(self, peer: str, took: float) -> None:
        """The answer from ``peer`` came (or the exchange failed) after ``took`` seconds."""
        if len(self._quick) >= MAX_PEERS and peer not in self._quick:
            self._quick.clear()
        self._quick[peer] = took < self.budget

    @property
    def spinning(self) -> bool:
        return self._spinning

    def kick(self) -> None:
        """Poll without sleeping for the next ``budget`` seconds (from now)."""
        if not self.budget:
            return
        self._until = time.perf_counter() + self.budget
        if not self._spinning:
            self._spinning = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        if time.perf_counter() < self._until:
            asyncio.get_running_loop().call_soon(self._turn)
        else:
            self._spinning = False
