"""latchkey.cli."""

from __future__ import annotations

import sys


def err(message: str) -> int:
    """``latchkey: <message>`` on stderr; exit status 1."""
    print(f"latchkey: {message}", file=sys.stderr)
    return 1
