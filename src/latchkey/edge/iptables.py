"""The iptables/ip6tables rules that send workloads' outgoing TCP to the transparent edge.

Sans-IO: :func:`redirect_rules` returns argument lists; nothing is run here. Each rule is one
``-t nat ... OUTPUT`` entry (traffic this machine's processes originate). The first rule lets
the edge's own uid through untouched: the edge connects to the original destinations itself,
and without that exception its upstream connections would be redirected back to it.
"""

from __future__ import annotations

from dataclasses import dataclass

TOOLS = {4: "iptables", 6: "ip6tables"}


class RuleError(ValueError):
    """The requested rule set would not work (e.g. it redirects the edge's own uid)."""


@dataclass(frozen=True, slots=True)
class RedirectPlan:
    """Whose traffic to which ports goes to the edge's transparent port."""

    edge_port: int
    edge_uid: int
    ports: tuple[int, ...] = (443,)
    uids: tuple[int, ...] = ()  # empty: every uid except the edge's
    ipv6: bool = False

    def __post_init__(self) -> None:
        for port in (self.edge_port, *self.ports):
            if not 0 < port < 65536:
                raise RuleError(f"port {port} is outside 1..65535")
        if not self.ports:
            raise RuleError("no port to redirect")
        for uid in (self.edge_uid, *self.uids):
            if uid < 0:
                raise RuleError(f"uid {uid} is negative")
        if self.edge_uid in self.uids:
            raise RuleError(
                f"uid {self.edge_uid} is the edge's own: its upstream connections would loop "
                "back to it; run the edge as another user (--edge-uid)"
            )


def redirect_rules(plan: RedirectPlan, *, delete: bool = False) -> list[list[str]]:
    """The commands, in order (``delete``: the ones that remove the same rules)."""
    action = "-D" if delete else "-A"
    families = (4, 6) if plan.ipv6 else (4,)
    rules: list[list[str]] = []
    for family in families:
        head = [TOOLS[family], "-t", "nat", action, "OUTPUT", "-p", "tcp", "-m", "owner"]
        rules.append([*head, "--uid-owner", str(plan.edge_uid), "-j", "RETURN"])
        redirect = ["-j", "REDIRECT", "--to-ports", str(plan.edge_port)]
        for port in dict.fromkeys(plan.ports):
            if plan.uids:
                for uid in dict.fromkeys(plan.uids):
                    match = ["--uid-owner", str(uid), "--dport", str(port)]
                    rules.append([*head, *match, *redirect])
            else:
                rules.append([*head[:7], "--dport", str(port), *redirect])
    return rules
