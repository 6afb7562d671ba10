"""IAM users and roles named in a stored resource policy are bound to their unique ids.

AWS turns a user or role ARN in a ``Principal`` into that entity's unique id when the policy is
saved, and shows the ARN again while the entity lives: "If you delete and recreate a user or
role referenced in a trust policy's Principal element, the policy no longer applies" (IAM User
Guide). So does this cloud: ``bind_principals`` stores ``AIDA...`` / ``AROA...`` in place of the
ARN (a caller's principals include its unique id: ``Caller.principals``), ``show_principals``
turns them back into ARNs for GetRole, and into nothing else once the entity is gone (AWS then
shows the unique id, too).

``bind_principals`` also refuses what AWS refuses there, with its words (``Invalid principal in
policy: "AWS":"..."``): an ``AWS`` principal must be ``*``, an account (12 digits or its root
ARN), an existing user or role, or a session of an existing role. ``Federated`` and ``Service``
principals are kept as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from latchkey.aws.policy import MalformedPolicyDocument
from latchkey.store.base import Store

_ACCOUNT = re.compile(r"\d{12}")
_ROOT = re.compile(r"arn:aws:iam::\d{12}:root")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
# What bind_principals stores: the unique ids unique_id() makes for users and roles.
UNIQUE_ID = re.compile(r"A(?:IDA|ROA)[A-Z0-9]{17}")


def _invalid(entry: object) -> MalformedPolicyDocument:
    return MalformedPolicyDocument(f'Invalid principal in policy: "AWS":{json.dumps(entry)}')


def _bound(store: Store, account: str, entry: object) -> object:
    """The entry as stored: a user's or role's unique id, else the entry itself."""
    if not isinstance(entry, str):
        raise _invalid(entry)
    if entry == "*" or _ACCOUNT.fullmatch(entry) or _ROOT.fullmatch(entry):
        return entry
    prefix = f"arn:aws:iam::{account}:"
    if entry.startswith(prefix) and "*" not in entry and "?" not in entry:
        kind, _, rest = entry[len(prefix) :].partition("/")
        name = rest.rsplit("/", 1)[-1]
        if kind == "user" and name:
            user = store.load_user(name)
            if user is not None and user.arn == entry:
                return user.user_id
        if kind == "role" and name:
            role = store.load_role(name)
            if role is not None and role.arn == entry:
                return role.role_id
    session = f"arn:aws:sts::{account}:assumed-role/"
    if entry.startswith(session):
        role_name, _, session_name = entry[len(session) :].partition("/")
        role = store.load_role(role_name) if role_name else None
        if role is not None and role.name == role_name and _SESSION_NAME.fullmatch(session_name):
            return entry  # a role session principal: names a session, never bound
    raise _invalid(entry)


def _rewrite(text: str, change: Callable[[object], object]) -> str:
    """``text`` with ``change`` applied to every ``AWS`` principal entry (of ``Principal`` and
    ``NotPrincipal``); the text itself when nothing changed (its formatting kept)."""
    raw = json.loads(text)
    statements = raw.get("Statement") if isinstance(raw, dict) else None
    items = [statements] if isinstance(statements, dict) else statements
    changed = False
    for statement in items if isinstance(items, list) else []:
        for element in ("Principal", "NotPrincipal"):
            block: Any = statement.get(element) if isinstance(statement, dict) else None
            if not isinstance(block, dict) or "AWS" not in block:
                continue
            entries = block["AWS"]
            listed = entries if isinstance(entries, list) else [entries]
            new = [change(entry) for entry in listed]
            if new != listed:
                block["AWS"] = new if isinstance(entries, list) else new[0]
                changed = True
    return json.dumps(raw, ensure_ascii=False) if changed else text


def bind_principals(store: Store, account: str, text: str) -> str:
    """A valid policy document as it is stored: users and roles named by unique id.
    ``MalformedPolicyDocument`` for a principal AWS would refuse."""
    return _rewrite(text, lambda entry: _bound(store, account, entry))


class PrincipalNames:
    """Unique id -> the ARN of the user or role that has it now; read once, on first need (one
    ListRoles answer shows many trust policies)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._arns: dict[str, str] | None = None

    def arn(self, unique_id: str) -> str | None:
        if self._arns is None:
            users = {u.user_id: u.arn for u in self._store.list_users()}
            roles = {r.role_id: r.arn for r in self._store.list_roles()}
            self._arns = users | roles
        return self._arns.get(unique_id)

    def show(self, text: str) -> str:
        """A stored policy as GetRole shows it: each bound principal as its entity's ARN, or
        as the unique id when that entity is gone."""
        if UNIQUE_ID.search(text) is None:
            return text

        def shown(entry: object) -> object:
            if isinstance(entry, str) and UNIQUE_ID.fullmatch(entry):
                return self.arn(entry) or entry
            return entry

        return _rewrite(text, shown)


def show_principals(store: Store, text: str) -> str:
    return PrincipalNames(store).show(text)
