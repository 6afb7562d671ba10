"""The KMS sweeper: periodic jobs run by one asyncio task of the node.

Every ``interval`` seconds (or at once when poked) it runs each job with the time read from
the node's ``Clock``, so tests move time with a settable clock. Built-in jobs delete keys whose
DeletionDate has passed (their material, aliases, tags and everything else that references the
key go with them), perform automatic rotations that have fallen due and expire imported material
whose ValidTo has passed. More jobs: ``Sweeper(..., jobs=(*KEY_JOBS, another_job))``.

Jobs run on the event loop, between calls, never concurrently with a handler: a job's read and
write of a key cannot interleave with a call's. A failing job is logged and the others still run.

What the jobs do is audited as CloudTrail records it: one ``AwsServiceEvent`` per key
(``DeleteKey``, ``RotateKey``, ``DeleteExpiredKeyMaterial``). While the audit trail refuses
events (after a failed write) the sweeper does nothing, so no key changes unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from latchkey.clock import Clock
from latchkey.cloud.audit import AuditEvent, AuditLog, service_event
from latchkey.cloud.kms.imports import expire_imported_material
from latchkey.cloud.kms.keys import ENABLED, PENDING_DELETION, KeyRing
from latchkey.cloud.kms.rotation import AUTOMATIC, rotate_key
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import KmsKeyRecord, Store

log = logging.getLogger("latchkey.cloud.kms")

DEFAULT_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Sweep:
    """What a job gets: the store, the root key, the clock and the sweep's time (epoch s)."""

    store: Store
    root_key: RootKey
    clock: Clock
    now: float
    happened: list[tuple[str, KmsKeyRecord, dict[str, Any]]] = field(default_factory=list)

    def done(self, event_name: str, record: KmsKeyRecord, **details: Any) -> None:
        """Note what a job did to a key, for the audit trail."""
        self.happened.append((event_name, record, {**details, "keyId": record.key_id}))


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
            sweep.done("DeleteKey", current)
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
        sweep.done("RotateKey", updated, rotationType=AUTOMATIC)
        rotated.append(record.key_id)
    return rotated


def expire_imported_key_material(sweep: Sweep) -> list[str]:
    """Delete imported material whose ValidTo has passed (its key goes to PendingImport)."""
    expired = expire_imported_material(sweep.store, sweep.now)
    for key_id in expired:
        record = sweep.store.load_kms_key(key_id)
        if record is not None:
            sweep.done("DeleteExpiredKeyMaterial", record)
    return expired


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
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.root_key = root_key
        self.clock = clock
        self.jobs = tuple(jobs)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._poked: asyncio.Event | None = None
        self.sweeps = 0  # completed sweeps, events recorded (tests wait on it)

    def run_once(self) -> list[AuditEvent]:
        """Run every job once, now; the audit events of what they did (recorded by the
        periodic task). A job that fails is logged; the rest still run."""
        if self.audit is not None and self.audit.refusing is not None:
            log.warning("kms sweeper: paused while the audit trail refuses events")
            return []
        now = self.clock.now()
        sweep = Sweep(self.store, self.root_key, self.clock, now.timestamp())
        for job in self.jobs:
            try:
                done = job(sweep)
            except Exception:
                log.exception("kms sweeper job %s failed", getattr(job, "__name__", job))
                continue
            if done:
                log.debug("kms sweeper job %s: %s", getattr(job, "__name__", job), done)
        when = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            service_event(
                "kms.amazonaws.com",
                name,
                account=record.account,
                region=record.region,
                event_time=when,
                resources=[
                    {"accountId": record.account, "type": "AWS::KMS::Key", "ARN": record.arn}
                ],
                details=details,
            )
            for name, record, details in sweep.happened
        ]

    async def sweep(self) -> None:
        """One sweep, its events recorded (what the periodic task does)."""
        await self._record(self.run_once())
        self.sweeps += 1

    async def _record(self, events: list[AuditEvent]) -> None:
        if self.audit is None or not events:
            return
        results = await asyncio.gather(
            *(self.audit.record(event) for event in events), return_exceptions=True
        )
        failed = sum(1 for result in results if isinstance(result, BaseException))
        if failed:
            log.error("kms sweeper: %d audit event(s) could not be recorded", failed)

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
            await self.sweep()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
