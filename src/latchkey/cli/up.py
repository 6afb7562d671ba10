"""``latchkey up``: every part in one process, in the foreground, and its options."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from latchkey.cli import err
from latchkey.crypto.jwk import ALGORITHMS

if TYPE_CHECKING:
    from latchkey.edge.server import EdgeSettings

GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython: 700)


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _duration(value: str) -> dt.timedelta:
    """``90m``, ``1h``, ``1d``, ``1w`` (between an hour and a week)."""
    units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = value[:-1], value[-1:].lower()
    if not number.isdigit() or unit not in units:
        raise argparse.ArgumentTypeError(f"expected a duration like 1h, 1d or 1w, got {value!r}")
    seconds = int(number) * units[unit]
    if not 3600 <= seconds <= 604800:
        raise argparse.ArgumentTypeError(f"{value!r} is outside 1h..1w")
    return dt.timedelta(seconds=seconds)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 3600], got {value!r}")
    return seconds


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return number


def _microseconds(value: str) -> int:
    try:
        micros = int(value)
    except ValueError:
        micros = -1
    if not 0 <= micros <= 10_000:
        raise argparse.ArgumentTypeError(f"expected microseconds in [0, 10000], got {value!r}")
    return micros


def _edge_settings(args: argparse.Namespace) -> EdgeSettings:
    from latchkey.edge.server import EdgeSettings  # the edge's imports only for `up`

    return EdgeSettings(
        passthrough=args.passthrough,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        connect_timeout=args.upstream_connect_timeout,
        response_timeout=args.upstream_timeout,
        max_body_bytes=args.max_body_bytes,
        busy_poll=args.busy_poll / 1e6,
        max_inflight=args.max_inflight,
    )


def _issuer_url(value: str) -> str:
    from latchkey.idp.issuer import check_issuer_url

    try:
        return check_issuer_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_up_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_data_dir: Callable[[argparse.ArgumentParser], None],
) -> None:
    up = sub.add_parser("up", help="run every part in one process (foreground)")
    add_data_dir(up)
    up.add_argument(
        "--config",
        type=Path,
        action="append",
        default=None,
        help="configuration YAML file or directory (repeatable; default: the seed scenario "
        "against the local cloud)",
    )
    for flag, default, what in (
        ("--edge", 8000, "edge proxy"),
        ("--cloud", 4566, "local cloud (HTTPS)"),
        ("--idp", 8443, "idp/control (HTTPS)"),
    ):
        up.add_argument(
            flag,
            type=listen_address,
            default=("127.0.0.1", default),
            metavar="HOST:PORT",
            help=f"{what} listen address (default 127.0.0.1:{default}; port 0 picks a free one)",
        )
    up.add_argument(
        "--cloud-http",
        type=listen_address,
        default=None,
        metavar="[HOST:]PORT",
        help="also serve the local cloud over plain HTTP (SigV4 still required; for sidecars "
        "and benchmarks). HOST defaults to 127.0.0.1; any other address logs a warning",
    )
    up.add_argument(
        "--idp-issuer",
        type=_issuer_url,
        metavar="URL",
        help="the issuer URL tokens carry and IAM is told (default https://<--idp address>); "
        "it must lead to this idp (see docs/federation.md)",
    )
    up.add_argument(
        "--ca-permit",
        action="append",
        default=[],
        metavar="DOMAIN|CIDR",
        help="when the CA is created (first start): another domain or IP network it may "
        "certify, besides amazonaws.com, the configured Server Workloads' domains and loopback "
        "(repeatable; see `latchkey ca`)",
    )
    up.add_argument(
        "--leaf-lifetime",
        type=_duration,
        default=dt.timedelta(days=1),
        metavar="DURATION",
        help="lifetime of the per-host certificates the edge mints, 1h..1w (default 1d; "
        "re-minted at 80%%)",
    )
    up.add_argument(
        "--passthrough",
        choices=["tunnel", "deny"],
        default="tunnel",
        help="CONNECTs to hosts that are no Server Workload: relay them byte for byte "
        "(default) or refuse them with 403",
    )
    for option, seconds, what in (
        ("--header-timeout", 30.0, "a request head must arrive within S s of its first byte (408)"),
        ("--idle-timeout", 120.0, "close keep-alive client connections idle for S seconds"),
        ("--upstream-connect-timeout", 10.0, "connecting upstream, TCP + TLS (504 beyond)"),
        ("--upstream-timeout", 60.0, "waiting for the upstream's answer (504 beyond)"),
    ):
        up.add_argument(
            option,
            type=_seconds,
            default=seconds,
            metavar="S",
            help=f"{what} (default {seconds:g})",
        )
    up.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        metavar="N",
        help="largest request body the edge buffers (413 beyond; default 8 MiB)",
    )
    up.add_argument(
        "--cloud-max-inflight",
        type=_positive,
        default=1024,
        metavar="N",
        help="calls the local cloud works on at once; beyond, a call is answered at once with "
        "ThrottlingException (Throttling for STS/IAM), which SDKs retry with backoff "
        "(default 1024)",
    )
    up.add_argument(
        "--max-inflight",
        type=_positive,
        default=1024,
        metavar="N",
        help="requests the edge works on at once; beyond, a request is answered 503 with "
        "Retry-After at once, in its target's protocol (default 1024)",
    )
    up.add_argument(
        "--busy-poll",
        type=_microseconds,
        default=300,
        metavar="US",
        help="while the only request in progress waits for an upstream that answered within "
        "US microseconds last time, poll instead of sleeping for at most that long (a "
        "wake-up from idle costs more than a local upstream's answer); 0 turns it off "
        "(default 300)",
    )
    up.add_argument(
        "--idp-algorithm",
        choices=ALGORITHMS,
        help="signing algorithm; a change rotates the key (default: the current key's, "
        "ES256 for a new data directory)",
    )
    up.add_argument(
        "--root-key-passphrase-file",
        type=Path,
        metavar="FILE",
        help="derive the root key from the passphrase in FILE (0600; scrypt) instead of "
        "<data-dir>/root.key; $LATCHKEY_ROOT_PASSPHRASE and $LATCHKEY_ROOT_KEY (32 bytes, hex or "
        "base64) are the other sources (docs/cloud.md, Root key)",
    )
    up.add_argument(
        "--audit-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a call whose audit event is not durable within this fails (default 5); one "
        "whose event the writer is already committing waits up to twice this, then fails and "
        "the trail refuses calls until a restart",
    )
    up.add_argument(
        "--transparent",
        type=listen_address,
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="also accept connections redirected by iptables REDIRECT (Linux; repeatable, e.g. "
        "127.0.0.1:8001 and [::1]:8001 for IPv6; off by default). `latchkey edge iptables` "
        "prints the rules; see docs/edge.md, Transparent mode",
    )
    up.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run_up(args: argparse.Namespace, data_dir: Path) -> int:
    from latchkey.control.loader import ConfigError
    from latchkey.node import IdpOptions, Listen, Node, StartupError
    from latchkey.rootkey_source import ENV_KEY, ENV_PASSPHRASE, RootKeyError, source_from

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    listen = Listen(edge=args.edge, cloud=args.cloud, idp=args.idp, cloud_http=args.cloud_http,
                    transparent=tuple(args.transparent))  # fmt: skip
    try:
        root_key_source = source_from(os.environ, args.root_key_passphrase_file)
    except RootKeyError as exc:
        return err(f"root key: {exc}")
    for name in (ENV_KEY, ENV_PASSPHRASE):  # read once; not inherited by anything we start
        os.environ.pop(name, None)

    async def run() -> int:
        idp = IdpOptions(issuer=args.idp_issuer, algorithm=args.idp_algorithm)
        try:
            node = Node(
                data_dir, config_paths=args.config, listen=listen, idp=idp,
                root_key_source=root_key_source, ca_permit=args.ca_permit,
                leaf_lifetime=args.leaf_lifetime, audit_timeout=args.audit_timeout,
                edge_settings=_edge_settings(args), cloud_max_inflight=args.cloud_max_inflight,
            )  # fmt: skip
        except OSError as exc:  # the data directory cannot be made or is not ours
            return err(f"data directory: {exc}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await node.start()
        except ConfigError as exc:
            await node.stop()
            print("latchkey: the configuration is invalid:", file=sys.stderr)
            for issue in exc.issues:
                print(f"  {issue}", file=sys.stderr)
            return 1
        except StartupError as exc:
            await node.stop()
            return err(str(exc))
        # What start-up made lives as long as the node: keep it out of every collection, and
        # collect the young generation less often (a request's objects die by refcount).
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        logging.getLogger("latchkey").info("ready; Ctrl-C to stop")
        await stop.wait()
        logging.getLogger("latchkey").info("stopping")
        await node.stop()
        return 0

    try:
        import uvloop

        return int(uvloop.run(run()))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(run())
