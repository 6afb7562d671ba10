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
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from latchkey.aws.chunked import ChunkFormatError
from latchkey.aws.sigv4 import Credentials
from latchkey.clock import Clock
from latchkey.control.model import (
    AuthScheme,
    Config,
    Evidence,
    ProcessFacts,
    ServerWorkload,
    TokenCheck,
    normalize_host,
)
from latchkey.crypto.tls import NameNotPermitted
from latchkey.crypto.x509 import LeafCache
from latchkey.edge.credentials import CredentialCache, CredentialError
from latchkey.edge.decide import Allowed, Denied, Reason, check_conditions, decide
from latchkey.edge.facts import request_facts
from latchkey.edge.inject import inject, placeholder
from latchkey.edge.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from latchkey.edge.metrics import EdgeMetrics
from latchkey.edge.peer import caller_hostname, find_peer_process
from latchkey.edge.scrub import scrub_error_body
from latchkey.edge.secrets import SecretUnavailable, StaticSecrets
from latchkey.edge.sign import (
    PayloadMode,
    Refusal,
    SignedHead,
    aws_error,
    payload_mode,
    placeholder_access_key,
    refusal_response,
    resign_body,
    resign_head,
    resigned_body,
    signing_scope,
)
from latchkey.edge.transparent import (
    Kind,
    Redirected,
    TransparentListener,
    is_listener_address,
    open_outbound,
    open_streams,
)
from latchkey.edge.trust import TrustVerifier, extract_token
from latchkey.edge.upstream import (
    OnInterim,
    StreamedResponse,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeout,
)
from latchkey.http.busypoll import BusyPoll
from latchkey.http.conn import Conn, accept
from latchkey.http.h1 import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    Event,
    ProtocolError,
    Request,
    RequestParser,
    Response,
    body_framing,
    encode_interim,
    encode_request,
    encode_request_head,
    encode_response,
    encode_response_head,
    end_to_end,
    extra_hop_by_hop,
)
from latchkey.http.splice import splice
from latchkey.http.stream import (
    ClientBody,
    content_length,
    encode_chunked,
    stream_request_if,
    write_streamed_response,
)
from latchkey.store.control import EventRow

log = logging.getLogger("latchkey.edge")
access_log = logging.getLogger("latchkey.edge.access")

READ_CHUNK = 65536
EVENT_BATCH_SECONDS = 0.05  # access events are handed to the writer at most this often


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """How the edge treats connections; every limit ends in a clear status."""

    passthrough: Literal["tunnel", "deny"] = "tunnel"  # hosts that are no Server Workload
    header_timeout: float = 30.0  # a started request's head must arrive within this (408)
    idle_timeout: float = 120.0  # a keep-alive connection may wait this long for a request
    max_header_bytes: int = MAX_HEADER_BYTES  # 431 beyond
    max_body_bytes: int = MAX_BODY_BYTES  # 413 beyond (buffered bodies)
    connect_timeout: float = 10.0  # upstream connect (TCP + TLS), 504 beyond
    response_timeout: float = 60.0  # upstream answer, 504 beyond
    # While an upstream that answered within this many seconds last time is awaited, the loop
    # polls instead of sleeping (see ``latchkey.http.busypoll``); 0 turns that off.
    busy_poll: float = 0.0003
    max_inflight: int = 1024  # requests in progress at once; beyond, 503 + Retry-After (shed)


def deny_response(
    server: ServerWorkload,
    denied: Denied,
    request: Request,
    host: str,
    status: int = 403,
    retry_after: int = 5,  # (503 only)
) -> Response:
    """A refusal in the shape the target's clients parse: AWS's error shape of the request's
    protocol (JSON, query XML, S3 XML) for AWS targets, plain JSON otherwise."""
    message = f"latchkey denied this request ({denied.reason.value}): {denied.message}"
    code = "AccessDeniedException" if status == 403 else "ServiceUnavailableException"
    headers = [("x-latchkey-reason", denied.reason.value)]
    if server.auth_scheme is AuthScheme.AWS_SIGV4:
        if request.header("X-Amz-Target") is None and status == 403:
            code = "AccessDenied"  # the query protocol's and S3's spelling
        content_type, body = aws_error(code, message, request, host)
        headers.append(("Content-Type", content_type))
    else:
        body = json.dumps(
            {"error": code, "reason": denied.reason.value, "message": message}
        ).encode()
        headers.append(("Content-Type", "application/json"))
    if status == 503:
        headers.append(("Retry-After", str(retry_after)))
    return Response(status, headers, body)


