"""CloudTrail-shaped audit events, durable in a hash chain before the answer is sent.

Each call's event is encoded on the caller's event loop (``auditchain.prepare``), and the
events of one loop iteration go to the writer thread as one hand-over, with one timer for the
batch. The writer takes whatever batches are waiting, links each event into the chain (a
hash over the prepared text), appends the lines to ``cloud.jsonl`` (``auditfile``) and commits
the batch to the audit store (``store/audit.py``, authoritative: one transaction,
``synchronous=FULL``), and only then lets the calls answer. The file is synced by a thread of
its own within ``FILE_SYNC_DELAY`` of a write, not on each call's path: a call's line is
written before it is answered but may be synced up to ``FILE_SYNC_DELAY`` later; after a
crash, the next start mends the file from the store. A write (or a file sync) that fails fails
the calls (fail closed), and the trail then refuses every later event until the node restarts,
rather than carry on with a gap; at the start the file is levelled with the store. The store
is always written first, so the file is never ahead of it after a crash: a file that is ahead
means the store lost events (or the file was written to), and the node refuses to start.

Deadlines: a call waits for its batch ``timeout`` seconds. An event the writer has not yet
taken by then is abandoned (under ``_claim_lock``, so the writer can never take it as it
goes): the call fails and the event, when written, records that failure. An event the writer
has taken (claimed, under the same lock, before its commit begins) is not abandoned: its
event is already sealed with the call's outcome, so the call waits for the commit, at most
``timeout`` seconds more. If even that passes, the call fails and the trail refuses every
later event (answer and trail may disagree about that call: the log names its event).

Events never hold plaintext, secrets or tokens; callers pass only request parameters that are
safe to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latchkey.cloud.auditchain import Sealed, prepare
from latchkey.cloud.auditchain import link as chain_link
from latchkey.cloud.auditfile import JsonlFile, TrailMismatch, restore_file
from latchkey.crypto import randombytes
from latchkey.store.audit import AuditStore, NewEvent
from latchkey.store.base import StoreError

log = logging.getLogger("latchkey.audit")

DEFAULT_TIMEOUT = 5.0  # seconds a call waits for its event to be durable
MAX_BATCH = 512
FILE_SYNC_DELAY = 0.05  # seconds a written batch may wait for the file's sync
MAX_PENDING = 10_000  # events handed over and not yet written, before calls are refused
UNAVAILABLE = "The audit trail is unavailable."
# What a call answers when its event could not be written in time, by service.
UNAVAILABLE_CODES = {"kms.amazonaws.com": "KMSInternalException"}


class AuditError(Exception):
    """The audit trail could not record an event; the call must fail."""


@dataclass(slots=True)
class AuditEvent:
    event_source: str  # "kms.amazonaws.com"
    event_name: str  # "Encrypt"
    region: str
    source_ip: str
    user_agent: str
    request_id: str
    event_time: str
    user_identity: dict[str, Any] = field(default_factory=dict)
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    read_only: bool | None = None
    resources: list[dict[str, str]] = field(default_factory=list)
    recipient_account: str | None = None
    additional_data: dict[str, Any] | None = None
    event_id: str = field(default_factory=randombytes.uuid4)
    used_keys: tuple[str, ...] = ()  # ARNs of keys a successful cryptographic operation used
    event_type: str = "AwsApiCall"  # "AwsServiceEvent": the service acted on its own
    service_event_details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": self.user_identity,
            "eventTime": self.event_time,
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "requestParameters": self.request_parameters,
            "responseElements": self.response_elements,
            "eventID": self.event_id,
            "eventType": self.event_type,
            "managementEvent": True,
            "eventCategory": "Management",
        }
        if self.request_id:  # a service's own events have none
            event["requestID"] = self.request_id
        if self.read_only is not None:
            event["readOnly"] = self.read_only
        if self.resources:
            event["resources"] = self.resources
        if self.error_code is not None:
            event["errorCode"] = self.error_code
            event["errorMessage"] = self.error_message or ""
        if self.recipient_account is not None:
            event["recipientAccountId"] = self.recipient_account
        if self.additional_data:
            event["additionalEventData"] = self.additional_data
        if self.service_event_details is not None:
            event["serviceEventDetails"] = self.service_event_details
        return event


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def trail_time(when: dt.datetime) -> str:
    """A time as CloudTrail writes one in responseElements, ``Mar 23, 2016, 2:39:51 AM`` (UTC;
    English whatever the locale, hence no ``%b``/``%p``)."""
    when = when.astimezone(dt.UTC)
    hour, half = when.hour % 12 or 12, "AM" if when.hour < 12 else "PM"
    return f"{_MONTHS[when.month - 1]} {when.day}, {when.year}, {hour}:{when:%M:%S} {half}"


def trail_members(value: Any, dates: frozenset[str] = frozenset()) -> Any:
    """An answer's members named as CloudTrail's responseElements name them (``KeyMetadata.
    KeyId`` -> ``keyMetadata.keyId``; ``AWSAccountId`` stays, as CloudTrail writes it), the
    members named in ``dates`` (epoch seconds) as ``trail_time`` writes them."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = key if key.startswith("AWS") else key[:1].lower() + key[1:]
            if key in dates and isinstance(item, int | float) and not isinstance(item, bool):
                out[name] = trail_time(dt.datetime.fromtimestamp(item, dt.UTC))
            else:
                out[name] = trail_members(item, dates)
        return out
    if isinstance(value, list):
        return [trail_members(item, dates) for item in value]
    return value


