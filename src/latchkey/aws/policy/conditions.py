"""Condition operators: one ``Condition`` per (operator, key) pair of a ``Condition`` block.

Both sides are text. Policy values (JSON strings, booleans, numbers) are normalised when the
document is parsed; request values when the ``RequestContext`` is built. An empty tuple of
request values means the key is absent from the request.

Semantics mirror AWS: a missing key makes positive operators false and negated operators
(``StringNotEquals``, ``NotIpAddress``...) true; ``...IfExists`` makes a missing key true;
``Null`` tests presence; ``ForAnyValue:`` / ``ForAllValues:`` quantify over the request values.
"""

from __future__ import annotations

import functools
import ipaddress
import operator as op
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "LITERAL_QMARK",
    "LITERAL_STAR",
    "OPERATORS",
    "Condition",
    "condition_holds",
    "glob_match",
    "make_condition",
]

ANY_VALUE = "ForAnyValue"
ALL_VALUES = "ForAllValues"
_IF_EXISTS = "IfExists"


# A literal ``*`` / ``?`` inside a pattern: what the policy variables ``${*}`` and ``${?}``, and
# the text a variable is replaced with, become (private-use characters, never in policy text).
LITERAL_STAR = "\ue000"
LITERAL_QMARK = "\ue001"
_AS_LITERALS = str.maketrans({"*": LITERAL_STAR, "?": LITERAL_QMARK})


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``*`` matches any run of characters (even none), ``?`` exactly one; nothing else is special
    (``LITERAL_STAR`` / ``LITERAL_QMARK`` in the pattern match a literal ``*`` / ``?``).

    Linear-backtracking matcher (O(len(pattern) * len(value))), so hostile patterns are cheap.
    """
    if pattern == "*":
        return True
    if not pattern.isascii() and (LITERAL_STAR in pattern or LITERAL_QMARK in pattern):
        value = value.translate(_AS_LITERALS)  # isascii() is O(1): no cost for plain patterns
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    p = v = 0
    star, mark = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, v
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p += 1
            v += 1
        elif star >= 0:
            mark += 1
            p, v = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _arn_like(value: str, pattern: str) -> bool:
    """Compare the six colon-separated ARN parts separately, each as a glob."""
    got, want = value.split(":", 5), pattern.split(":", 5)
    if len(got) != 6 or len(want) != 6:
        return glob_match(pattern, value)
    return all(glob_match(w, g) for w, g in zip(want, got, strict=True))


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"-?\d+(\.\d+)?")


def _date(text: str) -> datetime | None:
    """ISO 8601 (naive means UTC) or epoch seconds."""
    text = text.strip()
    try:
        if _EPOCH_SECONDS.fullmatch(text):
            return _EPOCH + timedelta(seconds=float(text))
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _bool(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _ip_in(value: str, cidr: str) -> bool:
    network = _network(cidr)
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return network is not None and address.version == network.version and address in network


_Compare = Callable[[str, str], bool]  # (request value, policy value) -> match


def _ordered(parse: Callable[[str], object], cmp: Callable[[Any, Any], Any]) -> _Compare:
    def compare(request: str, policy: str) -> bool:
        left, right = parse(request), parse(policy)
        return left is not None and right is not None and bool(cmp(left, right))

    return compare


def _anything(_value: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Operator:
    compare: _Compare
    negated: bool = False
    valid: Callable[[str], bool] = _anything  # is this policy value acceptable?
    kind: str = "string"
    glob: bool = False  # policy values are patterns (``*``, ``?``): StringLike, Arn*


def _family(parse: Callable[[str], object], kind: str, prefix: str) -> dict[str, _Operator]:
    def valid(value: str) -> bool:
        return parse(value) is not None

    cmps: dict[str, Callable[[Any, Any], Any]] = {
        "Equals": op.eq,
        "LessThan": op.lt,
        "LessThanEquals": op.le,
        "GreaterThan": op.gt,
        "GreaterThanEquals": op.ge,
    }
    table = {
        prefix + name: _Operator(_ordered(parse, c), False, valid, kind) for name, c in cmps.items()
    }
    table[prefix + "NotEquals"] = _Operator(_ordered(parse, op.eq), True, valid, kind)
    return table


def _is_bool(value: str) -> bool:
    return _bool(value) is not None


def _is_network(value: str) -> bool:
    return _network(value) is not None


def _str_eq(request: str, policy: str) -> bool:
    return request == policy


def _str_eq_ic(request: str, policy: str) -> bool:
    return request.casefold() == policy.casefold()


def _str_like(request: str, policy: str) -> bool:
    return glob_match(policy, request)


OPERATORS: dict[str, _Operator] = {
    "StringEquals": _Operator(_str_eq),
    "StringNotEquals": _Operator(_str_eq, negated=True),
    "StringEqualsIgnoreCase": _Operator(_str_eq_ic),
    "StringNotEqualsIgnoreCase": _Operator(_str_eq_ic, negated=True),
    "StringLike": _Operator(_str_like, glob=True),
    "StringNotLike": _Operator(_str_like, negated=True, glob=True),
    "ArnEquals": _Operator(_arn_like, glob=True),
    "ArnLike": _Operator(_arn_like, glob=True),
    "ArnNotEquals": _Operator(_arn_like, negated=True, glob=True),
    "ArnNotLike": _Operator(_arn_like, negated=True, glob=True),
    **_family(_number, "numeric", "Numeric"),
    **_family(_date, "date", "Date"),
    "Bool": _Operator(_ordered(_bool, op.eq), False, _is_bool, "boolean"),
    "IpAddress": _Operator(_ip_in, False, _is_network, "IP address or CIDR"),
    "NotIpAddress": _Operator(_ip_in, True, _is_network, "IP address or CIDR"),
    "Null": _Operator(_ordered(_bool, op.eq), False, _is_bool, "boolean"),  # see condition_holds
}
"""Base operator names, without ``IfExists`` or a ``ForAnyValue:``/``ForAllValues:`` prefix."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One key tested by one operator, e.g. ``ForAnyValue:StringLikeIfExists`` on a key."""

    operator: str  # as written in the policy
    key: str
    values: tuple[str, ...]  # OR-ed
    base: str  # e.g. "StringNotLike" or "Null"
    if_exists: bool
    qualifier: str | None  # "ForAnyValue", "ForAllValues" or None


