"""The ``latchkey`` command line: up, status, env, idp token."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import logging
import os
import shlex
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from latchkey import __version__
from latchkey.cli.audit import add_audit_parser, run_audit
from latchkey.cli.ca import add_ca_parser, run_ca
from latchkey.cli.control import CONTROL_COMMANDS, add_control_parsers, run_control
from latchkey.cli.edge import add_edge_parser, run_edge
from latchkey.cli.relay import add_relay_parser, run_token_relay
from latchkey.crypto.jwk import ALGORITHMS
from latchkey.idp.commands import add_idp_parser, run_idp

if TYPE_CHECKING:
    from latchkey.edge.server import EdgeSettings

DEFAULT_PLACEHOLDER_KEY = "AKIALATCHKEYPLACEHLD"
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython: 700)
DEFAULT_PLACEHOLDER_SECRET = "latchkey-placeholder-secret-not-a-real-key"  # noqa: S105


def default_data_dir() -> Path:
    return Path(os.environ.get("LATCHKEY_HOME") or ".latchkey")


def _listen(value: str) -> tuple[str, int]:
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


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $LATCHKEY_HOME, else ./.latchkey)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latchkey",
        description="Workloads that call AWS hold no AWS keys: an identity-aware edge proxy, "
        "an OIDC idp and a local AWS-compatible cloud (KMS, IAM, STS).",
    )
    parser.add_argument("--version", action="version", version=f"latchkey {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run every part in one process (foreground)")
    _add_data_dir(up)
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
            type=_listen,
            default=("127.0.0.1", default),
            metavar="HOST:PORT",
            help=f"{what} listen address (default 127.0.0.1:{default}; port 0 picks a free one)",
        )
    up.add_argument(
        "--cloud-http",
        type=_listen,
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
        type=_listen,
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="also accept connections redirected by iptables REDIRECT (Linux; repeatable, e.g. "
        "127.0.0.1:8001 and [::1]:8001 for IPv6; off by default). `latchkey edge iptables` "
        "prints the rules; see docs/edge.md, Transparent mode",
    )
    up.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    status = sub.add_parser("status", help="exit 0 only when every part answers")
    _add_data_dir(status)
    status.add_argument("--json", action="store_true", help="print the URLs and states as JSON")

    env = sub.add_parser("env", help="print the export lines a client shell needs")
    _add_data_dir(env)
    env.add_argument(
        "--cloud-admin",
        action="store_true",
        help="print what talks to the local cloud directly, with the account's admin key",
    )
    env.add_argument(
        "--plain-http",
        action="store_true",
        help="with --cloud-admin: use the cloud's plain-HTTP listener (`up --cloud-http`)",
    )

    add_idp_parser(sub, _add_data_dir)
    add_control_parsers(sub, _add_data_dir)
    add_relay_parser(sub, _listen)
    add_audit_parser(sub, _add_data_dir)
    add_ca_parser(sub, _add_data_dir)
    add_edge_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir: Path = getattr(args, "data_dir", None) or default_data_dir()
    if args.command == "up":
        return cmd_up(args, data_dir)
    if args.command == "status":
        return cmd_status(data_dir, as_json=args.json)
    if args.command == "env":
        return cmd_env(data_dir, cloud_admin=args.cloud_admin, plain_http=args.plain_http)
    if args.command == "idp":
        return run_idp(args, data_dir)
    if args.command in CONTROL_COMMANDS:
        return run_control(args, data_dir)
    if args.command == "audit":
        return run_audit(args, data_dir)
    if args.command == "token-relay":
        return run_token_relay(args)
    if args.command == "edge":
        return run_edge(args)
    if args.command == "ca":
        return run_ca(args, data_dir)
    return 2


def _err(message: str) -> int:
    print(f"latchkey: {message}", file=sys.stderr)
    return 1


# -- up ---------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace, data_dir: Path) -> int:
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
        return _err(f"root key: {exc}")
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
            return _err(f"data directory: {exc}")
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
            return _err(str(exc))
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


# -- status -----------------------------------------------------------------------------------


def _probe(url: str, ca_bundle: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        if url.startswith("https://"):
            ctx = ssl.create_default_context(cafile=ca_bundle)
            resp = httpx.get(url + "/healthz", verify=ctx, timeout=timeout, trust_env=False)
        else:
            resp = httpx.get(url + "/healthz", timeout=timeout, trust_env=False)
    except (httpx.HTTPError, OSError, ssl.SSLError):
        return False
    return resp.status_code == 200


def cmd_status(data_dir: Path, *, as_json: bool) -> int:
    from latchkey.node import RunInfo

    try:
        info = RunInfo.load(data_dir)
    except FileNotFoundError:
        if as_json:
            print(json.dumps({"ready": False, "reason": "not running"}))
        else:
            print(f"latchkey is not running (no run.json in {data_dir})")
        return 1
    parts = {"edge": info.edge, "cloud": info.cloud, "idp": info.idp}
    if info.cloud_http:
        parts["cloud-http"] = info.cloud_http
    probes = parts | {"idp": info.idp_listen or info.idp}  # the listener, not a public URL
    states = {name: _probe(url, info.ca_bundle) for name, url in probes.items()}
    ready = all(states.values())
    if as_json:
        doc = {
            "ready": ready,
            "pid": info.pid,
            "data_dir": info.data_dir,
            "ca_bundle": info.ca_bundle,
            "parts": {name: {"url": parts[name], "ready": states[name]} for name in parts},
        }
        print(json.dumps(doc, indent=2))
    else:
        for name, url in parts.items():
            print(f"{name:<10} {'ready' if states[name] else 'DOWN':<6} {url}")
    return 0 if ready else 1


# -- env --------------------------------------------------------------------------------------


def _export(name: str, value: str) -> str:
    return f"export {name}={shlex.quote(value)}"


def cmd_env(data_dir: Path, *, cloud_admin: bool, plain_http: bool = False) -> int:
    from latchkey.node import RunInfo

    try:
        info = RunInfo.load(data_dir)
    except FileNotFoundError:
        return _err(
            f"latchkey is not running (no run.json in {data_dir}); start it with `latchkey up`"
        )
    if plain_http and not cloud_admin:
        return _err("--plain-http goes with --cloud-admin")
    lines = []
    if cloud_admin:
        from latchkey.cloud.bootstrap import ADMIN_FILE
        from latchkey.secretfile import read_secret_file

        try:
            admin = json.loads(read_secret_file(Path(info.data_dir) / ADMIN_FILE))
        except (OSError, ValueError) as exc:
            return _err(f"cannot read the cloud admin key: {exc}")
        if plain_http and not info.cloud_http:
            return _err("the cloud has no plain-HTTP listener; start it with `up --cloud-http`")
        endpoint = info.cloud_http if plain_http else info.cloud
        cloud_host = urlsplit(endpoint).hostname or "127.0.0.1"
        lines.append(_export("AWS_ENDPOINT_URL", endpoint))
        if plain_http:
            lines.append("unset AWS_CA_BUNDLE")
        else:
            lines.append(_export("AWS_CA_BUNDLE", info.ca_bundle))
            if info.cloud_http:
                lines.append(f"# plain HTTP (same cloud): {info.cloud_http}")
        lines += [
            _export("AWS_ACCESS_KEY_ID", admin["AccessKeyId"]),
            _export("AWS_SECRET_ACCESS_KEY", admin["SecretAccessKey"]),
            _export("AWS_DEFAULT_REGION", "us-east-1"),
            "unset AWS_SESSION_TOKEN",
            _export("NO_PROXY", f"{cloud_host},localhost,127.0.0.1"),
        ]
    else:
        lines += [
            _export("HTTPS_PROXY", info.edge),
            _export("AWS_CA_BUNDLE", info.ca_bundle),
            _export("AWS_ACCESS_KEY_ID", DEFAULT_PLACEHOLDER_KEY),
            _export("AWS_SECRET_ACCESS_KEY", DEFAULT_PLACEHOLDER_SECRET),
            _export("AWS_DEFAULT_REGION", "us-east-1"),
            "unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL",
        ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