INTERNAL = "AWS Internal"  # CloudTrail's caller, address and agent for a service's own acts


def service_event(
    source: str,
    name: str,
    *,
    account: str,
    region: str,
    event_time: str,
    resources: list[dict[str, str]],
    details: dict[str, Any],
) -> AuditEvent:
    """An event the service made on its own (CloudTrail's ``AwsServiceEvent``): a scheduled key
    deletion, an automatic rotation, expired imported material."""
    return AuditEvent(
        event_source=source,
        event_name=name,
        region=region,
        source_ip=INTERNAL,
        user_agent=INTERNAL,
        request_id="",
        event_time=event_time,
        user_identity={"accountId": account, "invokedBy": INTERNAL},
        read_only=False,
        resources=resources,
        recipient_account=account,
        event_type="AwsServiceEvent",
        service_event_details=details,
    )


# -- the writer ----------------------------------------------------------------------------------


# What became of a handed-over event (``_Pending.state``); every change away from WAITING is
# made under ``AuditLog._claim_lock``, so the writer and a deadline never both act on one.
WAITING = 0  # handed over, not yet taken by the writer
CLAIMED = 1  # taken by the writer for a commit: sealed as it stands; the call awaits the commit
ABANDONED = 2  # its deadline passed first: the call answered an error, so will the event
GIVEN_UP = 3  # claimed, but the commit outlived the hard cap: the call answered an error


@dataclass(slots=True)
class _Pending:
    event: AuditEvent
    parts: tuple[str, str]  # auditchain.prepare(event.to_json())
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Sealed]
    state: int = WAITING


@dataclass(slots=True)
class _Batch:
    """The events one event-loop iteration handed over, and their shared deadline."""

    items: list[_Pending]
    timer: asyncio.TimerHandle | None = None


def _settle(batch: _Batch, items: list[_Pending], sealed: list[Sealed | None]) -> None:
    if batch.timer is not None:
        batch.timer.cancel()
    for item, link in zip(items, sealed, strict=True):
        if item.future.done():
            if item.state == GIVEN_UP and link is not None:
                log.error(
                    "audit: event %s (%s %s, request %s) was written after its call had been "
                    "answered an error (the commit outlived the hard cap): the trail records "
                    "the call's own outcome, the caller was told it failed",
                    link.event_id, item.event.event_source.split(".")[0],
                    item.event.event_name, item.event.request_id or "-",
                )  # fmt: skip
            continue
        if link is not None:
            item.future.set_result(link)
        else:
            item.future.set_exception(AuditError(UNAVAILABLE))


def _row(event: AuditEvent, link: Sealed) -> NewEvent:
    return NewEvent(
        sequence=link.sequence,
        event_id=link.event_id,
        event_time=event.event_time,
        event_source=event.event_source,
        event_name=event.event_name,
        error_code=event.error_code,
        hash=link.hash,
        line=link.line,
        used=event.used_keys if event.error_code is None else (),
    )


