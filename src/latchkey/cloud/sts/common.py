"""What the STS operations share: the call, AWS-worded validation, and the session parameters
(``RoleSessionName``, ``DurationSeconds``, ``SourceIdentity``, ``Policy``, ``PolicyArns``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import MalformedPolicyDocument, parse_identity_policy
from latchkey.clock import Clock
from latchkey.cloud.identity import Caller
from latchkey.crypto.rootkey import RootKey
from latchkey.issuerkeys import JwksFetcher
from latchkey.store.base import Store

NAME_PATTERN = r"[\w+=,.@-]*"
_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]*")  # \w, but ASCII only
_POLICY_TEXT = re.compile(r"[\u0009\u000A\u000D\u0020-\u00FF]+")
_POLICY_ARN = re.compile(r"arn:aws:iam::(?:\d{12}|aws):policy/[\w+=,.@/-]+", re.ASCII)
_POLICY_ARN_KEY = re.compile(r"PolicyArns\.member\.([1-9]\d{0,3})\.arn")
MAX_POLICY_CHARS = 2048
MAX_SOURCE_IDENTITY = 256
MAX_POLICY_ARNS = 10
# The packed (compressed) form of the session policies must fit this budget; AWS's budget is
# not published, so ours approximates it: zlib of the minified policy and the ARNs, at most
# 512 bytes (AWS is stricter still for policies of many actions; this errs on the lenient side).
PACKED_POLICY_BUDGET = 512
UNSUPPORTED_PREFIXES = ("Tags.", "TransitiveTagKeys.", "ProvidedContexts.")


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller | None  # None for the unsigned AssumeRoleWithWebIdentity
    store: Store
    root_key: RootKey
    clock: Clock
    jwks: JwksFetcher
    account: str
    params: Mapping[str, str]
    # What the app knows of the request, for the unsigned AssumeRoleWithWebIdentity's trust
    # policy (a signed call's caller carries them): ``None`` leaves the condition key absent.
    source_ip: str | None = None  # aws:SourceIp
    secure_transport: bool | None = None  # aws:SecureTransport
    region: str | None = None  # aws:RequestedRegion
    # AssumeRoleWithWebIdentity fills it once the token's signature verified (provider ARN,
    # audience, subject), so the event of a call refused after that still names the user.
    verified: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _member(name: str) -> str:
    return name[0].lower() + name[1:]


class Problems:
    """Constraint failures, raised together as one ``ValidationError`` in AWS's words:
    ``1 validation error detected: Value 'a' at 'roleSessionName' failed to satisfy
    constraint: Member must have length greater than or equal to 2``."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, name: str, value: str | None, constraint: str, *, show: bool = True) -> None:
        if value is None:
            shown = "Value null"
        elif show:
            shown = f"Value '{value}'"
        else:  # sensitive members (the web identity token) are never echoed
            shown = "Value"
        self._items.append(
            f"{shown} at '{_member(name)}' failed to satisfy constraint: Member {constraint}"
        )

    def raise_any(self) -> None:
        if self._items:
            count = len(self._items)
            noun = "error" if count == 1 else "errors"
            raise AwsError(
                "ValidationError", f"{count} validation {noun} detected: " + "; ".join(self._items)
            )

    def text(
        self,
        params: Mapping[str, str],
        name: str,
        *,
        low: int,
        high: int,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        show: bool = True,
    ) -> str | None:
        value = params.get(name)
        if value is None:
            if required:
                self.add(name, None, "must not be null")
            return None
        if len(value) < low:
            self.add(name, value, f"must have length greater than or equal to {low}", show=show)
        elif len(value) > high:
            self.add(name, value, f"must have length less than or equal to {high}", show=show)
        elif pattern is not None and not pattern.fullmatch(value):
            self.add(
                name, value, f"must satisfy regular expression pattern: {pattern_text}", show=show
            )
        return value

    def number(self, params: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            self.add(name, raw, "must be a number")
            return None
        if value < low:
            self.add(name, raw, f"must have value greater than or equal to {low}")
        elif value > high:
            self.add(name, raw, f"must have value less than or equal to {high}")
        return value


def session_name(problems: Problems, params: Mapping[str, str]) -> str:
    value = problems.text(
        params, "RoleSessionName", low=2, high=64, required=True, pattern=_NAME,
        pattern_text=NAME_PATTERN,
    )  # fmt: skip
    return value or ""


def source_identity(problems: Problems, value: str | None) -> None:
    """2-256 characters of ``[\\w+=,.@-]`` (the STS model's ``sourceIdentityType``; so never
    the reserved ``aws:`` prefix)."""
    if value is not None:
        problems.text(
            {"SourceIdentity": value}, "SourceIdentity", low=2, high=MAX_SOURCE_IDENTITY,
            pattern=_NAME, pattern_text=NAME_PATTERN,
        )  # fmt: skip


def policy_arns(problems: Problems, params: Mapping[str, str]) -> list[str]:
    """``PolicyArns.member.N.arn``, N = 1..n with no gaps; any other ``PolicyArns.`` key is an
    error (never silently dropped: a dropped ARN could turn a restricted session into a full
    one)."""
    found: dict[int, str] = {}
    for key, value in params.items():
        if not key.startswith("PolicyArns."):
            continue
        match = _POLICY_ARN_KEY.fullmatch(key)
        if match is None:
            problems.add("PolicyArns", None, f"must be a list of policy ARNs; unexpected {key}")
            return []
        found[int(match.group(1))] = value
    if sorted(found) != list(range(1, len(found) + 1)):
        problems.add("PolicyArns", None, "must be a list numbered from 1 without gaps")
        return []
    if len(found) > MAX_POLICY_ARNS:
        problems.add(
            "PolicyArns", None, f"must have length less than or equal to {MAX_POLICY_ARNS}"
        )
        return []
    arns = [found[index] for index in sorted(found)]
    for arn in arns:
        if not 20 <= len(arn) <= 2048 or not _POLICY_ARN.fullmatch(arn):
            problems.add(
                "PolicyArns.member.arn", arn,
                r"must be an IAM policy ARN: arn:aws:iam::(\d{12}|aws):policy/[\w+=,.@/-]+",
            )  # fmt: skip
    return arns


def session_policy(problems: Problems, params: Mapping[str, str]) -> str | None:
    return problems.text(
        params, "Policy", low=1, high=MAX_POLICY_CHARS, pattern=_POLICY_TEXT,
        pattern_text=r"[\u0009\u000A\u000D\u0020-\u00FF]+",
    )  # fmt: skip


def refuse_unsupported(params: Mapping[str, str]) -> None:
    """Session tags and context assertions are not implemented: refuse, never ignore."""
    for key in params:
        if key.startswith(UNSUPPORTED_PREFIXES):
            name = key.split(".", 1)[0]
            raise AwsError("ValidationError", f"{name} is not supported by latchkey's local STS")
    if "SerialNumber" in params or "TokenCode" in params:
        raise AwsError(
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code. "
            "(latchkey's local STS has no MFA devices.)",
            403,
        )


def check_session_policies(policy: str | None, arns: list[str]) -> int | None:
    """Validate the inline session policy; return PackedPolicySize (percent) or ``None`` when
    there are no session policies. ``MalformedPolicyDocument`` / ``PackedPolicyTooLarge``."""
    if policy is None and not arns:
        return None
    parts: list[str] = []
    if policy is not None:
        try:
            parse_identity_policy(policy)
        except MalformedPolicyDocument as exc:
            raise AwsError("MalformedPolicyDocument", str(exc)) from None
        parts.append(json.dumps(json.loads(policy), separators=(",", ":")))
    parts.extend(arns)
    packed = len(zlib.compress("\n".join(parts).encode("utf-8"), 9))
    percent = max(1, math.ceil(packed * 100 / PACKED_POLICY_BUDGET))
    if percent > 100:
        raise AwsError(
            "PackedPolicyTooLarge",
            f"Packed policy consumes {percent}% of allotted space, please use smaller policy.",
        )
    return percent


def session_policy_context(policy: str | None, arns: list[str]) -> dict[str, list[str]]:
    """The session_context members the authorizer intersects with; absent when not given."""
    context: dict[str, list[str]] = {}
    if policy is not None:
        context["session_policies"] = [policy]
    if arns:
        context["session_policy_arns"] = list(arns)
    return context
