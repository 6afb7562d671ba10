"""``--since`` / ``?since=``: a moment given as a duration ago or as an ISO 8601 time.

The same forms ``latchkey audit --since`` takes, kept to the microsecond: events at the edge
carry fractions of a second, and one recorded in the same second must not be lost.
"""

from __future__ import annotations

import datetime as dt
import re

DURATION = re.compile(r"(\d+)([smhd])", re.ASCII)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """``90s`` / ``15m`` / ``1h`` / ``2d`` before ``now``, or an ISO 8601 time (``Z`` or an
    offset; UTC when it gives neither), as an aware UTC time. ValueError says what it takes."""
    value = text.strip()
    match = DURATION.fullmatch(value)
    if match:
        try:
            return now.astimezone(dt.UTC) - dt.timedelta(seconds=int(match[1]) * UNITS[match[2]])
        except OverflowError:
            raise ValueError(f"duration {text!r} is too long") from None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time (2026-11-28T10:00:00Z) or a duration like 90s, 15m, "
            f"1h, 2d; got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC)
    except OverflowError:  # (0001-01-01T00:00+01:00)
        raise ValueError(f"time {text!r} is out of range") from None
