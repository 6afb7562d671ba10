"""``latchkey edge iptables``: print the rules that send workloads' TCP to the transparent edge."""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import sys

from latchkey.edge.iptables import RedirectPlan, RuleError, redirect_rules

DESCRIPTION = """\
Print the iptables (and with --ipv6 ip6tables) commands that redirect the outgoing TCP
connections of the given users to the edge's transparent listener (`latchkey up --transparent
127.0.0.1:8001`; with --ipv6 also `--transparent [::1]:8001`). Run them as root. Each rule is
`-t nat -A OUTPUT -p tcp -m owner --uid-owner UID --dport PORT -j REDIRECT --to-ports P`; the
edge reads each connection's original destination (SO_ORIGINAL_DST), intercepts Server
Workloads and tunnels everything else to where it was going.

The first rule RETURNs the edge's own uid (--edge-uid, default: the user running this
command) before any REDIRECT: the edge connects to the original destinations itself, and
without that exception its upstream connections would be redirected back to it. Run
`latchkey up` as a user of its own, never as one of the --uid users. Without --uid, every
user's connections except the edge's are redirected. --delete prints the commands that remove
the same rules.
"""


def _uid(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no user {value!r}") from None


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 1..65535, got {value!r}")
    return int(value)


def add_edge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser("edge", help="edge tools: the iptables rules of transparent mode")
    tools = edge.add_subparsers(dest="edge_command", required=True, metavar="TOOL")
    rules = tools.add_parser(
        "iptables",
        help="print the iptables rules that redirect users' TCP to the transparent edge",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rules.add_argument(
        "--uid",
        type=_uid,
        action="append",
        default=[],
        metavar="UID|USER",
        help="a user whose connections are redirected (repeatable; default: every user "
        "except the edge's)",
    )
    rules.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="PORT",
        help="a destination port to redirect (repeatable; default 443; add 80 for plain HTTP "
        "Server Workloads)",
    )
    rules.add_argument(
        "--edge-port",
        type=_port,
        default=8001,
        metavar="P",
        help="the port of `latchkey up --transparent` (default 8001)",
    )
    rules.add_argument(
        "--edge-uid",
        type=_uid,
        default=None,
        metavar="UID|USER",
        help="the user `latchkey up` runs as, whose connections are never redirected "
        "(default: yours)",
    )
    rules.add_argument("--ipv6", action="store_true", help="also print the ip6tables rules")
    rules.add_argument("--delete", action="store_true", help="print the commands that remove them")


def run_edge(args: argparse.Namespace) -> int:
    edge_uid = os.getuid() if args.edge_uid is None else args.edge_uid
    try:
        plan = RedirectPlan(
            edge_port=args.edge_port,
            edge_uid=edge_uid,
            ports=tuple(args.port) or (443,),
            uids=tuple(args.uid),
            ipv6=args.ipv6,
        )
    except RuleError as exc:
        print(f"latchkey: {exc}", file=sys.stderr)
        return 2
    for rule in redirect_rules(plan, delete=args.delete):
        print(shlex.join(rule))
    return 0
