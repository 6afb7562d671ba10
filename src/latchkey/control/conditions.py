"""Access conditions: extra rules an access policy can demand (pure; time is passed in).

A time window (timezone, weekdays, HH:MM ranges) and, for AWS server workloads, which
actions and which keys a request may name — finer than any IAM role the credentials carry.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HH_MM = re.compile(r"([0-9]{1,2}):([0-9]{2})", re.ASCII)

# Actions that name no key: a keys rule does not apply to them. Any other action that names
# no key is refused under a keys rule (e.g. Decrypt without KeyId: the key is unknown here).
KEYLESS_ACTIONS = frozenset(
    {
        "kms:createkey",
        "kms:listkeys",
        "kms:listaliases",
        "kms:generaterandom",
        "kms:listretirablegrants",
        "kms:describecustomkeystores",
        "kms:createcustomkeystore",
    }
)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a condition may look at in one request."""

    now: dt.datetime  # aware
    action: str | None = None  # "kms:Encrypt", from X-Amz-Target or Action
    key_id: str | None = None  # the KeyId the request names, as sent
    access_key_id: str | None = None  # the placeholder access key id the client signed with
    # Why the action or key cannot be told for sure (named twice, differently): a request an
    # AWS-request rule must refuse, whatever it allows.
    ambiguous: str | None = None


@dataclass(frozen=True, slots=True)
class TimeWindow:
    timezone: str
    days: frozenset[int]  # 0 = Monday
    ranges: tuple[tuple[int, int], ...]  # minutes after midnight, [start, end); may wrap

    def check(self, now: dt.datetime) -> str | None:
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        for start, end in self.ranges:
            if start < end:
                if day in self.days and start <= minute < end:
                    return None
            # A range that wraps past midnight belongs to the day it starts on.
            elif (day in self.days and minute >= start) or (
                (day - 1) % 7 in self.days and minute < end
            ):
                return None
        shown = ", ".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in self.ranges)
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{local:%a %H:%M} {self.timezone} is outside the time window ({days} {shown})"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_range(text: str) -> tuple[int, int]:
    """``"09:00-17:30"`` -> ``(540, 1050)``; raises ValueError."""
    try:
        start, end = text.split("-")
        values = []
        for part in (start, end):
            # (ASCII digits only: str.isdigit and int() also take "٠٩", and "0009" is no HH)
            match = _HH_MM.fullmatch(part.strip())
            if match is None:
                raise ValueError
            h, m = int(match[1]), int(match[2])
            if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m != 0):
                raise ValueError
            values.append(h * 60 + m)
    except ValueError:
        raise ValueError(f"invalid time range {text!r}: expected HH:MM-HH:MM") from None
    if values[0] == values[1]:
        raise ValueError(f"invalid time range {text!r}: empty")
    return values[0], values[1]


@dataclass(frozen=True, slots=True)
class AwsRequestRule:
    """Which AWS actions and keys a request may name (globs, actions case-insensitive)."""

    actions: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def check(
        self, action: str | None, key_id: str | None, ambiguous: str | None = None
    ) -> str | None:
        if ambiguous is not None:
            return ambiguous
        if self.actions:
            if action is None:
                return "the request names no AWS action"
            if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions):
                return f"action {action} is not one of {', '.join(self.actions)}"
        if not self.keys or (action is not None and action.lower() in KEYLESS_ACTIONS):
            return None
        if key_id is None:
            return f"the request names no key (pass KeyId); allowed keys: {', '.join(self.keys)}"
        if not any(fnmatch.fnmatchcase(key_id, pattern) for pattern in self.keys):
            return f"key {key_id} is not one of {', '.join(self.keys)}"
        return None


@dataclass(frozen=True, slots=True)
class AccessCondition:
    name: str
    time_window: TimeWindow | None = None
    aws: AwsRequestRule | None = None

    def check(self, facts: RequestFacts) -> str | None:
        """None when the request meets every part of the condition, else why not."""
        if self.time_window is not None:
            why = self.time_window.check(facts.now)
            if why is not None:
                return why
        if self.aws is not None:
            return self.aws.check(facts.action, facts.key_id, facts.ambiguous)
        return None
