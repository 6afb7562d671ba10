"""What an access condition may look at in a request, read from the request (pure)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qsl

from latchkey.control.conditions import RequestFacts
from latchkey.edge.sign import placeholder_access_key, scope_of
from latchkey.http.h1 import Request


class _TwiceNamed(ValueError):
    """A JSON body names the same member twice: which one the service reads is unknown."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _TwiceNamed(name)
        out[name] = value
    return out


def request_facts(request: Request, host: str, now: dt.datetime) -> RequestFacts:
    """The AWS action (``kms:Encrypt``) and the KeyId a request names, when it names them.

    The body must have been read (a streamed body is read before conditions that look at it).
    A request that names its action or key twice, differently, is ``ambiguous``: the edge
    cannot know which one the service acts on, so no rule can vouch for it.
    """
    _region, service = scope_of(request, host)
    action: str | None = None
    key_id: str | None = None
    ambiguous: str | None = None
    target = request.header("X-Amz-Target")
    if target and "." in target:  # JSON protocols: "TrentService.Encrypt"
        action = f"{service}:{target.rsplit('.', 1)[1]}"
        try:
            body = json.loads(request.body, object_pairs_hook=_pairs) if request.body else {}
        except _TwiceNamed:
            body = {}
            ambiguous = "the request body names a member more than once"
        except (ValueError, UnicodeDecodeError):
            body = {}
        if isinstance(body, dict) and isinstance(body.get("KeyId"), str):
            key_id = body["KeyId"]
    else:  # query protocols: Action in the query string or the form body
        params = parse_qsl(request.query, keep_blank_values=True)
        content_type = (request.header("Content-Type") or "").lower()
        if "x-www-form-urlencoded" in content_type:
            with contextlib.suppress(UnicodeDecodeError):
                params += parse_qsl(request.body.decode(), keep_blank_values=True)
        actions = {value for name, value in params if name == "Action"}
        if len(actions) > 1:  # (the values are not echoed: they are the client's)
            ambiguous = "the request names more than one Action"
        elif actions and (named := actions.pop()):
            action = f"{service}:{named}"
    return RequestFacts(
        now=now,
        action=action,
        key_id=key_id,
        access_key_id=placeholder_access_key(request),
        ambiguous=ambiguous,
    )
