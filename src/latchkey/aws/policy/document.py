"""Policy documents: JSON text in, frozen dataclasses out (or ``MalformedPolicyDocument``).

One parser serves identity policies (no ``Principal``), resource policies such as KMS key
policies and role trust policies (``Principal`` required); see ``parse_policy``.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from latchkey.aws.policy.conditions import Condition, make_condition

__all__ = [
    "DEFAULT_VERSION",
    "MAX_POLICY_BYTES",
    "VERSIONS",
    "Effect",
    "MalformedPolicyDocument",
    "PolicyDocument",
    "Principal",
    "Statement",
    "parse_policy",
]

MAX_POLICY_BYTES = 32 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")
DEFAULT_VERSION = "2008-10-17"
VARIABLES_VERSION = "2012-10-17"  # the only version with policy variables

_TOP_KEYS = ("Version", "Id", "Statement")
_STATEMENT_KEYS = (
    *("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction"),
    *("Resource", "NotResource", "Condition"),
)
_PRINCIPAL_TYPES = ("AWS", "Federated", "Service")
_ACTION = re.compile(r"[^\s:]+:[^\s:]+")
_T = TypeVar("_T")


class MalformedPolicyDocument(ValueError):
    """The document is not a valid policy; the message says what is wrong and where."""


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True, slots=True)
class Principal:
    """``"Principal": "*"`` (or ``{"AWS": "*"}``) sets ``wildcard``; entries keep their text."""

    wildcard: bool
    aws: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    service: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement. ``resources`` and ``not_resources`` both ``None`` means every resource."""

    sid: str | None
    effect: Effect
    principal: Principal | None
    not_principal: Principal | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()
    # A 2012-10-17 statement whose Resource, NotResource or a condition value holds a policy
    # variable (``${...}``): evaluation substitutes the request's values. Older versions
    # treat ``${...}`` as text, as AWS does.
    variables: bool = False


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    version: str
    statements: tuple[Statement, ...]
    id: str | None = None


def parse_policy(text: str, *, require_principal: bool | None = None) -> PolicyDocument:
    """Parse and validate a policy document.

    ``require_principal``: ``True`` for resource-based and trust policies (every statement
    needs ``Principal`` or ``NotPrincipal``), ``False`` for identity policies (neither is
    allowed), ``None`` to not check. Documents are immutable values: a document parsed before
    is answered from a bounded cache (key policies are read on every KMS call).
    """
    return _parse_cached(text, require_principal)


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str, require_principal: bool | None) -> PolicyDocument:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise MalformedPolicyDocument(
            f"Policy document is {size} bytes, over the {MAX_POLICY_BYTES}-byte limit"
        )
    raw = _load_json(text)
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument("Policy document must be a JSON object")
    _reject_unknown(raw, _TOP_KEYS, "Policy document")
    version = raw.get("Version", DEFAULT_VERSION)
    if version not in VERSIONS:
        raise MalformedPolicyDocument(
            f"Policy document has an invalid Version {_show(version)}; use '2012-10-17'"
        )
    doc_id = raw.get("Id")
    if doc_id is not None and not isinstance(doc_id, str):
        raise MalformedPolicyDocument(f"Policy document has an invalid Id {_show(doc_id)}")
    if "Statement" not in raw:
        raise MalformedPolicyDocument("Policy document has no Statement")
    items = raw["Statement"]
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise MalformedPolicyDocument("Policy document's Statement must be an object or a list")
    statements = tuple(
        _statement(number, item, require_principal, str(version))
        for number, item in enumerate(items, 1)
    )
    return PolicyDocument(version=str(version), statements=statements, id=doc_id)