class AuditLog:
    """The node's audit trail: ``<dir>/cloud.db`` (authoritative) and ``<dir>/cloud.jsonl``."""

    def __init__(
        self,
        path: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: float | None = None,
        open_file: Callable[[Path], JsonlFile] = JsonlFile,
    ) -> None:
        """``path`` is the JSON-lines file; the store sits next to it (``.db``)."""
        self.path = path
        self.timeout = timeout
        try:
            self.store = AuditStore(path.with_suffix(".db"), now=now)
        except StoreError as exc:
            raise AuditError(str(exc)) from None
        try:
            restore_file(self.store, path)
            self._file = open_file(path)
        except (OSError, StoreError, TrailMismatch) as exc:
            self.store.close()
            raise AuditError(f"cannot open the audit trail: {exc}") from None
        self._sequence, self._hash = self.store.head()
        self._failed: str | None = None
        self._dirty = threading.Event()  # the file has writes not yet synced
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_file, name="audit-file", daemon=True)
        self._syncer.start()
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._open: dict[asyncio.AbstractEventLoop, _Batch] = {}  # filling, per loop
        # Events handed over (written under the lock by any loop) and taken (by the writer only):
        # their difference is the backlog.
        self._handed = 0
        self._taken = 0
        self._handed_lock = threading.Lock()
        # Taken by the writer to claim a batch's events and by a deadline to abandon them.
        self._claim_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def head(self) -> tuple[int, str]:
        return self._sequence, self._hash

    @property
    def refusing(self) -> str | None:
        """Why the trail refuses every event (after a failed write), or None."""
        return self._failed

    async def record(self, event: AuditEvent) -> Sealed:
        """Return once ``event`` is committed and synced in the store (``synchronous=FULL``) and
        its line written to the file (synced by ``_sync_file`` within ``FILE_SYNC_DELAY``, not
        yet); AuditError if it cannot be, or not in time: within ``timeout`` seconds, or, if the
        writer had begun committing it by then, within ``timeout`` more (after which the trail
        refuses every event). A failed sync of the file fails the calls that follow it, and the
        next start levels the file with the store (``restore_file``)."""
        if self._failed is not None:
            raise AuditError(f"the audit trail refuses writes after a failure: {self._failed}")
        if self._handed - self._taken >= MAX_PENDING:
            raise AuditError("too many audit events waiting")
        try:  # encoded here, on the loop: the writer thread only links and writes
            parts = prepare(event.to_json())
        except (TypeError, ValueError):
            log.exception("audit: an event could not be serialised")
            raise AuditError("the event could not be recorded") from None
        loop = asyncio.get_running_loop()
        item = _Pending(event, parts, loop, loop.create_future())
        batch = self._open.get(loop)
        if batch is None:
            batch = self._open[loop] = _Batch([])
            loop.call_soon(self._hand_over, loop)
        batch.items.append(item)
        return await item.future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._open.pop(loop, None)
        if batch is None or not batch.items:
            return
        batch.timer = loop.call_later(self.timeout, self._expire, batch)
        with self._handed_lock:
            self._handed += len(batch.items)
        self._queue.put(batch)

    def _expire(self, batch: _Batch) -> None:
        """The batch's deadline passed. Its events the writer has not taken are abandoned: their
        calls answer an error, and their events, when written, say so. Those it has taken are
        being committed as they are: their calls wait for the commit, until ``_give_up``."""
        abandoned: list[_Pending] = []
        claimed = 0
        with self._claim_lock:
            for item in batch.items:
                if item.future.done():
                    continue
                if item.state == CLAIMED:
                    claimed += 1
                else:
                    item.state = ABANDONED
                    abandoned.append(item)
        for item in abandoned:
            item.future.set_exception(AuditError("the audit write timed out"))
        if abandoned:
            log.error("audit: %d event(s) not durable within %.1f s", len(abandoned), self.timeout)
        if claimed:
            log.warning("audit: %d event(s) still being committed after %.1f s; their calls wait "
                        "%.1f s more", claimed, self.timeout, self.timeout)  # fmt: skip
            loop = batch.items[0].loop
            batch.timer = loop.call_later(self.timeout, self._give_up, batch)

    def _give_up(self, batch: _Batch) -> None:
        """The hard cap passed with the batch's commit still under way: its calls fail, and the
        trail refuses every later event (those events may yet be written, as the calls were
        before they failed: ``_settle`` names each one that is)."""
        late = [item for item in batch.items if not item.future.done()]
        if not late:
            return
        for item in late:
            item.state = GIVEN_UP
            item.future.set_exception(AuditError("the audit write timed out"))
        if self._failed is None:
            self._failed = f"an audit commit took longer than {2 * self.timeout:.1f} s"
        log.error(
            "audit: %d event(s) still not durable after %.1f s; refusing calls until restart "
            "(events %s may yet be written, each recording its call as it was before it failed)",
            len(late), 2 * self.timeout, ", ".join(item.event.event_id for item in late),
        )  # fmt: skip

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batches = [first]
            count = len(first.items)
            stop = False
            while count < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
                count += len(more.items)
            self._taken += count
            self._write(batches)
            if stop:
                return

    def _write(self, batches: list[_Batch]) -> None:
        items = [item for batch in batches for item in batch.items]
        sealed: list[Sealed | None] = [None] * len(items)
        if self._failed is None:
            try:
                sealed = self._commit(items)
            except Exception as exc:  # every failure fails the calls: closed
                self._failed = f"{type(exc).__name__}: {exc}"
                log.error("audit: write failed, refusing calls until restart: %s", self._failed)
                sealed = [None] * len(items)
        start = 0
        for batch in batches:
            end = start + len(batch.items)
            loop = batch.items[0].loop
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_settle, batch, batch.items, sealed[start:end])
            start = end

    def _commit(self, batch: list[_Pending]) -> list[Sealed | None]:
        """Seal, then commit and sync the batch; an event that cannot be serialised fails
        alone (None), any failure to write fails them all (raises)."""
        sequence, previous = self._sequence, self._hash
        rows: list[NewEvent] = []
        sealed: list[Sealed | None] = []
        with self._claim_lock:  # from here on a deadline leaves these events be (ABANDONED
            for item in batch:  # ones stay so: the writer seals them as failures)
                if item.state == WAITING:
                    item.state = CLAIMED
        for item in batch:
            event = item.event
            gone = item.state == ABANDONED
            if gone:  # the caller was told the call failed: so says the event
                code = UNAVAILABLE_CODES.get(event.event_source, "ServiceFailure")
                event.error_code, event.error_message = code, UNAVAILABLE
                event.response_elements, event.used_keys = None, ()
            try:
                if gone:
                    item.parts = prepare(event.to_json())
                made = chain_link(item.parts, event.event_id, sequence + 1, previous)
            except (TypeError, ValueError):
                log.exception("audit: an event could not be serialised")
                sealed.append(None)
                continue
            sequence, previous = sequence + 1, made.hash
            sealed.append(made)
            rows.append(_row(event, made))
        if not rows:
            return sealed
        data = b"".join(link.line.encode() + b"\n" for link in sealed if link is not None)
        # The store's commit makes the batch durable; then the file is written, and synced
        # soon (``_sync_file``). A crash leaves the file behind, never ahead: restore_file
        # mends the one and refuses the other (it can only be tampering or a lost store).
        self.store.append(rows)
        self._file.append(data)
        self._dirty.set()
        self._sequence, self._hash = sequence, previous
        return sealed

    def _sync_file(self) -> None:
        """Sync ``cloud.jsonl`` at most every ``FILE_SYNC_DELAY`` while there are writes."""
        while True:
            self._dirty.wait()
            if not self._closing:
                time.sleep(FILE_SYNC_DELAY)  # let more batches join this sync
            self._dirty.clear()
            try:
                self._file.sync()
            except OSError as exc:
                if self._failed is None:
                    self._failed = f"{type(exc).__name__}: {exc}"
                    log.error("audit: file sync failed, refusing calls until restart: %s", exc)
                return
            if self._closing:  # close() makes the last sync itself
                return

    def close(self, grace: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(grace)
        if self._thread.is_alive():
            log.error("audit: the writer did not finish within %.0f s", grace)
            return
        self._closing = True
        self._dirty.set()
        self._syncer.join(grace)
        with contextlib.suppress(OSError):
            self._file.sync()  # whatever the last writes left
            self._file.close()
        self.store.close()


__all__ = [
    "AuditError", "AuditEvent", "AuditLog", "JsonlFile", "service_event", "trail_members",
    "trail_time",
]  # fmt: skip
