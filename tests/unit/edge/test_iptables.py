"""The transparent-mode rules: their exact form, the edge's own uid first, and refusals."""

from __future__ import annotations

import pytest

from latchkey.cli.main import main
from latchkey.edge.iptables import RedirectPlan, RuleError, redirect_rules


def joined(plan: RedirectPlan, **kw: bool) -> list[str]:
    return [" ".join(rule) for rule in redirect_rules(plan, **kw)]


def test_one_uid_one_port() -> None:
    assert joined(RedirectPlan(edge_port=8001, edge_uid=990, uids=(1000,))) == [
        "iptables -t nat -A OUTPUT -p tcp -m owner --uid-owner 990 -j RETURN",
        "iptables -t nat -A OUTPUT -p tcp -m owner --uid-owner 1000 --dport 443 "
        "-j REDIRECT --to-ports 8001",
    ]


def test_uids_ports_and_ipv6() -> None:
    plan = RedirectPlan(
        edge_port=9001, edge_uid=990, ports=(443, 80, 443), uids=(1000, 1001), ipv6=True
    )
    rules = joined(plan)
    assert len(rules) == 2 * (1 + 2 * 2)  # per family: the exception, then uid x port
    assert rules[0].startswith("iptables ")
    assert rules[5].startswith("ip6tables ")
    assert rules[5].endswith("--uid-owner 990 -j RETURN")
    assert "--uid-owner 1001 --dport 80 -j REDIRECT --to-ports 9001" in rules[4]
    assert all(" -t nat -A OUTPUT -p tcp " in rule for rule in rules)


def test_every_uid_but_the_edge() -> None:
    rules = joined(RedirectPlan(edge_port=8001, edge_uid=990, ports=(443,)))
    assert rules == [
        "iptables -t nat -A OUTPUT -p tcp -m owner --uid-owner 990 -j RETURN",
        "iptables -t nat -A OUTPUT -p tcp --dport 443 -j REDIRECT --to-ports 8001",
    ]


def test_delete() -> None:
    rules = joined(RedirectPlan(edge_port=8001, edge_uid=990, uids=(1000,)), delete=True)
    assert all(" -t nat -D OUTPUT " in rule for rule in rules)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"uids": (990,)}, "loop back"),
        ({"ports": ()}, "no port"),
        ({"ports": (0,)}, "outside"),
        ({"edge_port": 70000}, "outside"),
        ({"uids": (-1,)}, "negative"),
    ],
)
def test_refused(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"edge_port": 8001, "edge_uid": 990} | kw
    with pytest.raises(RuleError, match=message):
        RedirectPlan(**args)  # type: ignore[arg-type]


def test_cli_prints_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["edge", "iptables", "--uid", "1000", "--port", "443", "--port", "80",
                 "--edge-port", "8001", "--edge-uid", "990", "--ipv6"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[1] == (
        "iptables -t nat -A OUTPUT -p tcp -m owner --uid-owner 1000 --dport 443 "
        "-j REDIRECT --to-ports 8001"
    )
    assert len(out) == 6
    assert out[3] == "ip6tables -t nat -A OUTPUT -p tcp -m owner --uid-owner 990 -j RETURN"


def test_cli_refuses_the_edge_uid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "iptables", "--uid", "990", "--edge-uid", "990"]) == 2
    assert "loop back" in capsys.readouterr().err


def test_cli_help_explains_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["edge", "iptables", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "redirected back to it" in text
    assert "SO_ORIGINAL_DST" in text