def connect_refusal(denied: Denied) -> Response:
    """A CONNECT refused because the caller's access policy did not pass and the host has no
    leaf yet (one is minted only for a caller whose policy passed): 403 with the reason, in
    plain JSON, and the connection closed."""
    message = f"latchkey denied this connection ({denied.reason.value}): {denied.message}"
    body = {"error": "AccessDenied", "reason": denied.reason.value, "message": message}
    headers = [("x-latchkey-reason", denied.reason.value), ("Content-Type", "application/json")]
    return Response(403, headers, json.dumps(body).encode(), keep_alive=False)


def _decided(config: Config, server: ServerWorkload, evidence: Evidence) -> list[Any]:
    """A connection's decision memo: [config, decision, what identified the client]. The
    evidence is fixed for the connection, so the decision holds until the config changes."""
    decision = decide(config, server, evidence)
    matched = decision.client.matched_by() if isinstance(decision, Allowed) else None
    return [config, decision, matched]


def _reads_body(config: Config, allowed: Allowed) -> bool:
    """Whether a condition of the matched policy looks at what the request names (its action,
    its key), which may be in the body."""
    return any(config.access_condition(name).aws is not None for name in allowed.policy.conditions)


def _interims_to(writer: Conn) -> OnInterim:
    """Where the upstream's interim (1xx) responses go: to the client (never to an HTTP/1.0
    one, which has none: RFC 9110 15.2; the caller checks)."""
    return lambda interim: writer.write(encode_interim(interim))


def _plain(status: int, text: str, keep_alive: bool = False) -> Response:
    return Response(status, [("Content-Type", "text/plain")], (text + "\n").encode(), keep_alive)


def _absolute_target(target: str) -> tuple[str, int, str] | None:
    """``http://host[:port]/path?q`` -> (host, port, ``/path?q``); None if malformed."""
    try:
        parts = urlsplit(target)
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or not parts.hostname or parts.username is not None:
        return None
    origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname.lower(), port, origin


def _host_name(authority: str) -> str:
    """``Host``'s name without its port, as ``normalize_host`` compares names
    (``[::1]:443`` -> ``::1``, ``KMS.example.:443`` -> ``kms.example``)."""
    if authority.startswith("["):
        return normalize_host(authority[1:].partition("]")[0])
    return normalize_host(authority.rpartition(":")[0] if ":" in authority else authority)


