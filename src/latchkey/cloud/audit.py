"""CloudTrail-shaped audit events, one JSON line per call, written before the answer.

Fail closed: if the event cannot be written the call fails. Events never hold plaintext,
secrets or tokens; callers pass only request parameters that are safe to record.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AuditError(Exception):
    """The audit trail could not record an event; the call must fail."""


@dataclass(slots=True)
class AuditEvent:
    event_source: str  # "kms.amazonaws.com"
    event_name: str  # "Encrypt"
    region: str
    source_ip: str
    user_agent: str
    request_id: str
    event_time: str
    user_identity: dict[str, Any] = field(default_factory=dict)
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    read_only: bool | None = None
    resources: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": self.user_identity,
            "eventTime": self.event_time,
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "requestParameters": self.request_parameters,
            "responseElements": self.response_elements,
            "requestID": self.request_id,
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "eventCategory": "Management",
        }
        if self.read_only is not None:
            event["readOnly"] = self.read_only
        if self.resources:
            event["resources"] = self.resources
        if self.error_code is not None:
            event["errorCode"] = self.error_code
            event["errorMessage"] = self.error_message or ""
        return event


class AuditLog:
    """Appends events to a JSON-lines file (flushed and fsynced before returning)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        line = json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True)
        try:
            with self._lock:
                self._file.write(line + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
        except (OSError, ValueError) as exc:
            raise AuditError(f"audit write failed: {exc.__class__.__name__}") from None

    def close(self) -> None:
        with self._lock:
            self._file.close()
