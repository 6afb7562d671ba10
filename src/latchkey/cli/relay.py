"""``latchkey token-relay``: present a rotating token file to the edge for a workload."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from latchkey.edge.relay import run_relay
from latchkey.edge.tokenfile import TokenFile, TokenFileError


def add_relay_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    listen: Callable[[str], tuple[str, int]],
) -> None:
    relay = sub.add_parser(
        "token-relay",
        help="a loopback proxy that adds the token from a file (re-read when it changes) to "
        "each CONNECT it forwards to the edge",
        description="Point the workload at this relay (HTTPS_PROXY=http://127.0.0.1:8001) "
        "instead of the edge. Each CONNECT is forwarded to the edge with "
        "'Proxy-Authorization: Bearer <token>', the token being what --token-file holds at "
        "that moment (a Kubernetes projected service-account token rotates; the file is "
        "re-read whenever it changes). The edge then sees the relay as the TCP peer: use "
        "token identities, not process identities, for workloads behind a relay.",
    )
    relay.add_argument("--token-file", type=Path, required=True, help="file holding one JWT")
    relay.add_argument(
        "--listen",
        type=listen,
        default=("127.0.0.1", 8001),
        metavar="HOST:PORT",
        help="where workloads connect (default 127.0.0.1:8001)",
    )
    relay.add_argument(
        "--edge",
        type=listen,
        default=("127.0.0.1", 8000),
        metavar="HOST:PORT",
        help="the latchkey edge (default 127.0.0.1:8000)",
    )


def run_token_relay(args: argparse.Namespace) -> int:
    token_file = TokenFile(args.token_file)
    try:
        token_file.current()
    except TokenFileError as exc:
        print(f"latchkey: {exc}", flush=True)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_relay(token_file, args.listen, args.edge))
    return 0
