"""``latchkey idp ...``: mint a token, rotate the signing key, list the keyring."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from latchkey.crypto.jwk import ALGORITHMS

DEFAULT_OVERLAP_SECONDS = 24 * 3600


def add_idp_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_data_dir: Callable[[argparse.ArgumentParser], None],
) -> None:
    idp = sub.add_parser("idp", help="the OIDC identity provider")
    idp_sub = idp.add_subparsers(dest="idp_command", required=True, metavar="COMMAND")

    token = idp_sub.add_parser("token", help="mint and print one workload token (debugging)")
    add_data_dir(token)
    token.add_argument("--client", required=True, help="client workload name")
    token.add_argument("--audience", required=True, help="the aud claim (e.g. sts.amazonaws.com)")
    token.add_argument(
        "--provider",
        help="credential provider name (default: the running node's only STS-federation one)",
    )
    token.add_argument("--ttl", type=int, default=300, help="lifetime in seconds, 1..3600 (300)")
    token.add_argument("--lifetime", type=int, dest="ttl", help=argparse.SUPPRESS)

    rotate = idp_sub.add_parser(
        "rotate", help="make a new signing key; keep the old public key published a while"
    )
    add_data_dir(rotate)
    rotate.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP_SECONDS,
        metavar="SECONDS",
        help=f"how long the previous key stays in the JWKS (default {DEFAULT_OVERLAP_SECONDS})",
    )
    rotate.add_argument(
        "--publish-ahead",
        type=int,
        default=0,
        metavar="SECONDS",
        help="publish the new key this long before it signs, so verifiers that cache the JWKS "
        "have it (default 0: it signs at once)",
    )
    rotate.add_argument(
        "--algorithm", choices=ALGORITHMS, help="of the new key (default: the current one's)"
    )

    keys = idp_sub.add_parser("keys", help="list the signing keys and their state")
    add_data_dir(keys)
    keys.add_argument("--json", action="store_true", help="print the keyring as JSON")


def _err(message: str) -> int:
    print(f"latchkey: {message}", file=sys.stderr)
    return 1


def run_idp(args: argparse.Namespace, data_dir: Path) -> int:
    if args.idp_command == "token":
        return cmd_token(data_dir, args.client, args.audience, args.ttl, args.provider)
    if args.idp_command == "rotate":
        return cmd_rotate(data_dir, args.overlap, args.publish_ahead, args.algorithm)
    return cmd_keys(data_dir, as_json=args.json)


def cmd_token(data_dir: Path, client: str, audience: str, ttl: int, provider: str | None) -> int:
    from latchkey.clock import SystemClock
    from latchkey.idp.issuer import Issuer
    from latchkey.idp.keyring import Keyring, KeyringError
    from latchkey.node import RunInfo

    if not 1 <= ttl <= 3600:
        return _err("--ttl must be between 1 and 3600 seconds")
    try:
        info = RunInfo.load(data_dir)
    except FileNotFoundError:
        return _err(
            f"latchkey is not running (no run.json in {data_dir}); the issuer URL is unknown"
        )
    if provider is None:
        if len(info.providers) != 1:
            named = ", ".join(info.providers) or "none"
            return _err(f"name the credential provider with --provider (configured: {named})")
        provider = info.providers[0]
    clock = SystemClock()
    try:
        issuer = Issuer(info.idp, Keyring.load(Path(info.data_dir), clock), clock)
        token = issuer.workload_token(
            provider=provider, client=client, audience=audience, lifetime=dt.timedelta(seconds=ttl)
        )
    except (KeyringError, ValueError) as exc:
        return _err(str(exc))
    print(token)
    return 0


def cmd_rotate(data_dir: Path, overlap: int, ahead: int, algorithm: str | None) -> int:
    from latchkey.clock import SystemClock
    from latchkey.idp.keyring import Keyring, KeyringError

    if overlap < 0 or ahead < 0:
        return _err("--overlap and --publish-ahead cannot be negative")
    if not data_dir.is_dir():
        return _err(f"no data directory {data_dir} (start `latchkey up` once)")
    try:
        keyring = Keyring.open(data_dir, SystemClock())
        new, previous = keyring.rotate(
            algorithm, dt.timedelta(seconds=overlap), dt.timedelta(seconds=ahead)
        )
    except (KeyringError, OSError) as exc:
        return _err(f"cannot rotate the idp key: {exc}")
    new_doc, previous_doc = new.to_json(), previous.to_json()
    print(f"new key {new.kid} ({new.algorithm}) signs from {new_doc['not_before']}")
    print(
        f"previous key {previous.kid} ({previous.algorithm}) stays in the JWKS until "
        f"{previous_doc['retire_after']}"
    )
    return 0


def cmd_keys(data_dir: Path, *, as_json: bool) -> int:
    from latchkey.clock import SystemClock
    from latchkey.idp.keyring import Keyring, KeyringError

    clock = SystemClock()
    try:
        keyring = Keyring.load(data_dir, clock)
        now, active = clock.now(), keyring.active_kid
    except KeyringError as exc:
        return _err(str(exc))
    rows = [e.to_json() | {"state": e.state(now, active)} for e in keyring.entries]
    if as_json:
        print(json.dumps({"active": active, "keys": rows}, indent=2))
        return 0
    print("KID  ALGORITHM  STATE  SIGNS-FROM  PUBLISHED-UNTIL")
    for row in rows:
        until = row["retire_after"] or "-"
        print(f"{row['kid']}  {row['algorithm']}  {row['state']}  {row['not_before']}  {until}")
    return 0