def _load_json(text: str) -> object:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in pairs:
            if key in result:
                raise MalformedPolicyDocument(f"Policy document has a duplicate key {key!r}")
            result[key] = value
        return result

    def no_constants(name: str) -> object:
        raise MalformedPolicyDocument(f"Policy document is not valid JSON: {name} is not allowed")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedPolicyDocument(
            f"Policy document is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise MalformedPolicyDocument("Policy document is nested too deeply") from None


def _statement(number: int, raw: object, require_principal: bool | None, version: str) -> Statement:
    where = f"Policy statement {number}"
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument(f"{where} must be a JSON object")
    _reject_unknown(raw, _STATEMENT_KEYS, where)

    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyDocument(f"{where} has an invalid Sid {_show(sid)}")
    if "Effect" not in raw:
        raise MalformedPolicyDocument(f"{where} has no Effect")
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(
            f"{where} has an invalid Effect {_show(effect)}; use 'Allow' or 'Deny'"
        )

    _at_most_one(raw, "Principal", "NotPrincipal", where)
    has_principal = "Principal" in raw or "NotPrincipal" in raw
    if require_principal is True and not has_principal:
        raise MalformedPolicyDocument(
            f"{where} has no Principal or NotPrincipal, which this resource-based policy requires"
        )
    if require_principal is False and has_principal:
        name = "Principal" if "Principal" in raw else "NotPrincipal"
        raise MalformedPolicyDocument(
            f"{where} has a {name}, which identity-based policies must not have"
        )

    if "Action" not in raw and "NotAction" not in raw:
        raise MalformedPolicyDocument(f"{where} has neither Action nor NotAction")
    _at_most_one(raw, "Action", "NotAction", where)
    _at_most_one(raw, "Resource", "NotResource", where)

    principal = _optional(raw, "Principal", where, _principal)
    not_principal = _optional(raw, "NotPrincipal", where, _principal)
    actions = _optional(raw, "Action", where, _actions)
    not_actions = _optional(raw, "NotAction", where, _actions)
    resources = _optional(raw, "Resource", where, _strings)
    not_resources = _optional(raw, "NotResource", where, _strings)
    conditions = _conditions(raw.get("Condition", {}), where)
    texts = (*(resources or ()), *(not_resources or ()), *(v for c in conditions for v in c.values))
    return Statement(
        sid=sid,
        effect=Effect(effect),
        principal=principal,
        not_principal=not_principal,
        actions=actions,
        not_actions=not_actions,
        resources=resources,
        not_resources=not_resources,
        conditions=conditions,
        variables=version == VARIABLES_VERSION and any("${" in text for text in texts),
    )


def _optional(
    raw: dict[str, object], name: str, where: str, parse: Callable[[object, str, str], _T]
) -> _T | None:
    return parse(raw[name], name, where) if name in raw else None


def _strings(value: object, name: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise MalformedPolicyDocument(
            f"{where} has an invalid {name}: expected a string or a list of strings"
        )
    if not items:
        raise MalformedPolicyDocument(f"{where} has an empty {name} list")
    if "" in items:
        raise MalformedPolicyDocument(f"{where} has an empty string in {name}")
    return tuple(str(item) for item in items)


def _actions(value: object, name: str, where: str) -> tuple[str, ...]:
    actions = _strings(value, name, where)
    for action in actions:
        if action != "*" and not _ACTION.fullmatch(action):
            raise MalformedPolicyDocument(
                f"{where} has an invalid {name} {action!r}; actions look like 'service:Name'"
            )
    return actions


def _principal(value: object, name: str, where: str) -> Principal:
    if value == "*":
        return Principal(wildcard=True)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicyDocument(
            f'{where} has an invalid {name}: expected "*" or an object such as '
            '{"AWS": "arn:aws:iam::111122223333:root"}'
        )
    for kind in value:
        if kind not in _PRINCIPAL_TYPES:
            raise MalformedPolicyDocument(
                f"{where} has an unsupported {name} type {kind!r}; use AWS, Federated or Service"
            )
    aws, federated, service = (
        _strings(value[kind], f"{name} {kind}", where) if kind in value else ()
        for kind in _PRINCIPAL_TYPES
    )
    return Principal(wildcard="*" in aws, aws=aws, federated=federated, service=service)


def _conditions(raw: object, where: str) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument(f"{where} has an invalid Condition: expected an object")
    conditions: list[Condition] = []
    for operator, block in raw.items():
        if not isinstance(block, dict):
            raise MalformedPolicyDocument(
                f"{where} has an invalid Condition: {operator!r} must map condition keys to values"
            )
        for key, value in block.items():
            try:
                conditions.append(make_condition(operator, key, _condition_values(value)))
            except ValueError as exc:
                raise MalformedPolicyDocument(f"{where} has {exc}") from None
    return tuple(conditions)


def _condition_values(value: object) -> list[str]:
    """Policy condition values as text; ``ValueError`` reads after "Policy statement N has"."""
    items = value if isinstance(value, list) else [value]
    texts: list[str] = []
    for item in items:
        if isinstance(item, bool):
            texts.append("true" if item else "false")
        elif isinstance(item, str):
            texts.append(item)
        elif isinstance(item, int | float):
            texts.append(json.dumps(item))
        else:
            raise ValueError(
                f"an invalid condition value {_show(item)}: expected strings, booleans or numbers"
            )
    return texts


def _at_most_one(raw: dict[str, object], first: str, second: str, where: str) -> None:
    if first in raw and second in raw:
        raise MalformedPolicyDocument(f"{where} has both {first} and {second}; use one")


def _reject_unknown(raw: dict[str, object], known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in known:
            raise MalformedPolicyDocument(f"{where} has an unknown element {key!r}")


def _show(value: object) -> str:
    """A value as it would appear in the message, quoted like the docs: 'Alow'."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def parse_identity_policy(text: str) -> PolicyDocument:
    """An IAM identity (permissions) policy: no Principal, and every statement names resources."""
    doc = parse_policy(text, require_principal=False)
    for number, stmt in enumerate(doc.statements, 1):
        if stmt.resources is None and stmt.not_resources is None:
            raise MalformedPolicyDocument(f"Policy statement {number} must contain resources.")
    return doc


def parse_trust_policy(text: str) -> PolicyDocument:
    """A role trust policy: every statement has a Principal and none names a Resource."""
    doc = parse_policy(text, require_principal=True)
    for number, stmt in enumerate(doc.statements, 1):
        if stmt.resources is not None or stmt.not_resources is not None:
            raise MalformedPolicyDocument(
                f"Policy statement {number} has prohibited field Resource."
            )
    return doc
