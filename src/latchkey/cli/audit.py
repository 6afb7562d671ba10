"""``latchkey audit``: read and verify the local cloud's audit trail, node running or not.

Reads ``<data-dir>/audit/cloud.db`` read-only (SQLite's WAL lets a reader beside the node's
writer) and ``cloud.jsonl``; never writes either.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from latchkey.cli import err

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DURATION = re.compile(r"(\d+)([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Request members that name a key (by key id, key ARN, alias name or alias ARN).
# CloudTrail's names, and the wire names trails written before latchkey used CloudTrail's.
KEY_MEMBERS = frozenset(
    {"keyId", "targetKeyId", "sourceKeyId", "destinationKeyId", "aliasName",
     "KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId", "AliasName"}
)  # fmt: skip


def add_audit_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_data_dir: Callable[[argparse.ArgumentParser], None],
) -> None:
    audit = sub.add_parser(
        "audit",
        help="the local cloud's audit trail: list events, or `audit verify` the hash chain",
        description="List the local cloud's audit events (newest last), or `latchkey audit "
        "verify` to check the hash chain in the store and in cloud.jsonl.",
    )
    add_data_dir(audit)
    audit.add_argument("--key", help="events naming this key: key id, key ARN, alias name or ARN")
    audit.add_argument(
        "--since",
        type=_since_arg,
        help="events at or after: an ISO time, or a duration ago (90s, 15m, 1h, 2d)",
    )
    audit.add_argument("--event", help="one eventName, e.g. Decrypt")
    audit.add_argument("--errors-only", action="store_true", help="only calls that failed")
    audit.add_argument("--json", action="store_true", help="JSON lines, as stored")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND")
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain; exit 1 naming the first broken link"
    )
    verify.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="data directory")


def _since_arg(value: str) -> str:
    try:
        return parse_since(value, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_since(value: str, now: dt.datetime) -> str:
    """``90s`` / ``15m`` / ``1h`` / ``2d`` before ``now``, or an ISO time (UTC unless it says
    otherwise), as an eventTime to compare with."""
    match = DURATION.fullmatch(value.strip())
    if match:
        when = now - dt.timedelta(seconds=int(match[1]) * UNITS[match[2]])
    else:
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"expected an ISO time or a duration like 15m, 1h, 2d; got {value!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime(TIME_FORMAT)


def _same_key(a: str, b: str) -> bool:
    """Key id vs key ARN, alias name vs alias ARN, or equal."""
    return a == b or a.endswith((f":key/{b}", f":{b}")) or b.endswith((f":key/{a}", f":{a}"))


def mentions_key(event: dict[str, Any], key: str) -> bool:
    """Whether ``event`` names ``key`` in its resources or request parameters."""
    names = [r.get("ARN", "") for r in event.get("resources") or [] if isinstance(r, dict)]
    params = event.get("requestParameters") or {}
    if isinstance(params, dict):
        names += [v for k, v in params.items() if k in KEY_MEMBERS and isinstance(v, str)]
    return any(isinstance(name, str) and name and _same_key(name, key) for name in names)


def _key_column(event: dict[str, Any]) -> str:
    for resource in event.get("resources") or []:
        arn = str(resource.get("ARN", ""))
        if ":key/" in arn:
            return arn.rsplit("/", 1)[1]
    params = event.get("requestParameters") or {}
    value = (params.get("keyId") or params.get("KeyId")) if isinstance(params, dict) else None
    return value if isinstance(value, str) else "-"


def _principal(event: dict[str, Any]) -> str:
    who = event.get("userIdentity") or {}
    return str(who.get("arn") or who.get("userName") or who.get("invokedBy") or "-")


def format_row(event: dict[str, Any]) -> str:
    service = str(event.get("eventSource", "")).split(".")[0]
    return "  ".join(
        [
            str(event.get("eventTime", "")),
            f"{service}:{event.get('eventName', '')}".ljust(32),
            _principal(event).ljust(56),
            _key_column(event).ljust(36),
            str(event.get("errorCode", "")),
        ]
    ).rstrip()


def _trail_paths(data_dir: Path) -> tuple[Path, Path]:
    audit = data_dir / "audit"
    return audit / "cloud.db", audit / "cloud.jsonl"


def _events(args: argparse.Namespace, db: Path) -> Iterator[dict[str, Any]]:
    from latchkey.store.audit import AuditStore

    store = AuditStore(db, readonly=True)
    try:
        after = 0
        while True:
            rows = store.find(
                after=after,
                since=args.since,
                event_name=args.event,
                errors_only=args.errors_only,
            )
            if not rows:
                return
            for row in rows:
                event: dict[str, Any] = json.loads(row.line)
                if args.key is None or mentions_key(event, args.key):
                    yield event
            after = rows[-1].sequence
    finally:
        store.close()


def cmd_list(args: argparse.Namespace, data_dir: Path) -> int:
    from latchkey.store.base import StoreError

    db, _ = _trail_paths(data_dir)
    if not db.exists():
        return err(f"no audit trail in {data_dir} (start the node with `latchkey up`)")
    try:
        if not args.json:
            print("  ".join(["TIME".ljust(20), "EVENT".ljust(32), "PRINCIPAL".ljust(56),
                             "KEY".ljust(36), "ERROR"]))  # fmt: skip
        for event in _events(args, db):
            if args.json:
                print(json.dumps(event, separators=(",", ":"), sort_keys=True))
            else:
                print(format_row(event))
    except StoreError as exc:
        return err(str(exc))
    except BrokenPipeError:  # `latchkey audit | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_verify(data_dir: Path) -> int:
    from latchkey.cloud.auditverify import verify_trail
    from latchkey.store.audit import AuditStore
    from latchkey.store.base import StoreError

    db, jsonl = _trail_paths(data_dir)
    if not db.exists():
        return err(f"no audit trail in {data_dir} (start the node with `latchkey up`)")
    try:
        store = AuditStore(db, readonly=True)
        try:
            report = verify_trail(store, jsonl)
        finally:
            store.close()
    except StoreError as exc:
        return err(str(exc))
    if report.ok:
        print(
            f"audit trail OK: {report.events} events in {db.name} and {jsonl.name}; chain head "
            f"sequence {report.head_sequence}, hash {report.head_hash}"
        )
        return 0
    first = report.findings[0]
    print(f"audit trail BROKEN at {first}", file=sys.stderr)
    for finding in report.findings[1:]:
        print(f"  also {finding}", file=sys.stderr)
    print(
        f"({report.events} events read; the store {db} is authoritative, {jsonl.name} its copy)",
        file=sys.stderr,
    )
    return 1


def run_audit(args: argparse.Namespace, data_dir: Path) -> int:
    if args.audit_command == "verify":
        return cmd_verify(data_dir)
    return cmd_list(args, data_dir)
