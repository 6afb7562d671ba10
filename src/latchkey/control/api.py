"""The control REST API (``/api/v1``) on the idp/control listener. Bearer admin token.

Errors are JSON ``{"code": ..., "message": ...}`` (configuration errors add ``issues``, each
with file, line, column, field and message).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from latchkey.control.conditions import RequestFacts
from latchkey.control.loader import ConfigError, StoredObject
from latchkey.control.manifest import resolve_kind
from latchkey.control.model import Evidence
from latchkey.control.schema import check_name
from latchkey.control.service import ControlPlane, InUse, NotFound
from latchkey.control.since import parse_since
from latchkey.http.h1 import Request, Response
from latchkey.http.server import Peer
from latchkey.store.control import ControlStore

MAX_PAGE = 1000

# (client_ip, host, port, action, key_id, pid, token) -> the explanation as JSON
Explainer = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# an object -> its read-only status (e.g. what to copy into AWS IAM), or None
StatusOf = Callable[[StoredObject], dict[str, Any] | None]


def _json(value: object, status: int = 200) -> Response:
    body = json.dumps(value, indent=2).encode() + b"\n"
    return Response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                    body)  # fmt: skip


def _error(status: int, code: str, message: str, **extra: object) -> Response:
    return _json({"code": code, "message": message, **extra}, status)


def _config_error(exc: ConfigError) -> Response:
    issues = [
        {"file": i.file, "line": i.line, "column": i.column, "field": i.field,
         "message": i.message}
        for i in exc.issues
    ]  # fmt: skip
    return _error(422, "InvalidConfiguration", str(exc), issues=issues)


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "latchkey control API", "version": "v1"},
    "components": {"securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}}},
    "security": [{"admin": []}],
    "paths": {
        "/api/v1/objects": {"get": {"summary": "every configuration object"}},
        "/api/v1/{kind}": {"get": {"summary": "the objects of one kind"}},
        "/api/v1/{kind}/{name}": {
            "get": {"summary": "one object"},
            "put": {"summary": "create or replace one object from its JSON document"},
            "delete": {"summary": "delete one object (refused while others refer to it)"},
        },
        "/api/v1/apply": {
            "post": {
                "summary": "apply YAML documents: {files: [{filename, documents}], prune, "
                "dryRun} (or one file as {documents, filename, prune, dryRun})",
                "responses": {"200": {"description": "changes"}, "422": {"description": "issues"}},
            }
        },
        "/api/v1/explain": {
            "post": {"summary": "why a caller would be allowed or denied: {clientIp, host, ...}"}
        },
        "/api/v1/events": {
            "get": {
                "summary": "access events; filters client, server, decision, since (an ISO "
                "8601 time or a duration such as 1h); cursor after, limit"
            }
        },
    },
}


class ControlApi:
    def __init__(
        self,
        control: ControlPlane,
        events: ControlStore,
        token: str,
        explainer: Explainer,
        status_of: StatusOf | None = None,
    ) -> None:
        self._status_of = status_of or (lambda obj: None)
        self.control = control
        self.events = events
        self._token = token
        self._explain = explainer

    def authorized(self, request: Request) -> bool:
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        # (as bytes: compare_digest refuses str with non-ASCII characters, and a header may hold
        # any; the header's text came from latin-1, so it maps back to its bytes)
        given = value.strip().encode("latin-1", "replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._token.encode())

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if not self.authorized(request):
            return _error(401, "Unauthorized", "a bearer admin token is required")
        # (each segment decoded: a name with '#' or '/' arrives quoted, and is then refused)
        parts = [unquote(p) for p in request.path.split("/") if p][2:]  # after /api/v1
        query = dict(parse_qsl(request.query))
        try:
            if len(parts) == 2 and parts[0] not in ("objects", "apply", "explain", "events"):
                check_name(parts[1])
            return await self._route(request.method, parts, query, request.body)
        except ConfigError as exc:
            return _config_error(exc)
        except NotFound as exc:
            return _error(404, "NotFound", str(exc.args[0]))
        except InUse as exc:
            return _error(409, "InUse", str(exc))
        except ValueError as exc:
            return _error(400, "BadRequest", str(exc))

    async def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes
    ) -> Response:
        if parts == ["openapi.json"] and method == "GET":
            return _json(OPENAPI)
        if parts == ["objects"] and method == "GET":
            return _json({"items": [self._document(o) for o in self.control.objects()]})
        if parts == ["apply"] and method == "POST":
            return self._apply(_body(body))
        if parts == ["explain"] and method == "POST":
            return _json(await self._explain(_body(body)))
        if parts == ["events"] and method == "GET":
            return self._events(query)
        if len(parts) == 2 and method == "PUT":
            return self._put(resolve_kind(parts[0]), parts[1], _body(body), query)
        if len(parts) in (1, 2) and method in ("GET", "DELETE"):
            kind = resolve_kind(parts[0])
            if len(parts) == 1 and method == "GET":
                return _json({"items": [self._document(o) for o in self.control.objects(kind)]})
            if len(parts) == 2 and method == "GET":
                return _json(self._document(self.control.get(kind, parts[1])))
            if len(parts) == 2:
                dry_run = query.get("dryRun", "false") == "true"
                change = self.control.delete(kind, parts[1], dry_run=dry_run)
                return _json({"changes": [_change(change)], "dryRun": dry_run})
        return _error(404, "NotFound", f"no such endpoint: {method} /api/v1/{'/'.join(parts)}")

    def _document(self, obj: StoredObject) -> dict[str, object]:
        doc = obj.document()
        status = self._status_of(obj)
        if status:
            doc["status"] = status
        return doc

    def _apply(self, doc: dict[str, Any]) -> Response:
        files = doc.get("files")
        if files is None:  # one file, the request's first form
            files = [{"documents": doc.get("documents"), "filename": doc.get("filename")}]
        if not isinstance(files, list):
            raise ValueError("'files' must be a list of {filename, documents}")
        given = []
        for i, entry in enumerate(files):
            text = entry.get("documents") if isinstance(entry, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"file {i + 1}: 'documents' must be YAML text")
            given.append((str(entry.get("filename") or "<request>"), text))
        dry_run = bool(doc.get("dryRun", False))
        changes = self.control.apply(given, prune=bool(doc.get("prune", False)),
                                     dry_run=dry_run)  # fmt: skip
        return _json({"changes": [_change(c) for c in changes], "dryRun": dry_run})

    def _put(self, kind: str, name: str, doc: dict[str, Any], query: dict[str, str]) -> Response:
        """Create or replace one object from its JSON document (kind and name must agree)."""
        if doc.get("kind", kind) != kind or (doc.get("metadata") or {}).get("name", name) != name:
            raise ValueError(f"the document must describe {kind} {name!r}")
        document = {"apiVersion": "latchkey/v1", **doc, "kind": kind, "metadata": {"name": name}}
        given = [(f"PUT /api/v1/{kind}/{name}", json.dumps(document))]
        dry_run = query.get("dryRun", "false") == "true"
        changes = self.control.apply(given, dry_run=dry_run)
        return _json({"changes": [_change(c) for c in changes], "dryRun": dry_run})

    def _events(self, query: dict[str, str]) -> Response:
        try:
            after = int(query.get("after", "0"))
            limit = min(int(query.get("limit", "100")), MAX_PAGE)
        except ValueError:
            raise ValueError("after and limit must be integers") from None
        since = query.get("since")
        try:
            when = parse_since(since, dt.datetime.now(dt.UTC)) if since is not None else None
        except ValueError as exc:
            raise ValueError(f"since: {exc}") from None
        events = self.events.list_events(
            after_id=after,
            limit=limit,
            client=query.get("client"),
            server=query.get("server"),
            decision=query.get("decision"),
            since=when,
        )
        next_cursor = events[-1].id if events else after
        return _json({"items": [e.to_json() for e in events], "next": next_cursor})


def _change(change: Any) -> dict[str, str]:
    return {"kind": change.kind, "name": change.name, "action": change.action.value}


def _body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the request body must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("the request body must be a JSON object")
    return value


def facts_from(doc: dict[str, Any], now: Any) -> tuple[str, int, Evidence, RequestFacts]:
    """The pieces of an explain request that need no I/O."""
    host = doc.get("host")
    if not isinstance(host, str) or not host:
        raise ValueError("'host' is required")
    port = int(doc.get("port", 443))
    client_ip = str(doc.get("clientIp", "127.0.0.1"))
    facts = RequestFacts(
        now=now,
        action=doc.get("action"),
        key_id=doc.get("keyId"),
        access_key_id=doc.get("accessKeyId"),
    )
    return host, port, Evidence(client_ip), facts