def _misdirected(request: Request, host: str) -> str | None:
    """Inside a connection to ``host`` (CONNECT, or redirected by SNI), every request must name
    that host: another in ``Host`` or in an absolute-form target is refused (RFC 9110 7.4:
    421), rather than signed for a host it will not reach. An absolute-form target naming
    ``host`` is rewritten to origin-form, as the origin expects (RFC 9112 3.2.1)."""
    target = request.target
    if target[:1] != "/" and "://" in target[:8]:
        parts = urlsplit(target)
        try:
            named = normalize_host(parts.hostname or "")
        except ValueError:
            return "the request target is not a valid URL"
        if named != normalize_host(host):
            return f"this connection is for {host}: the request target names another host"
        request.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    given = request.header("Host")
    if given is None or given == host:  # (the usual case, first)
        return None
    if _host_name(given.strip()) != normalize_host(host):
        return f"this connection is for {host}: the Host header names another"
    return None


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
        events: Callable[[list[EventRow]], None] | None = None,  # takes batches of events
    ) -> None:
        self._events = events
        self._config = config
        self._trust = trust or TrustVerifier(clock, upstream.ssl_context)
        self._leaves = leaves
        self._credentials = credentials
        self._secrets = StaticSecrets()  # static credential providers' secrets
        self._upstream = upstream
        self._clock = clock
        self._settings = settings or EdgeSettings()
        self.metrics = EdgeMetrics(leaves, credentials)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transparent: list[TransparentListener] = []  # `up --transparent` listeners
        self._pending_events: list[EventRow] = []
        self._events_timer: asyncio.TimerHandle | None = None
        self._event_second = -1
        self._event_prefix = ""
        self._busy = BusyPoll(self._settings.busy_poll)  # peers: server workload names

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Conn(self._accepted), host, port, reuse_address=True, backlog=1024
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def _event_time(self) -> str:
        """Now as ``%Y-%m-%dT%H:%M:%S.%fZ``; the part up to the second is formatted once a
        second."""
        now = self._clock.now()
        second = int(now.timestamp())
        if second != self._event_second:
            self._event_second = second
            self._event_prefix = now.strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._event_prefix}.{now.microsecond:06d}Z"

    def _record(self, event: EventRow) -> None:
        """Hand access events over in batches, at most every ``EVENT_BATCH_SECONDS``: one
        wake-up of the writer per batch, not per request."""
        self._pending_events.append(event)
        if self._events_timer is None:
            loop = asyncio.get_running_loop()
            self._events_timer = loop.call_later(EVENT_BATCH_SECONDS, self._flush_events)

    def _flush_events(self) -> None:
        self._events_timer = None
        pending, self._pending_events = self._pending_events, []
        if self._events is not None and pending:
            self._events(pending)

    async def close(self) -> None:
        if self._events_timer is not None:
            self._events_timer.cancel()
        self._flush_events()
        if self._server is not None:
            self._server.close()
        for listener in self._transparent:
            await listener.close()
        for task in list(self._tasks):
            task.cancel()
        self._upstream.close()

    def _accepted(self, conn: Conn) -> None:
        task = asyncio.get_running_loop().create_task(self._on_client(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_client(self, conn: Conn) -> None:
        peer = conn.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            await self._serve_proxy_connection(conn, source)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("edge connection from %s failed", source)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _parser(self, server: ServerWorkload | None = None) -> RequestParser:
        """A request parser; inside a Server Workload, bodies that need not be buffered are
        streamed (see ``latchkey.http.stream``)."""
        sigv4 = server is not None and server.auth_scheme is AuthScheme.AWS_SIGV4
        return RequestParser(
            max_header_bytes=self._settings.max_header_bytes,
            max_body_bytes=self._settings.max_body_bytes,
            stream_if=stream_request_if(declared_hash_streams=sigv4) if server else None,
        )

    async def _read_request(
        self,
        conn: Conn,
        parser: RequestParser,
        pending: list[Event],
        idle: float,
    ) -> Request | None:
        """The next request; ``None`` when the client closed or stayed idle for ``idle``
        seconds. Once a request has begun, its whole head must come within the header timeout
        of its first byte (not of each read: a head dribbled a byte at a time must not hold
        the connection for ever): 408 otherwise."""
        deadline: float | None = None  # set by the request's first bytes
        while not pending:
            wait = idle if deadline is None else deadline - time.monotonic()
            try:
                if wait <= 0:
                    raise TimeoutError
                data = await conn.read(READ_CHUNK, wait)
            except TimeoutError:
                if deadline is not None:
                    raise ProtocolError("the request did not arrive in time", 408) from None
                return None
            if not data:
                return None
            pending.extend(parser.feed_events(data))
            if deadline is None and not pending:  # begun, not whole: the clock starts now
                deadline = time.monotonic() + self._settings.header_timeout
        request = pending.pop(0)
        if not isinstance(request, Request):  # (a streamed body is consumed or the end)
            raise ProtocolError("a request body outlived its request")
        return request

    async def _serve_proxy_connection(self, conn: Conn, source: str) -> None:
        writer = conn
        parser = self._parser()
        try:
            first = await self._read_request(conn, parser, [], self._settings.header_timeout)
        except ProtocolError as err:
            writer.write(encode_response(_plain(err.status, str(err))))
            return
        if first is None:
            return
        if first.method != "CONNECT":
            if first.method == "GET" and first.target == "/healthz":
                writer.write(encode_response(_plain(200, "ok")))
            elif first.method == "GET" and first.target == "/metrics":
                body = self.metrics.render()
                headers = [("Content-Type", METRICS_CONTENT_TYPE)]
                writer.write(encode_response(Response(200, headers, body, keep_alive=False)))
            elif first.target.lower().startswith("http://"):
                await self._serve_absolute(conn, source, first, parser)
            else:
                text = "this proxy serves CONNECT and absolute-form http:// requests"
                writer.write(encode_response(_plain(405, text)))
            return
        authority = _split_authority(first.target)
        if authority is None:
            writer.write(encode_response(_plain(400, "CONNECT needs host:port")))
            return
        host, port = authority
        config = self._config()
        server = config.server_workload_for(host, port)
        if server is None:
            await self._tunnel(conn, host, port, first.tail)
            return
        self.metrics.connections.labels("intercepted").inc()
        if first.tail:
            writer.write(encode_response(_plain(400, "data sent before the CONNECT was answered")))
            return
        if server.tls:  # the client's ClientHello must reach the TLS layer, not this buffer
            conn.pause_reading()
        started = time.perf_counter()
        evidence = await self._evidence(conn.get_extra_info("socket"), source, first.headers)
        decided = _decided(config, server, evidence)
        context: ssl.SSLContext | None = None
        try:
            if server.tls:
                context = await self._leaf_for(host, decided)
                if context is None:  # refused, and no leaf made for the host: none made now
                    denied = decided[1]
                    writer.write(encode_response(connect_refusal(denied)))
                    self._refused_unminted(
                        evidence, server, "CONNECT", first.target, denied, started
                    )
                    return
        except NameNotPermitted as exc:
            log.error("server workload %s: %s", server.name, exc)
            writer.write(encode_response(_plain(502, str(exc))))
            return
        conn.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if context is not None:
            await conn.start_tls(context)
        else:
            await conn.drain()
        await self._serve_requests(conn, evidence, server, host, memo=decided)

    async def _serve_absolute(
        self,
        conn: Conn,
        source: str,
        first: Request,
        parser: RequestParser,
    ) -> None:
        """Plain-HTTP proxying (``GET http://host/path``): a Server Workload without TLS on that
        host and port is served like a CONNECTed one, on this connection; any other host is
        forwarded as it is (one request, then close) or refused under ``passthrough: deny``."""
        writer = conn
        target = _absolute_target(first.target)
        if target is None:
            writer.write(encode_response(_plain(400, "expected http://host[:port]/path")))
            return
        host, port, origin = target
        server = self._config().server_workload_for(host, port)
        if server is None or server.tls:
            await self._forward_plain(writer, first, host, port, origin)
            return
        self.metrics.connections.labels("intercepted").inc()
        evidence = await self._evidence(conn.get_extra_info("socket"), source, first.headers)
        first.target = origin
        await self._serve_requests(
            conn, evidence, server, host, first=first, parser=parser, origin=(host, port)
        )

    def _refused_passthrough(self, writer: Conn, host: str, port: int) -> bool:
        """Under ``passthrough: deny``, answer 403 for a host that is no Server Workload."""
        if self._settings.passthrough != "deny":
            return False
        self.metrics.connections.labels("refused").inc()
        text = f"{host}:{port} is not a server workload (passthrough: deny)"
        writer.write(encode_response(_plain(403, text)))
        return True

    async def _forward_plain(
        self, writer: Conn, request: Request, host: str, port: int, origin: str
    ) -> None:
        if self._refused_passthrough(writer, host, port):
            return
        self.metrics.connections.labels("tunnel").inc()
        headers = [(k, v) for k, v in end_to_end(request.headers)
                   if k.lower() != "proxy-authorization"]  # fmt: skip
        try:
            data = encode_request(request.method, origin, headers, request.body)
            response = await self._upstream.request(
                host, port, False, data,
                on_interim=None if request.http_version == "1.0" else _interims_to(writer),
            )  # fmt: skip
        except UpstreamError as exc:
            status = 504 if isinstance(exc, UpstreamTimeout) else 502
            writer.write(
                encode_response(_plain(status, f"latchkey: upstream {host}:{port}: {exc}"))
            )
            return
        except ValueError as exc:
            writer.write(encode_response(_plain(400, str(exc))))
            return
        response.headers = end_to_end(response.headers)
        response.keep_alive = False
        if request.method == "HEAD":  # the length a GET would have had, and no body
            writer.write(
                encode_response_head(response, body_framing(response.headers), no_body=True)
            )
        else:
            writer.write(encode_response(response))

    async def _evidence(
        self,
        sock: Any,  # the client's socket (None: unknown)
        source: str,
        connect_headers: list[tuple[str, str]],
        ours: tuple[str, int] | None = None,  # transparent: the original destination
    ) -> Evidence:
        """What is known about the caller, gathered once per connection."""
        config = self._config()
        token = extract_token(connect_headers)
        tokens: dict[str, TokenCheck] = {}
        if token is not None:
            for name in sorted(config.token_trust_providers):
                tokens[name] = await self._trust.check(config.trust_provider(name), token)
        facts = await self._process_facts(sock, config, ours) if config.needs_process else None
        hostname = await caller_hostname(source) if config.needs_hostname else None
        return Evidence(
            source, facts, token_presented=token is not None, tokens=tokens, hostname=hostname
        )

    async def _process_facts(
        self, sock: Any, config: Config, ours: tuple[str, int] | None = None
    ) -> ProcessFacts | None:
        if sock is None:
            return None
        want_sha = config.needs_exe_sha256

        def look() -> ProcessFacts | None:
            mine = ours or sock.getsockname()[:2]  # the peer's socket names this as its remote
            info = find_peer_process(ours=mine, peer=sock.getpeername()[:2])
            if info is None:
                return None
            sha = info.exe_sha256() if want_sha else None
            return ProcessFacts(info.pid, info.uid, info.user, info.exe, info.cmdline, sha)

        try:
            return await asyncio.to_thread(look)
        except OSError:
            return None

    # -- transparent mode (iptables REDIRECT; see edge/transparent.py) ------------------------

    async def start_transparent(self, host: str, port: int) -> tuple[str, int]:
        """Listen for connections redirected by iptables; returns the bound address."""
        listener = TransparentListener(self._on_redirected)
        bound = await listener.start(host, port)
        self._transparent.append(listener)
        return bound

    def _is_own_listener(self, address: tuple[str, int]) -> bool:
        ours = [listener.address for listener in self._transparent]
        if self._server is not None:
            ours += [
                (str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets
            ]
        return any(is_listener_address(address, listening) for listening in ours)

    async def _on_redirected(self, conn: Redirected) -> None:
        """A redirected connection: what the CONNECT path does after CONNECT for a Server
        Workload named by SNI (TLS) or Host (plain HTTP) on the original port; else a tunnel
        to the original destination."""
        host, port = conn.first.name, conn.original[1]
        config = self._config()
        server = config.server_workload_for(host, port) if host else None
        if server is not None and server.tls != (conn.first.kind is Kind.TLS):
            server = None  # TLS to a plain-HTTP workload, or the reverse: not ours to read
        if server is None or host is None:
            await self._tunnel_redirected(conn)
            return
        self.metrics.connections.labels("intercepted").inc()
        started = time.perf_counter()
        evidence = await self._evidence(conn.sock, conn.peer[0], [], ours=conn.original)
        decided = _decided(config, server, evidence)
        context: ssl.SSLContext | None = None
        try:
            if server.tls:
                context = await self._leaf_for(host, decided)
                if context is None:  # refused, and no leaf for the host: closed, none minted
                    denied = decided[1]
                    log.info("transparent: %s -> %s:%d refused (%s): %s", conn.peer[0], host,
                             port, denied.reason.value, denied.message)  # fmt: skip
                    target = f"{host}:{port}"
                    self._refused_unminted(evidence, server, "TLS", target, denied, started)
                    return
        except NameNotPermitted as exc:
            log.error("server workload %s: %s", server.name, exc)
            return
        handshake = self._settings.header_timeout
        client = await accept(conn.sock, context, handshake_timeout=handshake)
        try:
            await self._serve_requests(client, evidence, server, host, memo=decided)
        finally:
            client.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.wait_closed(), 5)

    async def _tunnel_redirected(self, conn: Redirected) -> None:
        """Byte for byte to the original destination (the peeked bytes included), or closed
        under ``passthrough: deny``."""
        host, port = host_port = conn.original
        named = f" ({conn.first.kind.value} {conn.first.name or conn.first.why})"
        if self._settings.passthrough == "deny":
            self.metrics.connections.labels("refused").inc()
            log.info("transparent: %s -> %s:%d%s refused (passthrough: deny)",
                     conn.peer[0], host, port, named)  # fmt: skip
            return
        if self._is_own_listener(conn.original):
            log.error("transparent: %s -> %s:%d is the edge; closed", conn.peer[0], *host_port)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                open_outbound(conn.original), self._settings.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            log.info("transparent: cannot connect to %s:%d: %s", host, port, exc)
            return
        self.metrics.connections.labels("tunnel").inc()
        log.info("transparent: %s -> %s:%d%s tunnelled", conn.peer[0], host, port, named)
        reader, writer = await open_streams(conn.sock)
        try:
            await splice((reader, writer), (up_reader, up_writer))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _tunnel(
        self,
        conn: Conn,
        host: str,
        port: int,
        tail: bytes,
    ) -> None:
        if self._refused_passthrough(conn, host, port):
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            conn.write(encode_response(_plain(502, f"cannot connect to {host}:{port}: {exc}")))
            return
        self.metrics.connections.labels("tunnel").inc()
        conn.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if tail:
            up_writer.write(tail)
        await splice((conn, conn), (up_reader, up_writer))

    async def _serve_requests(
        self,
        conn: Conn,
        evidence: Evidence,
        server: ServerWorkload,
        host: str,
        *,
        first: Request | None = None,
        parser: RequestParser | None = None,
        origin: tuple[str, int] | None = None,
        memo: list[Any] | None = None,
    ) -> None:
        """Requests inside a Server Workload connection (after CONNECT, or plain-HTTP proxying
        to ``origin``, where every request must name that same host and port). ``memo``: the
        decision made for the connection already (see ``_decided``), if any."""
        writer = conn
        parser = parser or self._parser(server)
        pending: list[Event] = []
        memo = memo or [None, None, None]  # (config, decision, evidence matched)
        interims = _interims_to(conn)
        while True:
            request: Request | None = first
            first = None
            try:
                if request is None:
                    request = await self._read_request(
                        conn, parser, pending, self._settings.idle_timeout
                    )
            except ProtocolError as err:
                writer.write(encode_response(_plain(err.status, str(err))))
                return
            if request is None:
                return
            if origin is not None and request.target.lower().startswith("http://"):
                target = _absolute_target(request.target)
                if target is None or target[:2] != origin:
                    text = "one proxied host per connection: open another for another host"
                    writer.write(encode_response(_plain(400, text)))
                    return
                request.target = target[2]
            elif (
                origin is None
                and (request.target[:1] != "/" or request.header("Host") != host)
                and (wrong := _misdirected(request, host)) is not None
            ):  # (the usual request names the host exactly: no call for it)
                writer.write(encode_response(_plain(421, wrong)))
                return
            started = time.perf_counter()
            body = None
            if request.streamed:
                timeout = self._settings.header_timeout
                body = ClientBody(conn, parser, pending, request, timeout=timeout)
            self._busy.working += 1
            try:
                if self._busy.working > self._settings.max_inflight:
                    answer, outcome = self._shed(request, server, host)
                else:
                    answer, outcome = await self._handle(
                        request, evidence, server, host, body, memo,
                        None if request.http_version == "1.0" else interims,
                    )  # fmt: skip
                response = answer.head if isinstance(answer, StreamedResponse) else answer
                # A body left unread cannot be skipped safely: close after answering.
                unread = body is not None and not body.finished
                response.keep_alive = response.keep_alive and request.keep_alive and not unread
                await self._answer(conn, request, answer)
            finally:
                self._busy.working -= 1
            latency = (time.perf_counter() - started) * 1000
            self.metrics.count_request(server.name, outcome.decision, outcome.reason or "")
            if access_log.isEnabledFor(logging.DEBUG):  # a trace; the access events are the record
                access_log.debug(
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
                self._record_event(
                    evidence, server, outcome, request.method, request.path, response.status,
                    latency,
                )  # fmt: skip
            if not response.keep_alive:
                return

    def _record_event(
        self,
        evidence: Evidence,
        server: ServerWorkload,
        outcome: Outcome,
        method: str,
        path: str,
        status: int,
        latency: float,
    ) -> None:
        self._record(
            (  # an AccessEvent's fields, in EVENT_COLUMNS order
                self._event_time(),  # time
                evidence.source_address,  # source
                outcome.client,  # client
                server.name,  # server
                outcome.policy,  # policy
                outcome.decision,  # decision
                outcome.reason,  # reason
                outcome.detail,  # detail
                outcome.provider,  # credential_provider
                method,  # method
                path,  # path
                status,  # status
                round(latency, 3),  # latency_ms
                outcome.evidence,  # evidence
                outcome.credentials,  # credential_result
                outcome.upstream_status,  # upstream_status
            )
        )

    def _shed(
        self, request: Request, server: ServerWorkload, host: str
    ) -> tuple[Response | StreamedResponse, Outcome]:
        """Overload: more requests in progress than ``max_inflight``. Answered at once, 503 with
        ``Retry-After`` in the target's protocol (SDKs retry a 503 with backoff), so a burst
        is shed instead of queueing without bound."""
        limit = self._settings.max_inflight
        shed = Denied(Reason.OVERLOADED, f"the edge is working on its limit of {limit} "
                      "requests at once; retry shortly")  # fmt: skip
        return deny_response(server, shed, request, host, 503, retry_after=1), Outcome.denied(shed)

    async def _leaf_for(self, host: str, decided: list[Any]) -> ssl.SSLContext | None:
        """The host's server context. A leaf is minted only for a caller whose access policy
        passed; a refused caller is served by a leaf made for another one, if the host has
        one (its refusal is then answered inside TLS, in the target's protocol, like any
        other): ``None`` when it has none."""
        context = self._leaves.cached(host)
        if context is None and isinstance(decided[1], Allowed):
            context = await asyncio.to_thread(self._leaves.context_for, host)
        return context

    def _refused_unminted(
        self,
        evidence: Evidence,
        server: ServerWorkload,
        method: str,
        target: str,
        denied: Denied,
        started: float,
    ) -> None:
        """Count and record a connection refused before TLS (see ``_leaf_for``)."""
        self.metrics.count_request(server.name, "denied", denied.reason.value)
        if access_log.isEnabledFor(logging.DEBUG):
            access_log.debug("%s %s %s %s -> 403 denied:%s", evidence.source_address,
                             server.name, method, target, denied.reason.value)  # fmt: skip
        if self._events is not None:
            latency = (time.perf_counter() - started) * 1000
            outcome = Outcome.denied(denied)
            self._record_event(evidence, server, outcome, method, target, 403, latency)

    async def _answer(
        self,
        writer: Conn,
        request: Request,
        answer: Response | StreamedResponse,
    ) -> None:
        if isinstance(answer, StreamedResponse):
            http10 = request.http_version == "1.0"
            async with contextlib.aclosing(answer.rest) as rest:
                await write_streamed_response(
                    writer, answer.head, answer.length, answer.first, rest, http10=http10
                )
        elif request.method == "HEAD":  # the length a GET would have had, and no body
            length = body_framing(answer.headers)
            writer.write(encode_response_head(answer, length, no_body=True))
        else:
            writer.write(encode_response(answer))
        if writer.must_drain():
            await writer.drain()

    async def _handle(
        self,
        request: Request,
        evidence: Evidence,
        server: ServerWorkload,
        host: str,
        body: ClientBody | None = None,
        memo: list[Any] | None = None,
        interims: OnInterim | None = None,
    ) -> tuple[Response | StreamedResponse, Outcome]:
        config = self._config()  # this request keeps this Config, whatever is applied meanwhile
        # The caller's evidence is fixed for the connection: decide again only when the
        # configuration changed (an apply swaps the Config object).
        if memo is None or memo[0] is not config:
            decided = _decided(config, server, evidence)
            if memo is not None:
                memo[:] = decided
            memo = decided
        decision, matched = memo[1], memo[2]
        if isinstance(decision, Denied):
            return deny_response(server, decision, request, host), Outcome.denied(decision)
        assert isinstance(decision, Allowed)
        client, policy = decision.client.name, decision.policy.name
        if decision.policy.conditions:
            if body is not None and not body.finished and _reads_body(config, decision):
                # The action and key may be in the body: read it (capped) before judging, or a
                # streamed body (Expect: 100-continue, chunked) would be judged as empty.
                try:
                    request.body = await self._collect(body)
                except Refusal as exc:
                    outcome = Outcome("denied:cannot-read", "denied", "cannot-read", client,
                                      policy, None, exc.message)  # fmt: skip
                    return refusal_response(exc, request, host), outcome
            failed = check_conditions(
                config, decision, request_facts(request, host, self._clock.now())
            )
            if failed is not None:
                refused = Outcome.denied(failed, client, policy)
                refused.evidence = matched
                return deny_response(server, failed, request, host), refused
        headers: list[tuple[str, str]] = []
        provider_name: str | None = None
        signed: SignedHead | None = None
        got: str | None = None
        secrets_sent: tuple[str, ...] = ()  # sent upstream: never echoed back to the client
        if server.auth_scheme is AuthScheme.AWS_SIGV4:
            provider_name = decision.policy.select_provider(placeholder_access_key(request))
            try:
                if provider_name is None:  # (the loader refuses such a policy)
                    raise CredentialError(f"access policy '{policy}' names no credential provider")
                provider = config.credential_provider(provider_name)
                creds, got = await self._credentials.get_with_result(provider, decision.client)
            except CredentialError as exc:
                denied = Denied(Reason.CREDENTIAL_UNAVAILABLE, str(exc))
                outcome = Outcome.denied(denied, client, policy, provider_name)
                outcome.evidence, outcome.credentials = matched, "unavailable"
                return deny_response(server, denied, request, host, 503), outcome
            try:
                signed = await self._resign(request, body, creds, host)
            except Refusal as exc:
                outcome = Outcome("denied:cannot-resign", "denied", "cannot-resign", client,
                                  policy, provider_name, exc.message)  # fmt: skip
                return refusal_response(exc, request, host), outcome
            headers = signed.headers
            secrets_sent = (creds.access_key, creds.secret_key, creds.session_token or "")
        elif server.auth_scheme is not AuthScheme.NONE:  # bearer, header, basic: a static secret
            headers = end_to_end(request.headers)
            scheme, header = server.auth_scheme, server.auth_header
            provider_name = decision.policy.select_provider(placeholder(headers, scheme, header))
            try:
                if provider_name is None:  # (the loader refuses such a policy)
                    raise SecretUnavailable(f"policy '{policy}' names no credential provider")
                secret = self._secrets.secret_for(config.credential_provider(provider_name), scheme)
            except SecretUnavailable as exc:
                denied = Denied(Reason.CREDENTIAL_UNAVAILABLE, str(exc))
                outcome = Outcome.denied(denied, client, policy, provider_name)
                outcome.evidence, outcome.credentials = matched, "unavailable"
                return deny_response(server, denied, request, host, 503), outcome
            headers = inject(headers, scheme, secret, header)
            secrets_sent = (secret, headers[-1][1])  # the secret, and the header made of it
            got = "static"
        else:
            headers = end_to_end(request.headers)
        allowed = Outcome(f"allowed:{policy}", "allowed", None, client, policy, provider_name,
                          evidence=matched, credentials=got)  # fmt: skip
        return await self._forward(
            request, body, headers, signed, server, host, allowed, interims, secrets_sent
        )

    async def _resign(
        self, request: Request, body: ClientBody | None, creds: Credentials, host: str
    ) -> SignedHead:
        """Re-sign the head; a body the signature must hash is read (capped) first."""
        scope = signing_scope(request, host)  # Refusal when neither signature nor host says
        mode = payload_mode(request, scope[1])
        if body is not None and not body.finished and mode is PayloadMode.HASH_BODY:
            request.body = await self._collect(body)
        return resign_head(request, creds, host=host, now=self._clock.now(), scope=scope, mode=mode)

    async def _collect(self, body: ClientBody) -> bytes:
        """A streamed body, whole (``max_body_bytes`` at most)."""
        try:
            return await body.collect(self._settings.max_body_bytes)
        except ProtocolError as err:
            raise Refusal("InvalidRequest", str(err), err.status) from None

    async def _forward(
        self,
        request: Request,
        body: ClientBody | None,
        headers: list[tuple[str, str]],
        signed: SignedHead | None,
        server: ServerWorkload,
        host: str,
        allowed: Outcome,
        interims: OnInterim | None = None,
        secrets_sent: tuple[str, ...] = (),
    ) -> tuple[Response | StreamedResponse, Outcome]:
        """Send the request upstream (its body buffered, or streamed from the client, chunk
        signatures re-signed on the way) and take the answer."""
        upstream = server.upstream_host(host)
        chunks = signed if signed is not None and signed.chunks is not None else None
        stream: AsyncIterator[bytes] | None = None
        try:
            if body is not None and not body.finished:
                headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                data = encode_request_head(
                    request.method, request.target, headers, content_length(request)
                )
                parts: AsyncIterator[bytes] = body.parts()
                if chunks is not None:
                    parts = resigned_body(parts, chunks, self._settings.max_body_bytes)
                stream = parts if content_length(request) is not None else encode_chunked(parts)
            else:
                payload = request.body
                if chunks is not None:
                    payload = resign_body(payload, chunks, self._settings.max_body_bytes)
                data = encode_request(request.method, request.target, headers, payload)
        except ChunkFormatError as exc:
            allowed.detail = str(exc)
            return _plain(400, str(exc)), allowed
        sent = time.perf_counter()
        self._busy.awaiting(server.name)
        try:
            answer = await self._upstream.exchange(
                upstream,
                server.forward_port,
                server.forward_tls,
                data,
                body=stream,
                verify=server.tls_verify,
                ca_bundle=server.ca_bundle,
                head_request=request.method == "HEAD",
                on_interim=interims,
            )
        except UpstreamError as exc:
            status = 504 if isinstance(exc, UpstreamTimeout) else 502
            text = f"latchkey: upstream {upstream}:{server.forward_port}: {exc}"
            allowed.detail = f"upstream error: {exc}"
            return _plain(status, text, True), allowed
        except ChunkFormatError as exc:
            allowed.detail = str(exc)
            return _plain(400, str(exc)), allowed
        except ProtocolError as exc:
            allowed.detail = str(exc)
            return _plain(exc.status, str(exc)), allowed
        finally:
            took = time.perf_counter() - sent
            self._busy.answered(server.name, took)
        self.metrics.observe_upstream(server.name, took)
        response = answer.head if isinstance(answer, StreamedResponse) else answer
        if extra_hop_by_hop(response.header_values("connection")):
            response.headers = end_to_end(response.headers)
        # (else: the encoders drop the hop-by-hop headers themselves)
        if response.status >= 400:
            response.body = scrub_error_body(response.body, secrets_sent)
        response.keep_alive = True
        allowed.upstream_status = response.status
        return answer, allowed


@dataclass(slots=True)
class Outcome:
    """What happened to one request, for the access log and the access events (one per
    request, filled in as the request goes)."""

    label: str
    decision: str  # "allowed" | "denied"
    reason: str | None = None
    client: str | None = None
    policy: str | None = None
    provider: str | None = None
    detail: str | None = None
    evidence: str | None = None  # what identified the client
    credentials: str | None = None  # cached | refreshing | fetched | unavailable
    upstream_status: int | None = None

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
