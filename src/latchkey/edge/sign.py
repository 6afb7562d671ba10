"""Re-signing a client's request with real credentials (pure: time is passed in)."""

from __future__ import annotations

import datetime as dt

from latchkey.aws import sigv4
from latchkey.control.model import normalize_host
from latchkey.http.h1 import Request, end_to_end

# Headers of the client's placeholder signature: removed before re-signing.
PLACEHOLDER_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


def scope_of(request: Request, host: str) -> tuple[str, str]:
    """(region, service): from the placeholder credential scope, else from the host name."""
    auth = request.header("Authorization") or ""
    if "Credential=" in auth:
        cred = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
        parts = cred.split("/")
        if len(parts) == 5 and parts[4] == "aws4_request":
            return parts[2], parts[3]
    name = normalize_host(host)
    for suffix in (".amazonaws.com.cn", ".amazonaws.com"):
        if name.endswith(suffix):
            labels = name[: -len(suffix)].split(".")
            # service.region.amazonaws.com, or service.amazonaws.com (global: us-east-1)
            if len(labels) >= 2:
                return labels[1], labels[0]
            return "us-east-1", labels[0]
    return "us-east-1", name.split(".", 1)[0]


def placeholder_access_key(request: Request) -> str | None:
    """The access key id of the client's placeholder signature (it selects a provider)."""
    auth = request.header("Authorization") or ""
    if "Credential=" not in auth:
        return None
    return auth.split("Credential=", 1)[1].split("/", 1)[0].strip() or None


def resign(
    request: Request, creds: sigv4.Credentials, *, host: str, now: dt.datetime
) -> list[tuple[str, str]]:
    """The headers to send upstream: placeholder auth and hop-by-hop removed, signed anew."""
    region, service = scope_of(request, host)
    kept = tuple(
        (k, v)
        for k, v in end_to_end(request.headers)
        if k.lower() not in PLACEHOLDER_HEADERS and k.lower() != "content-length"
    )
    if not any(k.lower() == "host" for k, _ in kept):
        kept = (("Host", host), *kept)
    unsigned = sigv4.HttpRequest(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=kept,
        body=request.body,
    )
    signed = sigv4.sign_request_headers(unsigned, creds, region=region, service=service, now=now)
    return list(signed)
