"""The KMS sweeper: periodic jobs run by one asyncio task of the node.

Every ``interval`` seconds (or at once when poked) it runs each job with the time read from
the node's ``Clock``, so tests move time with a settable clock. Built-in jobs delete keys whose
DeletionDate has passed (their material, aliases, tags and everything else that references the
key go with them), perform automatic rotations that have fallen due and expire imported material
whose ValidTo has passed. More jobs: ``Sweeper(..., jobs=(*KEY_JOBS, another_job))``.

Jobs run on the event loop, between calls, never concurrently with a handler: a job's read and
write of a key cannot interleave with a call's. A failing job is logged and the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from latchkey.clock import Clock
from latchkey.cloud.kms.imports import expire_imported_material
from latchkey.cloud.kms.keys import ENABLED, PENDING_DELETION, KeyRing
from latchkey.cloud.kms.rotation import AUTOMATIC, rotate_key
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import Store

log = logging.getLogger("latchkey.cloud.kms")

DEFAULT_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Sweep:
    """What a job gets: the store, the root key, the clock and the sweep's time (epoch s)."""

    store: Store
    root_key: RootKey
    clock: Clock
    now: float


Job = Callable[[Sweep], object]  # the return value is only logged when truthy


def delete_due_keys(sweep: Sweep) -> list[str]:
    """Delete every key pending deletion whose DeletionDate has passed; their key ids."""
    deleted = []
    for record in sweep.store.list_kms_keys_to_delete(sweep.now):
        current = sweep.store.load_kms_key(record.key_id)
        if current is None or current.state != PENDING_DELETION:
            continue
        if current.deletion_date is None or current.deletion_date > sweep.now:
            continue
        if sweep.store.delete_kms_key(record.key_id):
            log.info("kms: deleted key %s (its deletion date passed)", record.arn)
            deleted.append(record.key_id)
    return deleted


def rotate_due_keys(sweep: Sweep) -> list[str]:
    """Rotate every Enabled key whose automatic rotation is due; their key ids."""
    rotated = []
    for record in sweep.store.list_kms_keys_to_rotate(sweep.now):
        if record.state != ENABLED or record.origin != "AWS_KMS":
            continue
        if record.key_spec != "SYMMETRIC_DEFAULT":
            continue
        keys = KeyRing(sweep.store, sweep.root_key, record.account, record.region, sweep.clock)
        updated = rotate_key(keys, record, AUTOMATIC)
        log.info("kms: rotated key %s to material version %d", record.arn, updated.current_version)
        rotated.append(record.key_id)
    return rotated


def expire_imported_key_material(sweep: Sweep) -> list[str]:
    """Delete imported material whose ValidTo has passed (its key goes to PendingImport)."""
    return expire_imported_material(sweep.store, sweep.now)


KEY_JOBS: tuple[Job, ...] = (delete_due_keys, rotate_due_keys, expire_imported_key_material)


class Sweeper:
    def __init__(
        self,
        store: Store,
        root_key: RootKey,
        clock: Clock,
        *,
        jobs: Sequence[Job] = KEY_JOBS,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.store = store
        self.root_key = root_key
        self.clock = clock
        self.jobs = tuple(jobs)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._poked: asyncio.Event | None = None
        self.sweeps = 0  # completed sweeps (tests wait on it)

    def run_once(self) -> None:
        """Run every job once, now. A job that fails is logged; the rest still run."""
        sweep = Sweep(self.store, self.root_key, self.clock, self.clock.now().timestamp())
        for job in self.jobs:
            try:
                done = job(sweep)
            except Exception:
                log.exception("kms sweeper job %s failed", getattr(job, "__name__", job))
                continue
            if done:
                log.debug("kms sweeper job %s: %s", getattr(job, "__name__", job), done)
        self.sweeps += 1

    def start(self) -> None:
        """Start the periodic task on the running loop."""
        if self._task is None:
            self._poked = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kms-sweeper")

    def poke(self) -> None:
        """Sweep now rather than at the next interval (call on the loop's thread)."""
        if self._poked is not None:
            self._poked.set()

    async def _run(self) -> None:
        assert self._poked is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.interval)
            self._poked.clear()
            self.run_once()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
