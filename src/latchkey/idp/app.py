"""The idp's HTTPS endpoints: OIDC discovery and the JWKS (and a health check)."""

from __future__ import annotations

import json

from latchkey.http.h1 import Request, Response
from latchkey.http.server import Peer
from latchkey.idp.issuer import Issuer


def _json(value: object, status: int = 200) -> Response:
    body = json.dumps(value, indent=2).encode() + b"\n"
    headers = [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")]
    return Response(status, headers, body)


class IdpApp:
    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _json({"error": "method not allowed"}, 405)
        path = request.path
        if path == "/.well-known/openid-configuration":
            return _json(self.issuer.discovery())
        if path == "/.well-known/jwks.json":
            return _json(self.issuer.jwks())
        if path == "/healthz":
            return Response(200, [("Content-Type", "text/plain")], b"ok\n")
        return _json({"error": "not found"}, 404)
