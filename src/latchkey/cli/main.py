"""The ``latchkey`` command line: up, status, env, idp token."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from latchkey import __version__
from latchkey.cli import err
from latchkey.cli.audit import add_audit_parser, run_audit
from latchkey.cli.ca import add_ca_parser, run_ca
from latchkey.cli.control import CONTROL_COMMANDS, add_control_parsers, run_control
from latchkey.cli.edge import add_edge_parser, run_edge
from latchkey.cli.relay import add_relay_parser, run_token_relay
from latchkey.cli.up import add_up_parser, listen_address, run_up
from latchkey.idp.commands import add_idp_parser, run_idp

if TYPE_CHECKING:
    pass

DEFAULT_PLACEHOLDER_KEY = "AKIALATCHKEYPLACEHLD"
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython: 700)
DEFAULT_PLACEHOLDER_SECRET = "latchkey-placeholder-secret-not-a-real-key"  # noqa: S105


def default_data_dir() -> Path:
    return Path(os.environ.get("LATCHKEY_HOME") or ".latchkey")


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

    add_up_parser(sub, _add_data_dir)
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
    add_relay_parser(sub, listen_address)
    add_audit_parser(sub, _add_data_dir)
    add_ca_parser(sub, _add_data_dir)
    add_edge_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir: Path = getattr(args, "data_dir", None) or default_data_dir()
    if args.command == "up":
        return run_up(args, data_dir)
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
        return err(
            f"latchkey is not running (no run.json in {data_dir}); start it with `latchkey up`"
        )
    if plain_http and not cloud_admin:
        return err("--plain-http goes with --cloud-admin")
    lines = []
    if cloud_admin:
        from latchkey.cloud.bootstrap import ADMIN_FILE
        from latchkey.secretfile import read_secret_file

        try:
            admin = json.loads(read_secret_file(Path(info.data_dir) / ADMIN_FILE))
        except (OSError, ValueError) as exc:
            return err(f"cannot read the cloud admin key: {exc}")
        if plain_http and not info.cloud_http:
            return err("the cloud has no plain-HTTP listener; start it with `up --cloud-http`")
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
