"""Why would this caller be allowed or refused? The edge's own decision, step by step.

``explain`` calls the very functions the edge calls (``decide``, ``check_conditions``), then
adds the detail an operator needs: every client workload and why it did or did not match.
"""

from __future__ import annotations

from dataclasses import dataclass

from latchkey.control.conditions import RequestFacts
from latchkey.control.model import AuthScheme, Config, Evidence
from latchkey.edge.decide import Allowed, Denied, check_conditions, decide


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # "server workload", "identity", "policy", "condition", "credentials"
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    steps: tuple[Step, ...]
    outcome: str  # "allowed", "denied", "tunnelled"
    reason: str | None = None  # the edge's x-latchkey-reason when denied

    def render(self) -> str:
        lines = [f"{'PASS' if s.ok else 'FAIL'}  {s.name:<16} {s.detail}" for s in self.steps]
        verdict = self.outcome.upper() + (f" ({self.reason})" if self.reason else "")
        return "\n".join([*lines, verdict])


def explain(
    config: Config, *, host: str, port: int, evidence: Evidence, facts: RequestFacts
) -> Explanation:
    steps: list[Step] = []
    server = config.server_workload_for(host, port)
    if server is None:
        steps.append(Step("server workload", False, f"{host}:{port} is no server workload"))
        return Explanation(tuple(steps), "tunnelled")
    steps.append(Step("server workload", True, f"{host}:{port} is ServerWorkload '{server.name}'"))
    for client in config.client_workloads:
        why = client.check(evidence)
        detail = f"ClientWorkload '{client.name}'" + (f": {why}" if why else " matches")
        steps.append(Step("identity", why is None, detail))

    decision = decide(config, server, evidence)
    if isinstance(decision, Denied):
        steps.append(Step("policy", False, decision.message))
        return Explanation(tuple(steps), "denied", decision.reason.value)
    assert isinstance(decision, Allowed)
    steps.append(
        Step(
            "policy",
            True,
            f"AccessPolicy '{decision.policy.name}' lets '{decision.client.name}' reach "
            f"'{server.name}'",
        )
    )
    for name in decision.policy.conditions:
        why = config.access_condition(name).check(facts)
        steps.append(
            Step("condition", why is None, f"'{name}'" + (f": {why}" if why else " holds"))
        )
    failed = check_conditions(config, decision, facts)
    if failed is not None:
        return Explanation(tuple(steps), "denied", failed.reason.value)
    chosen = decision.policy.select_provider(facts.access_key_id)
    if chosen is None or server.auth_scheme is AuthScheme.NONE:
        steps.append(Step("credentials", True, "scheme none: the request goes as it is"))
        return Explanation(tuple(steps), "allowed")
    provider = config.credential_provider(chosen)
    steps.append(
        Step(
            "credentials",
            True,
            f"CredentialProvider '{provider.name}' ({provider.type}): {provider.describe()}",
        )
    )
    return Explanation(tuple(steps), "allowed")
