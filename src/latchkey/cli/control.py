"""``latchkey apply | get | delete | diff | explain | events``: the control API from a shell.

Each command talks to the running node's control API (URL from ``run.json``, TLS trusted
through the latchkey CA, the bearer token from the data directory's ``control-token``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from latchkey.control.loader import StoredObject, decode_text
from latchkey.control.manifest import render_table, resolve_kind, sort_objects
from latchkey.control.schema import check_name
from latchkey.control.since import parse_since

AddDataDir = Callable[[argparse.ArgumentParser], None]

# Exit codes beyond 0 and 1: diff's errors (1 means "would change", as with kubectl diff), and
# an interrupted `events --follow` (128 + SIGINT, as shells report it).
DIFF_ERROR = 2
INTERRUPTED = 130
STDIN = "-"


def _since_arg(value: str) -> dt.datetime:
    try:
        return parse_since(value, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ip_arg(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from None


def add_control_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_data_dir: AddDataDir
) -> None:
    apply = sub.add_parser("apply", help="create or update configuration objects from YAML")
    add_data_dir(apply)
    apply.add_argument("-f", "--filename", action="append", required=True,
                       metavar="FILE|DIR|-",
                       help="YAML file, directory, or - for stdin (repeatable)")  # fmt: skip
    apply.add_argument("--dry-run", action="store_true", help="validate and show, change nothing")
    apply.add_argument(
        "--prune", action="store_true", help="delete stored objects not given (none given: refused)"
    )

    diff = sub.add_parser(
        "diff",
        help="what `apply -f` would change; exit 0: nothing, 1: something, 2: an error",
        description="Show what `latchkey apply -f` would change. Exit status: 0 when nothing "
        "would change, 1 when something would, 2 on any error (as kubectl diff).",
    )
    add_data_dir(diff)
    diff.add_argument("-f", "--filename", action="append", required=True,
                      metavar="FILE|DIR|-")  # fmt: skip
    diff.add_argument("--prune", action="store_true")

    get = sub.add_parser("get", help="show configuration objects (from the store when latchkey "
                         "is not running)")  # fmt: skip
    add_data_dir(get)
    get.add_argument(
        "kind",
        metavar="KIND[/NAME]",
        help="ServerWorkload (sw), ClientWorkload (cw), CredentialProvider (cp), "
        "AccessPolicy (ap), AccessCondition (ac), TrustProvider (tp), or all",
    )
    get.add_argument("name", nargs="?")
    get.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")

    delete = sub.add_parser("delete", help="delete one configuration object")
    add_data_dir(delete)
    delete.add_argument("kind", metavar="KIND[/NAME]")
    delete.add_argument("name", nargs="?")
    delete.add_argument("--dry-run", action="store_true")

    explain = sub.add_parser("explain", help="why a caller would be allowed or denied")
    add_data_dir(explain)
    explain.add_argument("--client-ip", default="127.0.0.1", type=_ip_arg)
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
    events.add_argument(
        "--since",
        type=_since_arg,
        help="events at or after: an ISO 8601 time (2026-11-28T10:00:00Z, or with an offset), "
        "or a duration ago (90s, 15m, 1h, 2d)",
    )
    events.add_argument("--follow", "-f", action="store_true",
                        help="keep printing new events; Ctrl-C ends it (exit 130)")  # fmt: skip
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--json", action="store_true", help="one JSON object per line")


CONTROL_COMMANDS = frozenset({"apply", "diff", "get", "delete", "explain", "events"})


class InputError(Exception):
    """A file given on the command line cannot be used (said before any request is made)."""


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
        try:
            doc = resp.json()
        except ValueError:  # not the API's JSON (e.g. the server's own 413 for a large body)
            text = " ".join(resp.text.split())[:200] or resp.reason_phrase
            raise ApiError({"code": f"HTTP {resp.status_code}", "message": text}) from None
        if resp.status_code >= 400:
            raise ApiError(doc if isinstance(doc, dict) else {"code": resp.status_code,
                                                              "message": str(doc)})  # fmt: skip
        return dict(doc)


class ApiError(Exception):
    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(doc.get("message", "error"))
        self.doc = doc

    def render(self) -> str:
        issues = self.doc.get("issues")
        if issues:
            return _render_issues(issues)
        return f"{self.doc.get('code')}: {self.doc.get('message')}"


def _render_issues(issues: list[dict[str, Any]]) -> str:
    lines = ["the configuration is invalid (nothing was changed):"]
    lines += [
        f"  {i['file']}:{i['line']}:{i['column']}: "
        + (f"{i['field']}: " if i["field"] else "")
        + i["message"]
        for i in issues
    ]
    return "\n".join(lines)


def _documents(paths: list[str]) -> list[tuple[str, str]]:
    """(filename, text) of each file given; ``-`` is stdin (once)."""
    from latchkey.control.service import read_paths

    files: list[tuple[str, str]] = []
    for path in paths:
        try:
            if path == STDIN:
                files.append(("<stdin>", decode_text(sys.stdin.buffer.read(), "<stdin>")))
            elif not Path(path).exists():
                raise InputError(f"the path {path!r} does not exist")
            else:
                files += read_paths([path])
        except OSError as exc:
            raise InputError(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
    return files


def _apply(client: ControlClient, args: argparse.Namespace, dry_run: bool,
           files: list[tuple[str, str]]) -> list[dict[str, str]]:  # fmt: skip
    body = {"files": [{"filename": name, "documents": text} for name, text in files],
            "prune": args.prune, "dryRun": dry_run}  # fmt: skip
    changes: list[dict[str, str]] = client.call("POST", "/apply", json=body)["changes"]
    return changes


def _kind_and_name(args: argparse.Namespace) -> tuple[str, str | None]:
    """``sw aws-kms`` or ``sw/aws-kms`` -> (kind or "all", name or None), names checked."""
    kind, name = args.kind, args.name
    if "/" in kind:
        if name is not None:
            raise InputError(f"give the name once: {kind} or {kind.split('/')[0]} {name}")
        kind, name = kind.split("/", 1)
    if kind.lower() == "all":
        if name is not None:
            raise InputError("a name cannot be given with 'all'; give a kind (e.g. sw/NAME)")
        return "all", None
    kind = resolve_kind(kind)
    if name is not None:
        try:
            check_name(name)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return kind, name


def _path(*segments: str) -> str:
    return "".join("/" + quote(segment, safe="") for segment in segments)


def run_control(args: argparse.Namespace, data_dir: Path) -> int:
    error = DIFF_ERROR if args.command == "diff" else 1
    try:
        inputs = _inputs(args)
    except (InputError, ValueError) as exc:  # (ConfigError: a file that is not UTF-8)
        print(f"latchkey: {exc}", file=sys.stderr)
        return error
    try:
        client = ControlClient(data_dir)
    except FileNotFoundError:
        if args.command == "get":
            return _get_offline(data_dir, args)
        print(f"latchkey: latchkey is not running (no run.json in {data_dir})", file=sys.stderr)
        return error
    except (OSError, ValueError) as exc:  # run.json or the token unreadable
        print(f"latchkey: cannot use the running node's details in {data_dir}: {exc}",
              file=sys.stderr)  # fmt: skip
        return error
    try:
        return _dispatch(client, args, inputs)
    except ApiError as exc:
        print(f"latchkey: {exc.render()}", file=sys.stderr)
        return error
    except (httpx.HTTPError, OSError) as exc:
        print(f"latchkey: cannot reach the control API at {client.url}: {exc}", file=sys.stderr)
        return error
    except ValueError as exc:
        print(f"latchkey: {exc}", file=sys.stderr)
        return error


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line names, read and checked before the node is asked anything."""
    if args.command in ("apply", "diff"):
        return {"files": _documents(args.filename)}
    if args.command in ("get", "delete"):
        kind, name = _kind_and_name(args)
        if args.command == "delete" and (kind == "all" or name is None):
            raise InputError("delete needs a kind and a name: KIND NAME or KIND/NAME")
        return {"kind": kind, "name": name}
    if args.command == "explain" and args.token is not None:
        try:
            return {"token": args.token.read_text(encoding="utf-8").strip()}
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InputError(f"cannot read the token file {args.token}: {why}") from None
    return {}