def make_condition(operator: str, key: str, values: Sequence[str]) -> Condition:
    """Validate and build; ``ValueError`` messages read after "Policy statement N has ..."."""
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", ANY_VALUE, ALL_VALUES):
        raise ValueError(f"an unknown condition operator {operator!r}")
    if_exists = base.endswith(_IF_EXISTS) and base != _IF_EXISTS
    if if_exists:
        base = base[: -len(_IF_EXISTS)]
    if base == "Null":
        if if_exists or qualifier:
            raise ValueError(
                f"an unknown condition operator {operator!r} (Null takes no modifiers)"
            )
    elif base not in OPERATORS:
        raise ValueError(f"an unknown condition operator {operator!r}")
    kind, valid = OPERATORS[base].kind, OPERATORS[base].valid
    if not key:
        raise ValueError(f"an empty condition key under {operator!r}")
    if not values:
        raise ValueError(f"no values for condition key {key!r} under {operator!r}")
    for value in values:
        if not valid(value):
            raise ValueError(
                f"an invalid {kind} value {value!r} for condition key {key!r} under {operator!r}"
            )
    return Condition(operator, key, tuple(values), base, if_exists, qualifier or None)


def condition_holds(cond: Condition, request_values: tuple[str, ...]) -> bool:
    """Does ``cond`` hold given the request's values for its key (``()`` = key absent)?"""
    if cond.base == "Null":
        absent = not request_values
        return any(_bool(v) == absent for v in cond.values)
    operator = OPERATORS[cond.base]
    if not request_values:
        if cond.if_exists or cond.qualifier == ALL_VALUES:
            return True
        if cond.qualifier == ANY_VALUE:
            return False
        return operator.negated

    def positive(value: str) -> bool:
        return any(operator.compare(value, p) for p in cond.values)

    if cond.qualifier is None:
        return any(positive(v) for v in request_values) != operator.negated
    results = (positive(v) != operator.negated for v in request_values)
    return any(results) if cond.qualifier == ANY_VALUE else all(results)
