"""The edge's network side: the one module that awaits sockets.

A client connects and sends ``CONNECT host:port``. If that host:port is a Server Workload the
edge answers 200, terminates TLS with a leaf minted by the latchkey CA, and serves the HTTP/1.1
requests inside: decide (identify + policy) -> credentials -> re-sign -> forward -> answer.
Any other host is tunnelled byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from latchkey.clock import Clock
from latchkey.control.model import (
    AuthScheme,
    Config,
    Evidence,
    ProcessFacts,
    ServerWorkload,
    TokenCheck,
)
from latchkey.crypto.x509 import LeafCache
from latchkey.edge.credentials import CredentialCache, CredentialError
from latchkey.edge.decide import Allowed, Denied, Reason, check_conditions, decide
from latchkey.edge.facts import request_facts
from latchkey.edge.peer import caller_hostname, find_peer_process
from latchkey.edge.sign import placeholder_access_key, resign
from latchkey.edge.trust import TrustVerifier, extract_token
from latchkey.edge.upstream import UpstreamError, UpstreamPool
from latchkey.http.h1 import (
    ProtocolError,
    Request,
    RequestParser,
    Response,
    encode_request,
    encode_response,
    end_to_end,
)
from latchkey.http.splice import splice
from latchkey.store.control import AccessEvent

log = logging.getLogger("latchkey.edge")
access_log = logging.getLogger("latchkey.edge.access")

READ_CHUNK = 65536
HEADER_TIMEOUT = 30.0
IDLE_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    tunnel_unknown_hosts: bool = True


def deny_response(server: ServerWorkload, denied: Denied, status: int = 403) -> Response:
    """A refusal in the shape the target's clients parse (AWS JSON error for AWS targets)."""
    message = f"latchkey denied this request ({denied.reason.value}): {denied.message}"
    code = "AccessDeniedException" if status == 403 else "ServiceUnavailableException"
    headers = [("x-latchkey-reason", denied.reason.value)]
    if server.auth_scheme is AuthScheme.AWS_SIGV4:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    else:
        body = json.dumps(
            {"error": code, "reason": denied.reason.value, "message": message}
        ).encode()
        headers.append(("Content-Type", "application/json"))
    if status == 503:
        headers.append(("Retry-After", "5"))
    return Response(status, headers, body)


def _plain(status: int, text: str, keep_alive: bool = False) -> Response:
    return Response(status, [("Content-Type", "text/plain")], (text + "\n").encode(), keep_alive)


def _split_authority(target: str) -> tuple[str, int] | None:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    return (host, int(port)) if host and 0 < int(port) < 65536 else None


