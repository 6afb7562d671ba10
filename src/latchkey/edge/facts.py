"""What an access condition may look at in a request, read from the request (pure)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from urllib.parse import parse_qsl

from latchkey.control.conditions import RequestFacts
from latchkey.edge.sign import placeholder_access_key, scope_of
from latchkey.http.h1 import Request


def request_facts(request: Request, host: str, now: dt.datetime) -> RequestFacts:
    """The AWS action (``kms:Encrypt``) and the KeyId a request names, when it names them."""
    _region, service = scope_of(request, host)
    action: str | None = None
    key_id: str | None = None
    target = request.header("X-Amz-Target")
    if target and "." in target:  # JSON protocols: "TrentService.Encrypt"
        action = f"{service}:{target.rsplit('.', 1)[1]}"
        try:
            body = json.loads(request.body) if request.body else {}
        except (ValueError, UnicodeDecodeError):
            body = {}
        if isinstance(body, dict) and isinstance(body.get("KeyId"), str):
            key_id = body["KeyId"]
    else:  # query protocols: Action in the query string or the form body
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        content_type = (request.header("Content-Type") or "").lower()
        if "x-www-form-urlencoded" in content_type:
            with contextlib.suppress(UnicodeDecodeError):
                params.update(parse_qsl(request.body.decode(), keep_blank_values=True))
        if params.get("Action"):
            action = f"{service}:{params['Action']}"
    return RequestFacts(
        now=now, action=action, key_id=key_id, access_key_id=placeholder_access_key(request)
    )