def _dispatch(client: ControlClient, args: argparse.Namespace, inputs: dict[str, Any]) -> int:
    command = args.command
    if command in ("apply", "diff"):
        dry_run = command == "diff" or args.dry_run
        changes = _apply(client, args, dry_run, inputs["files"])
        suffix = " (dry run)" if dry_run and command == "apply" else ""
        for change in changes:
            print(f"{change['kind'].lower()}/{change['name']} {change['action']}{suffix}")
        if command == "diff":
            return 1 if any(c["action"] != "unchanged" for c in changes) else 0
        return 0
    if command == "get":
        return _get(client, args, inputs["kind"], inputs["name"])
    if command == "delete":
        query = "?dryRun=true" if args.dry_run else ""
        path = _path(inputs["kind"], inputs["name"]) + query
        for change in client.call("DELETE", path)["changes"]:
            print(f"{change['kind'].lower()}/{change['name']} {change['action']}")
        return 0
    if command == "explain":
        return _explain(client, args, inputs.get("token"))
    return _events(client, args)


def _get(client: ControlClient, args: argparse.Namespace, kind: str, name: str | None) -> int:
    if kind == "all":
        items = client.call("GET", "/objects")["items"]
    elif name:
        items = [client.call("GET", _path(kind, name))]
    else:
        items = client.call("GET", _path(kind))["items"]
    _print_items(items, args.output, single=name is not None)
    return 0