class Edge:
    def __init__(
        self,
        *,
        config: Callable[[], Config],
        leaves: LeafCache,
        credentials: CredentialCache,
        upstream: UpstreamPool,
        clock: Clock,
        settings: EdgeSettings | None = None,
        trust: TrustVerifier | None = None,
        events: Callable[[AccessEvent], None] | None = None,
    ) -> None:
        self._events = events
        self._config = config
        self._trust = trust or TrustVerifier(clock, upstream.ssl_context)
        self._leaves = leaves
        self._credentials = credentials
        self._upstream = upstream
        self._clock = clock
        self._settings = settings or EdgeSettings()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._on_client, host, port, reuse_address=True, backlog=1024
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        self._upstream.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            await self._serve_proxy_connection(reader, writer, source)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("edge connection from %s failed", source)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _read_request(
        self,
        reader: asyncio.StreamReader,
        parser: RequestParser,
        pending: list[Request],
        wait: float,
    ) -> Request | None:
        while not pending:
            async with asyncio.timeout(wait):
                data = await reader.read(READ_CHUNK)
            if not data:
                return None
            pending.extend(parser.feed(data))
        return pending.pop(0)

    async def _serve_proxy_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: str
    ) -> None:
        parser = RequestParser()
        try:
            first = await self._read_request(reader, parser, [], HEADER_TIMEOUT)
        except ProtocolError as err:
            writer.write(encode_response(_plain(err.status, str(err))))
            return
        if first is None:
            return
        if first.method != "CONNECT":
            if first.method == "GET" and first.target == "/healthz":
                writer.write(encode_response(_plain(200, "ok")))
            else:
                writer.write(encode_response(_plain(405, "this proxy serves CONNECT only")))
            return
        authority = _split_authority(first.target)
        if authority is None:
            writer.write(encode_response(_plain(400, "CONNECT needs host:port")))
            return
        host, port = authority
        server = self._config().server_workload_for(host, port)
        if server is None:
            await self._tunnel(reader, writer, host, port, first.tail)
            return
        if first.tail:
            writer.write(encode_response(_plain(400, "data sent before the CONNECT was answered")))
            return
        # Mint (or find) the leaf first and stop reading before answering: the client's
        # ClientHello must reach the TLS layer, not this stream's buffer.
        context = await asyncio.to_thread(self._leaves.context_for, host) if server.tls else None
        if context is not None:
            # (uvloop's transports are not asyncio.ReadTransport subclasses: no isinstance)
            writer.transport.pause_reading()  # type: ignore[attr-defined]
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        evidence = await self._evidence(writer, source, first.headers)
        if context is not None:
            await writer.start_tls(context)
        else:
            await writer.drain()
        await self._serve_requests(reader, writer, evidence, server, host)

    async def _evidence(
        self, writer: asyncio.StreamWriter, source: str, connect_headers: list[tuple[str, str]]
    ) -> Evidence:
        """What is known about the caller, gathered once per connection."""
        config = self._config()
        token = extract_token(connect_headers)
        tokens: dict[str, TokenCheck] = {}
        if token is not None:
            for name in sorted(config.token_trust_providers):
                tokens[name] = await self._trust.check(config.trust_provider(name), token)
        facts = await self._process_facts(writer, config) if config.needs_process else None
        hostname = await caller_hostname(source) if config.needs_hostname else None
        return Evidence(
            source, facts, token_presented=token is not None, tokens=tokens, hostname=hostname
        )

    async def _process_facts(
        self, writer: asyncio.StreamWriter, config: Config
    ) -> ProcessFacts | None:
        sock = writer.get_extra_info("socket")
        if sock is None:
            return None
        want_sha = config.needs_exe_sha256

        def look() -> ProcessFacts | None:
            info = find_peer_process(ours=sock.getsockname()[:2], peer=sock.getpeername()[:2])
            if info is None:
                return None
            sha = info.exe_sha256() if want_sha else None
            return ProcessFacts(info.pid, info.uid, info.user, info.exe, info.cmdline, sha)

        try:
            return await asyncio.to_thread(look)
        except OSError:
            return None

    async def _tunnel(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        tail: bytes,
    ) -> None:
        if not self._settings.tunnel_unknown_hosts:
            writer.write(encode_response(_plain(403, f"{host}:{port} is not a server workload")))
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            writer.write(encode_response(_plain(502, f"cannot connect to {host}:{port}: {exc}")))
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if tail:
            up_writer.write(tail)
        await splice((reader, writer), (up_reader, up_writer))

    async def _serve_requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        evidence: Evidence,
        server: ServerWorkload,
        host: str,
    ) -> None:
        parser = RequestParser()
        pending: list[Request] = []
        while True:
            try:
                request = await self._read_request(reader, parser, pending, IDLE_TIMEOUT)
            except ProtocolError as err:
                writer.write(encode_response(_plain(err.status, str(err))))
                return
            if request is None:
                return
            started = time.perf_counter()
            response, outcome = await self._handle(request, evidence, server, host)
            response.keep_alive = response.keep_alive and request.keep_alive
            writer.write(encode_response(response))
            await writer.drain()
            latency = (time.perf_counter() - started) * 1000
            access_log.info(
                "%s %s %s %s -> %d %s %.1fms",
                evidence.source_address,
                server.name,
                request.method,
                request.path,
                response.status,
                outcome.label,
                latency,
            )
            if self._events is not None:
                self._events(
                    AccessEvent(
                        time=self._clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        source=evidence.source_address,
                        client=outcome.client,
                        server=server.name,
                        policy=outcome.policy,
                        decision=outcome.decision,
                        reason=outcome.reason,
                        detail=outcome.detail,
                        credential_provider=outcome.provider,
                        method=request.method,
                        path=request.path,
                        status=response.status,
                        latency_ms=round(latency, 3),
                    )
                )
            if not response.keep_alive:
                return

    async def _handle(
        self, request: Request, evidence: Evidence, server: ServerWorkload, host: str
    ) -> tuple[Response, Outcome]:
        config = self._config()  # this request keeps this Config, whatever is applied meanwhile
        decision = decide(config, server, evidence)
        if isinstance(decision, Denied):
            return deny_response(server, decision), Outcome.denied(decision)
        assert isinstance(decision, Allowed)
        client, policy = decision.client.name, decision.policy.name
        if decision.policy.conditions:
            failed = check_conditions(
                config, decision, request_facts(request, host, self._clock.now())
            )
            if failed is not None:
                return deny_response(server, failed), Outcome.denied(failed, client, policy)
        headers = end_to_end(request.headers)
        provider_name: str | None = None
        if server.auth_scheme is AuthScheme.AWS_SIGV4:
            provider_name = decision.policy.select_provider(placeholder_access_key(request))
            provider = config.credential_provider(provider_name)
            try:
                creds = await self._credentials.get(provider, decision.client)
            except CredentialError as exc:
                denied = Denied(Reason.CREDENTIAL_UNAVAILABLE, str(exc))
                outcome = Outcome.denied(denied, client, policy, provider_name)
                return deny_response(server, denied, 503), outcome
            headers = resign(request, creds, host=host, now=self._clock.now())
        data = encode_request(request.method, request.target, headers, request.body)
        allowed = Outcome(f"allowed:{policy}", "allowed", None, client, policy, provider_name)
        try:
            response = await self._upstream.request(
                server.upstream_host(host),
                server.forward_port,
                server.forward_tls,
                data,
                verify=server.tls_verify,
            )
        except UpstreamError as exc:
            text = f"latchkey: upstream {server.upstream_host(host)}: {exc}"
            return _plain(502, text, True), replace(allowed, detail=f"upstream error: {exc}")
        response.headers = end_to_end(response.headers)
        response.keep_alive = True
        return response, allowed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request, for the access log and the access events."""

    label: str
    decision: str  # "allowed" | "denied"
    reason: str | None = None
    client: str | None = None
    policy: str | None = None
    provider: str | None = None
    detail: str | None = None

    @classmethod
    def denied(
        cls,
        denied: Denied,
        client: str | None = None,
        policy: str | None = None,
        provider: str | None = None,
    ) -> Outcome:
        reason = denied.reason.value
        return cls(f"denied:{reason}", "denied", reason, client, policy, provider, denied.message)
