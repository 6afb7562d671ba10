"""Identify the client workload and find the access policy: pure, over a ``Config``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from latchkey.control.conditions import RequestFacts
from latchkey.control.model import AccessPolicy, ClientWorkload, Config, Evidence, ServerWorkload


class Reason(enum.Enum):
    IDENTITY_NOT_MATCHED = "IdentityNotMatched"
    NO_MATCHING_POLICY = "NoMatchingPolicy"
    CONDITION_FAILED = "ConditionFailed"
    CREDENTIAL_UNAVAILABLE = "CredentialUnavailable"
    OVERLOADED = "Overloaded"  # (not a decision: the edge shed the request)


@dataclass(frozen=True, slots=True)
class Allowed:
    client: ClientWorkload
    policy: AccessPolicy


@dataclass(frozen=True, slots=True)
class Denied:
    reason: Reason
    message: str


def decide(config: Config, server: ServerWorkload, evidence: Evidence | str) -> Allowed | Denied:
    """Which client is calling, and which policy lets it reach ``server`` (default deny)."""
    if isinstance(evidence, str):
        evidence = Evidence(evidence)
    clients = config.clients_matching(evidence)
    if not clients:
        why = "; ".join(
            f"{c.name}: {c.check(evidence)}"
            for c in config.client_workloads
            if any(c.name in p.clients for p in config.policies_for(server.name))
        )
        return Denied(
            Reason.IDENTITY_NOT_MATCHED,
            f"no client workload matches this caller (source address "
            f"{evidence.source_address}) for server workload '{server.name}'"
            + (f" ({why})" if why else ""),
        )
    names = {c.name: c for c in clients}
    unattested: list[str] = []
    for policy in config.policies_for(server.name):
        for client_name in policy.clients:
            if client_name not in names:
                continue
            missing = _unattested(config, policy, evidence)
            if missing is None:
                return Allowed(names[client_name], policy)
            unattested.append(f"access policy '{policy.name}' needs attestation ({missing})")
    if unattested:
        return Denied(Reason.IDENTITY_NOT_MATCHED, "; ".join(unattested))
    listed = ", ".join(sorted(names))
    return Denied(
        Reason.NO_MATCHING_POLICY,
        f"no access policy lets client workload(s) {listed} reach server workload '{server.name}'",
    )


def _unattested(config: Config, policy: AccessPolicy, evidence: Evidence) -> str | None:
    """None when the policy names no trust provider or one of them attests the caller."""
    if not policy.trust_providers:
        return None
    reasons = []
    for name in policy.trust_providers:
        why = config.trust_provider(name).attests(evidence)
        if why is None:
            return None
        reasons.append(why)
    return "; ".join(reasons)


def check_conditions(config: Config, allowed: Allowed, facts: RequestFacts) -> Denied | None:
    """Every access condition of the matched policy must hold for this request."""
    for name in allowed.policy.conditions:
        why = config.access_condition(name).check(facts)
        if why is not None:
            return Denied(
                Reason.CONDITION_FAILED,
                f"access policy '{allowed.policy.name}' requires condition '{name}': {why}",
            )
    return None