def _get_offline(data_dir: Path, args: argparse.Namespace) -> int:
    """``get`` while the node is down: what its control store holds (no status)."""
    from latchkey.store.control import read_objects

    kind, name = _kind_and_name(args)
    path = data_dir / "control.db"
    try:
        rows = read_objects(path)
    except FileNotFoundError:
        print(f"latchkey: latchkey is not running and nothing is stored in {data_dir}",
              file=sys.stderr)  # fmt: skip
        return 1
    except Exception as exc:  # sqlite3.Error and the like: say which file
        print(f"latchkey: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    print(f"latchkey: latchkey is not running; showing what {path} holds", file=sys.stderr)
    objects = [StoredObject(r.kind, r.name, r.spec) for r in rows]
    found = [o for o in objects if kind == "all" or (o.kind == kind and name in (None, o.name))]
    if name is not None and not found:
        print(f"latchkey: NotFound: {kind} {name!r} not found", file=sys.stderr)
        return 1
    _print_items([o.document() for o in sort_objects(found)], args.output,
                 single=name is not None)  # fmt: skip
    return 0


def _print_items(items: list[dict[str, Any]], output: str, *, single: bool) -> None:
    if output == "yaml":
        print(yaml.safe_dump_all(items, sort_keys=False), end="")
    elif output == "json":
        value = items[0] if single else {"apiVersion": "latchkey/v1", "kind": "List",
                                         "items": items}  # fmt: skip
        print(json.dumps(value, indent=2))
    elif not items:  # (as kubectl: on stderr, so that stdout stays a table or nothing)
        print("No resources found", file=sys.stderr)
    else:
        objects = [StoredObject(i["kind"], i["metadata"]["name"], i["spec"]) for i in items]
        print(render_table(objects))


def _explain(client: ControlClient, args: argparse.Namespace, token: str | None) -> int:
    body: dict[str, Any] = {"clientIp": args.client_ip, "host": args.host, "port": args.port}
    for key, value in (("action", args.action), ("keyId", args.key_id),
                       ("accessKeyId", args.access_key_id), ("pid", args.pid)):  # fmt: skip
        if value is not None:
            body[key] = value
    if token is not None:
        body["token"] = token
    result = client.call("POST", "/explain", json=body)
    print(json.dumps(result, indent=2) if args.json else result["text"])
    return 0 if result["outcome"] in ("allowed", "tunnelled") else 3


def _events(client: ControlClient, args: argparse.Namespace) -> int:
    try:
        _print_events(client, args)
    except KeyboardInterrupt:  # the way out of --follow: no traceback
        return INTERRUPTED
    return 0


def _print_events(client: ControlClient, args: argparse.Namespace) -> None:
    since = args.since.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if args.since else None
    params = {k: v for k, v in (("client", args.client), ("server", args.server),
              ("decision", args.decision), ("since", since)) if v}  # fmt: skip
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
            return
        if not page["items"]:
            time.sleep(1)
