"""Configuration as code: render stored objects (yaml, json, table) and plan an apply.

Pure: objects in, text or a plan out. A plan compares canonical specs, so applying what
``latchkey get -o yaml`` printed changes nothing.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml

from latchkey.control.loader import StoredObject, load_stored
from latchkey.control.model import Config
from latchkey.control.schema import KINDS

# Kinds in the order objects are listed and applied (referenced kinds first).
ORDER = (
    "TrustProvider",
    "ServerWorkload",
    "CredentialProvider",
    "ClientWorkload",
    "AccessCondition",
    "AccessPolicy",
)
assert set(ORDER) == set(KINDS)

# Short names people type (`latchkey get sw`), like kubectl's.
ALIASES = {
    "serverworkload": "ServerWorkload",
    "serverworkloads": "ServerWorkload",
    "sw": "ServerWorkload",
    "clientworkload": "ClientWorkload",
    "clientworkloads": "ClientWorkload",
    "cw": "ClientWorkload",
    "credentialprovider": "CredentialProvider",
    "credentialproviders": "CredentialProvider",
    "cp": "CredentialProvider",
    "accesspolicy": "AccessPolicy",
    "accesspolicies": "AccessPolicy",
    "ap": "AccessPolicy",
    "accesscondition": "AccessCondition",
    "accessconditions": "AccessCondition",
    "ac": "AccessCondition",
    "trustprovider": "TrustProvider",
    "trustproviders": "TrustProvider",
    "tp": "TrustProvider",
}


def resolve_kind(text: str) -> str:
    """``sw`` / ``serverworkloads`` / ``ServerWorkload`` -> ``ServerWorkload``."""
    kind = ALIASES.get(text.lower())
    if kind is None:
        raise ValueError(f"unknown kind {text!r}; kinds: {', '.join(ORDER)}")
    return kind


def sort_objects(objects: Iterable[StoredObject]) -> list[StoredObject]:
    return sorted(objects, key=lambda o: (ORDER.index(o.kind), o.name))


def render_yaml(objects: Iterable[StoredObject]) -> str:
    docs = [o.document() for o in sort_objects(objects)]
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def render_json(objects: Iterable[StoredObject]) -> str:
    items = [o.document() for o in sort_objects(objects)]
    return json.dumps({"apiVersion": "latchkey/v1", "kind": "List", "items": items}, indent=2)


def _summary(obj: StoredObject) -> str:
    spec = obj.spec
    if obj.kind == "ServerWorkload":
        return f"{spec.get('host')}:{spec.get('port')} {spec.get('authentication', {})}"
    if obj.kind == "AccessPolicy":
        providers = spec.get("credentialProviders") or [spec.get("credentialProvider")]
        if providers == [None]:
            return f"{spec.get('clients')} -> {spec.get('server')}"
        return f"{spec.get('clients')} -> {spec.get('server')} via {providers}"
    if obj.kind == "CredentialProvider":
        if spec.get("type") == "static":
            if "secretFile" in spec:
                return f"static secret from file {spec['secretFile']}"
            return f"static secret from environment variable {spec.get('secretEnv')}"
        return f"{spec.get('type')} {spec.get('roleArn')}"
    return json.dumps(spec, separators=(",", ":"))[:80]


def render_table(objects: Iterable[StoredObject]) -> str:
    rows = [("KIND", "NAME", "SUMMARY")]
    rows += [(o.kind, o.name, _summary(o)) for o in sort_objects(objects)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows)


class Action(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    name: str
    action: Action

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.action.value}"


def plan(
    current: Sequence[StoredObject], desired: Sequence[StoredObject], *, prune: bool
) -> list[Change]:
    """What applying ``desired`` over ``current`` does (``prune`` deletes what is absent)."""
    have = {(o.kind, o.name): o for o in current}
    want = {(o.kind, o.name): o for o in desired}
    changes = []
    for obj in sort_objects(desired):
        old = have.get((obj.kind, obj.name))
        if old is None:
            action = Action.CREATED
        elif old.spec == obj.spec:
            action = Action.UNCHANGED
        else:
            action = Action.UPDATED
        changes.append(Change(obj.kind, obj.name, action))
    if prune:
        gone = [o for o in sort_objects(current) if (o.kind, o.name) not in want]
        changes += [Change(o.kind, o.name, Action.DELETED) for o in reversed(gone)]
    return changes


def merged(
    current: Sequence[StoredObject], desired: Sequence[StoredObject], *, prune: bool
) -> list[StoredObject]:
    """The objects after the apply."""
    result = {} if prune else {(o.kind, o.name): o for o in current}
    result.update({(o.kind, o.name): o for o in desired})
    return sort_objects(result.values())


def config_of(objects: Sequence[StoredObject]) -> Config:
    """Validate a whole set of objects together (references, duplicates) into a Config."""
    return load_stored(objects)
