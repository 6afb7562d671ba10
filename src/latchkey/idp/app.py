"""The idp's HTTPS endpoints: OIDC discovery and the JWKS (and a health check).

Served at the root and under the issuer URL's path, so that an issuer such as
``https://idp.example.com/latchkey`` works behind a reverse proxy whether or not it strips the
prefix. Both documents may be cached for 5 minutes (``Cache-Control: max-age=300``); a rotated
key stays in the JWKS for its overlap, which should be longer than that.
"""

from __future__ import annotations

import json

from latchkey.http.h1 import Request, Response
from latchkey.http.server import App, Peer
from latchkey.idp.issuer import Issuer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
CACHE_CONTROL = "max-age=300"


def _json(value: object, status: int = 200, cache: bool = False) -> Response:
    body = json.dumps(value, indent=2).encode() + b"\n"
    headers = [("Content-Type", "application/json")]
    headers.append(("Cache-Control", CACHE_CONTROL if cache else "no-store"))
    return Response(status, headers, body)


class IdpApp:
    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer

    def _route(self, path: str) -> str:
        prefix = self.issuer.path
        if prefix and path.startswith(prefix + "/"):
            return path[len(prefix) :]
        return path

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _json({"error": "method not allowed"}, 405)
        path = self._route(request.path)
        if path == DISCOVERY_PATH:
            return _json(self.issuer.discovery(), cache=True)
        if path == JWKS_PATH:
            return _json(self.issuer.jwks(), cache=True)
        if path == "/healthz":
            return Response(200, [("Content-Type", "text/plain")], b"ok\n")
        return _json({"error": "not found"}, 404)


class DeferredIdpApp:
    """An app whose handler is set after the listener is bound (the idp needs its own URL)."""

    def __init__(self) -> None:
        self.target: App | None = None

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if self.target is None:
            return Response(503, [("Content-Type", "text/plain")], b"starting\n")
        return await self.target(request, peer)
