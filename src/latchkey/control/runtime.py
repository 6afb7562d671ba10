"""The control plane inside a running node: admin token, API routing, explain, access events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latchkey.clock import Clock
from latchkey.control.api import ControlApi, facts_from
from latchkey.control.loader import StoredObject
from latchkey.control.model import Config, Evidence, ProcessFacts, TokenCheck
from latchkey.edge.explain import explain
from latchkey.edge.peer import describe_process
from latchkey.edge.trust import TrustVerifier
from latchkey.http.h1 import Request, Response
from latchkey.http.server import App, Peer
from latchkey.secretfile import private_dir, read_secret_file, write_secret_file
from latchkey.store.control import ControlStore, EventRow, event_json_line

log = logging.getLogger("latchkey.control")

TOKEN_FILE = "control-token"  # noqa: S105 (a file name)
MAX_PENDING_EVENTS = 10_000
JSON_SLICE = 32  # events per write to the JSON-lines file (see EventRecorder._write)


def ensure_admin_token(data_dir: Path) -> str:
    """The control API's bearer token: made once, kept 0600 in the data directory."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        return read_secret_file(path).decode().strip()
    token = "lk_" + secrets.token_urlsafe(32)
    write_secret_file(path, token.encode())
    return token


class RoutedApp:
    """``/api/`` goes to the control API; everything else to the idp."""

    def __init__(self, api: ControlApi, other: App) -> None:
        self.api = api
        self.other = other

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if request.path == "/api" or request.path.startswith("/api/"):
            return await self.api(request, peer)
        return await self.other(request, peer)


def make_explainer(
    config: Callable[[], Config], trust: TrustVerifier, clock: Clock
) -> Callable[[dict[str, Any]], Any]:
    """``POST /api/v1/explain``: the edge's decision for a described caller."""

    async def explainer(doc: dict[str, Any]) -> dict[str, Any]:
        current = config()
        host, port, evidence, facts = facts_from(doc, clock.now())
        process: ProcessFacts | None = None
        if doc.get("pid") is not None:
            info = describe_process(int(doc["pid"]), uid=-1)
            if info.exe:
                uid = _uid_of(int(doc["pid"]))
                process = ProcessFacts(info.pid, uid, _user(uid), info.exe, info.cmdline)
        token = doc.get("token")
        tokens: dict[str, TokenCheck] = {}
        if isinstance(token, str) and token:
            for name in sorted(current.token_trust_providers):
                tokens[name] = await trust.check(current.trust_provider(name), token)
        evidence = Evidence(
            evidence.source_address, process, token_presented=bool(token), tokens=tokens
        )
        result = explain(current, host=host, port=port, evidence=evidence, facts=facts)
        return {
            "outcome": result.outcome,
            "reason": result.reason,
            "steps": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in result.steps],
            "text": result.render(),
        }

    return explainer


def _uid_of(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return -1


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class EventRecorder:
    """Access events, written off the request path, in batches, to the control store and (when
    given) a JSON-lines file (0600, one event per line, flushed per batch). The edge hands them
    over as rows (``EventRow``), a batch at a time."""

    def __init__(self, store: ControlStore, jsonl: Path | None = None) -> None:
        self._store = store
        self._jsonl = jsonl
        self._pending: deque[EventRow] = deque(maxlen=MAX_PENDING_EVENTS)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fd: int | None = None  # the JSON-lines file, once written to
        self._closing = False
        self.dropped = 0

    def __call__(self, rows: Sequence[EventRow]) -> None:
        pending = self._pending
        self.dropped += max(0, len(pending) + len(rows) - MAX_PENDING_EVENTS)  # the oldest go
        pending.extend(rows)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        batch = list(self._pending)
        self._pending.clear()
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            log.exception("could not record %d access events", len(batch))

    def _write(self, batch: list[EventRow]) -> None:
        self._store.add_event_rows(batch)
        if self._jsonl is None:
            return
        if self._fd is None:  # opened once, kept for the next batches
            private_dir(self._jsonl.parent)
            self._fd = os.open(self._jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        for start in range(0, len(batch), JSON_SLICE):
            # This thread and the event loop share the GIL, and often one CPU: a thread that
            # only lets go of the GIL for a moment (a system call) keeps the CPU, and with it
            # the GIL, while a request waits. Yielding the CPU between slices lets the loop in.
            os.sched_yield()
            lines = "".join([event_json_line(row) for row in batch[start : start + JSON_SLICE]])
            data = memoryview(lines.encode("utf-8"))
            while data:
                data = data[os.write(self._fd, data) :]

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:  # it ends after the batch it is writing, if any
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def provider_status(obj: StoredObject, issuer_url: str) -> dict[str, object] | None:
    """What an AWS-STS-federation credential provider needs copied into AWS IAM."""
    if obj.kind != "CredentialProvider" or obj.spec.get("type") != "aws-sts-federation":
        return None
    return {
        "oidcIssuerUrl": issuer_url,
        "audience": obj.spec.get("audience"),
        "subjects": f"latchkey:{obj.name}:<client workload>",
        "trustPolicyConditions": {
            "StringEquals": {
                f"{issuer_url.removeprefix('https://')}:aud": obj.spec.get("audience")
            },
            "StringLike": {f"{issuer_url.removeprefix('https://')}:sub": f"latchkey:{obj.name}:*"},
        },
    }
