"""The KMS bench's load generator: SigV4-signed requests (botocore's ``SigV4Auth``, signed
ahead of time), raw keep-alive HTTP/1.1 connections and closed-loop timed windows. Used by
``kms.py``; every loop is bounded by its window and by a request cap."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
OUTPUT_MEMBER = {
    "Encrypt": b'"CiphertextBlob"',
    "Decrypt": b'"Plaintext"',
    "GenerateDataKey": b'"Plaintext"',
    "CreateKey": b'"KeyMetadata"',
}
RESPONSE_TIMEOUT = 30.0  # one answer slower than this ends the window as failed
MAX_REQUESTS_PER_WINDOW = 5_000_000  # a hard bound besides the clock


# -- signing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    port: int
    access_key: str
    secret_key: str
    tls: ssl.SSLContext | None = None
    store: str = ""  # targets that share a store (latchkey's two listeners) share keys

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}/"


def sign(target: Target, operation: str, params: dict[str, Any]) -> bytes:
    """One complete HTTP/1.1 request, SigV4-signed by botocore, ready for the socket."""
    body = json.dumps(params).encode()
    request = AWSRequest(
        method="POST",
        url=target.url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"TrentService.{operation}",
        },
    )
    creds = Credentials(target.access_key, target.secret_key)
    SigV4Auth(creds, "kms", REGION).add_auth(request)
    head = [f"POST / HTTP/1.1\r\nHost: {LOOPBACK}:{target.port}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in request.headers.items()]
    head.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + body


def op_params(operation: str, subject: str, plaintext: str) -> dict[str, Any]:
    """The request body of ``operation``; ``subject`` is a key id, or a ciphertext (Decrypt)."""
    if operation == "Encrypt":
        return {"KeyId": subject, "Plaintext": plaintext}
    if operation == "Decrypt":
        return {"CiphertextBlob": subject}
    if operation == "GenerateDataKey":
        return {"KeyId": subject, "KeySpec": "AES_256"}
    raise ValueError(f"unknown operation {operation}")


# -- the wire: a keep-alive HTTP/1.1 client connection ------------------------------------------


class ConnectionLost(Exception):
    pass


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` sends bytes and returns (status, body)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head_end = -1
        self._need = -1
        self._status = 0
        self._close_after = False
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionLost(str(exc or "closed by the server")))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if self._need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self._status = int(head[9:12])
            length = head.find(b"\r\ncontent-length:")
            if length < 0:
                self._fail("an answer without Content-Length")
                return
            stop = head.find(b"\r\n", length + 2)
            self._head_end = end + 4
            self._need = self._head_end + int(head[length + 17 : stop if stop > 0 else len(head)])
            self._close_after = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
        if len(buf) >= self._need:
            body = bytes(buf[self._head_end : self._need])
            del buf[: self._need]
            self._need = -1
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self._status, body))
            if self._close_after and self.transport is not None:
                self.closed = True
                self.transport.close()

    def _fail(self, why: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionLost(why))
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(raw)
        return waiter


async def connect(target: Target) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        Connection, LOOPBACK, target.port, ssl=target.tls, server_hostname=None
    )
    sock = conn.transport.get_extra_info("socket") if conn.transport else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


async def _close_all(conns: Sequence[Connection]) -> None:
    """Close gracefully (TLS sends close_notify), abort what has not closed within a second."""
    for conn in conns:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()
    pending = [conn.lost for conn in conns if not conn.lost.done()]
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for conn in conns:
        if not conn.lost.done() and conn.transport is not None:
            conn.transport.abort()
    await asyncio.sleep(0)


# -- measurement ------------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    """One timed window: completed requests, their latencies (seconds), errors."""

    seconds: float = 0.0
    cpu: float = 0.0  # the generator's CPU seconds per wall second (1.0 = one core saturated)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    reconnects: int = 0  # connections the server closed (moto's werkzeug closes every one)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    target: Target,
    requests: Sequence[bytes],
    marker: bytes,
    *,
    concurrency: int,
    duration: float,
    max_requests: int = MAX_REQUESTS_PER_WINDOW,
) -> Window:
    """Closed-loop load for ``duration`` seconds over ``concurrency`` keep-alive connections,
    cycling through ``requests`` (a different start per connection)."""
    window = Window()
    conns = [await connect(target) for _ in range(concurrency)]
    budget = [max_requests]
    perf = time.perf_counter
    cpu_start = time.process_time()
    start = perf()
    deadline = start + duration

    async def worker(index: int) -> None:
        conn = conns[index]
        n = len(requests)
        i = (index * n) // concurrency
        lat = window.latencies
        while perf() < deadline and budget[0] > 0:
            budget[0] -= 1
            raw = requests[i % n]
            i += 1
            t0 = perf()
            try:
                status, body = await conn.request(raw)
            except ConnectionLost as exc:
                window.errors += 1
                window.first_error = window.first_error or f"connection: {exc}"
                conn = conns[index] = await connect(target)
                continue
            if status == 200 and marker in body:
                lat.append(perf() - t0)
            else:
                window.errors += 1
                window.first_error = window.first_error or f"{status}: {body[:200]!r}"
            if conn.closed:
                window.reconnects += 1
                conn = conns[index] = await connect(target)

    try:
        await asyncio.wait_for(
            asyncio.gather(*(worker(i) for i in range(concurrency))),
            duration + RESPONSE_TIMEOUT,
        )
    finally:
        window.seconds = perf() - start
        window.cpu = (time.process_time() - cpu_start) / window.seconds
        await _close_all(conns)
    return window


async def call_many(
    target: Target, calls: Sequence[tuple[str, dict[str, Any]]], *, concurrency: int
) -> list[dict[str, Any]]:
    """Setup: sign and send each (operation, params) once; every answer must be a 200."""
    results: list[dict[str, Any]] = [{} for _ in calls]
    conns = [await connect(target) for _ in range(min(concurrency, max(1, len(calls))))]
    next_index = [0]

    async def worker(index: int) -> None:
        conn = conns[index]
        while next_index[0] < len(calls):
            i = next_index[0]
            next_index[0] += 1
            operation, params = calls[i]
            status, body = await asyncio.wait_for(
                conn.request(sign(target, operation, params)), RESPONSE_TIMEOUT
            )
            if status != 200:
                raise RuntimeError(f"{target.name} {operation}: {status} {body[:300]!r}")
            results[i] = json.loads(body)
            if conn.closed:
                conn = conns[index] = await connect(target)

    try:
        await asyncio.gather(*(worker(i) for i in range(len(conns))))
    finally:
        await _close_all(conns)
    return results
