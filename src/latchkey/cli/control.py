"""``latchkey apply | get | delete | diff | explain | events``: the control API from a shell.

Each command talks to the running node's control API (URL from ``run.json``, TLS trusted
through the latchkey CA, the bearer token from the data directory's ``control-token``).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from latchkey.control.loader import StoredObject
from latchkey.control.manifest import render_table, resolve_kind

AddDataDir = Callable[[argparse.ArgumentParser], None]


def add_control_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_data_dir: AddDataDir
) -> None:
    apply = sub.add_parser("apply", help="create or update configuration objects from YAML")
    add_data_dir(apply)
    apply.add_argument("-f", "--filename", action="append", required=True, type=Path,
                       metavar="FILE|DIR", help="YAML file or directory (repeatable)")  # fmt: skip
    apply.add_argument("--dry-run", action="store_true", help="validate and show, change nothing")
    apply.add_argument("--prune", action="store_true", help="delete stored objects not given")

    diff = sub.add_parser("diff", help="what `apply -f` would change (exit 1 when anything would)")
    add_data_dir(diff)
    diff.add_argument("-f", "--filename", action="append", required=True, type=Path,
                      metavar="FILE|DIR")  # fmt: skip
    diff.add_argument("--prune", action="store_true")

    get = sub.add_parser("get", help="show configuration objects")
    add_data_dir(get)
    get.add_argument(
        "kind",
        help="ServerWorkload (sw), ClientWorkload (cw), CredentialProvider (cp), "
        "AccessPolicy (ap), AccessCondition (ac), TrustProvider (tp), or all",
    )
    get.add_argument("name", nargs="?")
    get.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")

    delete = sub.add_parser("delete", help="delete one configuration object")
    add_data_dir(delete)
    delete.add_argument("kind")
    delete.add_argument("name")
    delete.add_argument("--dry-run", action="store_true")

    explain = sub.add_parser("explain", help="why a caller would be allowed or denied")
    add_data_dir(explain)
    explain.add_argument("--client-ip", default="127.0.0.1")
    explain.add_argument("--host", required=True)
    explain.add_argument("--port", type=int, default=443)
    explain.add_argument("--action", help="e.g. kms:Decrypt")
    explain.add_argument("--key-id", help="the KeyId the request would name")
    explain.add_argument("--access-key-id", help="the placeholder access key id")
    explain.add_argument("--pid", type=int, help="a local process to take as the caller")
    explain.add_argument("--token", type=Path, metavar="FILE", help="a file holding the token")
    explain.add_argument("--json", action="store_true")

    events = sub.add_parser("events", help="access events at the edge")
    add_data_dir(events)
    events.add_argument("--client")
    events.add_argument("--server")
    events.add_argument("--decision", choices=["allowed", "denied"])
    events.add_argument("--since", help="ISO 8601 time, e.g. 2026-11-28T10:00:00Z")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--json", action="store_true", help="one JSON object per line")


CONTROL_COMMANDS = frozenset({"apply", "diff", "get", "delete", "explain", "events"})


class ControlClient:
    def __init__(self, data_dir: Path) -> None:
        from latchkey.control.runtime import TOKEN_FILE
        from latchkey.node import RunInfo
        from latchkey.secretfile import read_secret_file

        info = RunInfo.load(data_dir)
        base = info.idp_listen or info.idp
        self.url = base.rstrip("/") + "/api/v1"
        token = read_secret_file(Path(info.data_dir) / TOKEN_FILE).decode().strip()
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=info.ca_bundle),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.client.request(method, self.url + path, **kwargs)
        doc = resp.json()
        if resp.status_code >= 400:
            raise ApiError(doc)
        return dict(doc)


class ApiError(Exception):
    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(doc.get("message", "error"))
        self.doc = doc

    def render(self) -> str:
        issues = self.doc.get("issues")
        if issues:
            lines = ["the configuration is invalid (nothing was changed):"]
            lines += [
                f"  {i['file']}:{i['line']}:{i['column']}: "
                + (f"{i['field']}: " if i["field"] else "")
                + i["message"]
                for i in issues
            ]
            return "\n".join(lines)
        return f"{self.doc.get('code')}: {self.doc.get('message')}"


def _documents(paths: list[Path]) -> list[tuple[str, str]]:
    from latchkey.control.service import read_paths

    return read_paths(paths)


def _apply(client: ControlClient, args: argparse.Namespace, dry_run: bool) -> list[dict[str, str]]:
    changes: list[dict[str, str]] = []
    files = _documents(args.filename)
    if len(files) == 1:
        filename, text = files[0]
    else:  # several files apply together, as one stream
        filename, text = "<files>", "\n---\n".join(t for _, t in files)
    body = {"documents": text, "filename": filename, "prune": args.prune, "dryRun": dry_run}
    changes = client.call("POST", "/apply", json=body)["changes"]
    return changes


def run_control(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        client = ControlClient(data_dir)
    except FileNotFoundError:
        print(f"latchkey: latchkey is not running (no run.json in {data_dir})", file=sys.stderr)
        return 1
    try:
        return _dispatch(client, args)
    except ApiError as exc:
        print(f"latchkey: {exc.render()}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, OSError) as exc:
        print(f"latchkey: cannot reach the control API at {client.url}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"latchkey: {exc}", file=sys.stderr)
        return 1


def _dispatch(client: ControlClient, args: argparse.Namespace) -> int:
    command = args.command
    if command in ("apply", "diff"):
        dry_run = command == "diff" or args.dry_run
        changes = _apply(client, args, dry_run)
        suffix = " (dry run)" if dry_run and command == "apply" else ""
        for change in changes:
            print(f"{change['kind'].lower()}/{change['name']} {change['action']}{suffix}")
        if command == "diff":
            return 1 if any(c["action"] != "unchanged" for c in changes) else 0
        return 0
    if command == "get":
        return _get(client, args)
    if command == "delete":
        kind = resolve_kind(args.kind)
        query = "?dryRun=true" if args.dry_run else ""
        for change in client.call("DELETE", f"/{kind}/{args.name}{query}")["changes"]:
            print(f"{change['kind'].lower()}/{change['name']} {change['action']}")
        return 0
    if command == "explain":
        return _explain(client, args)
    return _events(client, args)


def _get(client: ControlClient, args: argparse.Namespace) -> int:
    if args.kind.lower() == "all":
        items = client.call("GET", "/objects")["items"]
    elif args.name:
        items = [client.call("GET", f"/{resolve_kind(args.kind)}/{args.name}")]
    else:
        items = client.call("GET", f"/{resolve_kind(args.kind)}")["items"]
    if args.output == "yaml":
        print(yaml.safe_dump_all(items, sort_keys=False), end="")
    elif args.output == "json":
        value = items[0] if args.name else {"apiVersion": "latchkey/v1", "kind": "List",
                                            "items": items}  # fmt: skip
        print(json.dumps(value, indent=2))
    else:
        objects = [StoredObject(i["kind"], i["metadata"]["name"], i["spec"]) for i in items]
        print(render_table(objects))
    return 0


def _explain(client: ControlClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"clientIp": args.client_ip, "host": args.host, "port": args.port}
    for key, value in (("action", args.action), ("keyId", args.key_id),
                       ("accessKeyId", args.access_key_id), ("pid", args.pid)):  # fmt: skip
        if value is not None:
            body[key] = value
    if args.token is not None:
        body["token"] = args.token.read_text().strip()
    result = client.call("POST", "/explain", json=body)
    print(json.dumps(result, indent=2) if args.json else result["text"])
    return 0 if result["outcome"] in ("allowed", "tunnelled") else 3


def _events(client: ControlClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("client", args.client), ("server", args.server),
              ("decision", args.decision), ("since", args.since)) if v}  # fmt: skip
    after, header = 0, True
    while True:
        page = client.call("GET", "/events", params={**params, "after": after,
                                                     "limit": args.limit})  # fmt: skip
        for event in page["items"]:
            if args.json:
                print(json.dumps(event))
            else:
                if header:
                    print(f"{'TIME':<27} {'DECISION':<8} {'REASON':<20} {'CLIENT':<16} "
                          f"{'SERVER':<16} {'STATUS':<6} REQUEST")  # fmt: skip
                    header = False
                print(f"{event['time']:<27} {event['decision']:<8} "
                      f"{event.get('reason') or '-':<20} {event.get('client') or '-':<16} "
                      f"{event['server']:<16} {event.get('status', '-')!s:<6} "
                      f"{event.get('method', '')} {event.get('path', '')}")  # fmt: skip
        after = page["next"]
        sys.stdout.flush()
        if not args.follow:
            return 0
        if not page["items"]:
            time.sleep(1)
