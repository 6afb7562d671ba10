"""Static credentials into a request: the headers to send upstream (pure, no I/O).

The workload holds no secret, so whatever it sent in ``Authorization`` (or in the configured
header) is a placeholder: it is removed and the credential provider's secret put in its place.

- ``bearer``: ``Authorization: Bearer <secret>``
- ``header``: ``<Header>: <secret>``
- ``basic``:  ``Authorization: Basic base64(<user>:<password>)`` (the secret is
  ``user:password``, UTF-8, RFC 7617)
- ``none``:   nothing is added or removed

The placeholder may name the credential provider to use (``Bearer audit``, ``X-Api-Key:
audit``, or the Basic user ``audit``), as an AWS placeholder's access key id does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from latchkey.control.model import AuthScheme

INJECTING = frozenset({AuthScheme.BEARER, AuthScheme.HEADER, AuthScheme.BASIC})


class SecretError(ValueError):
    """A secret that cannot be sent under a scheme; the message never quotes it."""


def _header_for(scheme: AuthScheme, header: str | None) -> str:
    if scheme is AuthScheme.HEADER:
        if not header:
            raise ValueError("scheme header needs a header name")
        return header
    if scheme in (AuthScheme.BEARER, AuthScheme.BASIC):
        return "Authorization"
    raise ValueError(f"scheme {scheme.value} injects no static secret")


def check_secret(scheme: AuthScheme, secret: str) -> str | None:
    """Why ``secret`` cannot be sent under ``scheme`` (without quoting it), or None."""
    if not secret:
        return "it is empty"
    if scheme is AuthScheme.BASIC:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in secret):
            return "it holds a control character (a line break?)"
        if ":" not in secret:
            return "it is not user:password"
        return None
    if any(not (0x20 <= ord(c) <= 0x7E or c == "\t") for c in secret):
        return "it holds a control character or a non-ASCII character"
    return None


def _value(scheme: AuthScheme, secret: str) -> str:
    if scheme is AuthScheme.BEARER:
        return f"Bearer {secret}"
    if scheme is AuthScheme.BASIC:
        return "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")
    return secret


def inject(
    headers: Iterable[tuple[str, str]],
    scheme: AuthScheme,
    secret: str,
    header: str | None = None,
) -> list[tuple[str, str]]:
    """``headers`` with the client's ``Authorization`` and ``header`` removed and the secret
    added as ``scheme`` wants it. :class:`SecretError` when the secret does not fit."""
    headers = list(headers)
    if scheme is AuthScheme.NONE:
        return headers
    name = _header_for(scheme, header)
    why = check_secret(scheme, secret)
    if why is not None:
        raise SecretError(f"the secret cannot be sent as {scheme.value} credentials: {why}")
    drop = {"authorization", name.lower()}
    kept = [(k, v) for k, v in headers if k.lower() not in drop]
    return [*kept, (name, _value(scheme, secret))]


def _header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers if k.lower() == wanted), None)


def placeholder(
    headers: Iterable[tuple[str, str]], scheme: AuthScheme, header: str | None = None
) -> str | None:
    """What the client sent where the secret goes: the bearer token, the named header's value
    or the Basic user name. It may name a credential provider; it is never forwarded."""
    if scheme is AuthScheme.HEADER:
        value = _header_value(headers, header or "")
        return value.strip() if value else None
    if scheme not in (AuthScheme.BEARER, AuthScheme.BASIC):
        return None
    auth = (_header_value(headers, "Authorization") or "").strip()
    kind, _, rest = auth.partition(" ")
    rest = rest.strip()
    if scheme is AuthScheme.BEARER:
        return (rest or None) if kind.lower() == "bearer" else None
    if kind.lower() != "basic" or not rest:
        return None
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None
