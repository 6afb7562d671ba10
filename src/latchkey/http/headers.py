"""Header lists as HTTP messages carry them: ``[(name, value), ...]``, names in any case. Pure."""

from __future__ import annotations

from collections.abc import Iterable


def index_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Lowercase name -> every value of that header, in order."""
    index: dict[str, list[str]] = {}
    for name, value in headers:
        lname = name.lower()
        values = index.get(lname)
        if values is None:
            index[lname] = [value]
        else:
            values.append(value)
    return index
