"""The control plane and its REST API in-process: where apply's problems are reported, what a
restart brings back, what delete refuses, and the API's handling of names, files and times."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from latchkey.control.api import ControlApi
from latchkey.control.defaults import render_default_config
from latchkey.control.loader import ConfigError, NoObjects, _references, load_stored
from latchkey.control.model import empty_config
from latchkey.control.schema import parse_document
from latchkey.control.service import POLICY_FIELDS, ControlPlane, InUse, referrers
from latchkey.http.h1 import Request
from latchkey.http.server import Peer
from latchkey.store.control import AccessEvent, ControlStore
from latchkey_testing import MISSING_REFERENCES

DEFAULT = render_default_config("127.0.0.1", 4566)
TOKEN = "lk_test"

TYPO = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: typo2}
spec:
  host: example.com
  port: "443"
  tls: true
  authentication: {method: http, scheme: none}
"""

TRUST = """\
apiVersion: latchkey/v1
kind: TrustProvider
metadata: {name: local-process}
spec: {type: process}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: tp-policy}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
  trustProviders: [local-process]
"""


def plane(path: Path) -> ControlPlane:
    control = ControlPlane(ControlStore(path))
    control.start(config_paths=[], default_text=DEFAULT)
    return control


@pytest.fixture
def control(tmp_path: Path) -> ControlPlane:
    return plane(tmp_path / "control.db")


def issues(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(i) for i in exc.value.issues]


# -- where apply's problems are reported --------------------------------------------------


def test_missing_references_are_reported_in_the_applied_file(control: ControlPlane) -> None:
    with pytest.raises(ConfigError) as caught:
        control.apply([("missing.yaml", MISSING_REFERENCES)])
    assert issues(caught) == [
        "missing.yaml:11:18: spec.clients[1]: no ClientWorkload named 'nobody'",
        "missing.yaml:12:11: spec.server: no ServerWorkload named 'aws-kmz'",
    ]


def test_schema_and_reference_problems_come_together_each_in_its_file(
    control: ControlPlane,
) -> None:
    with pytest.raises(ConfigError) as caught:
        control.apply([("typo.yaml", TYPO), ("missing.yaml", MISSING_REFERENCES)])
    assert issues(caught) == [
        "typo.yaml:6:9: spec.port: Input should be a valid integer (got '443')",
        "missing.yaml:11:18: spec.clients[1]: no ClientWorkload named 'nobody'",
        "missing.yaml:12:11: spec.server: no ServerWorkload named 'aws-kmz'",
    ]


def test_a_syntax_error_in_one_file_hides_nothing_of_another(control: ControlPlane) -> None:
    unterminated = TYPO.replace("host: example.com", 'host: "example.com')
    with pytest.raises(ConfigError) as caught:
        control.apply([("unterm.yaml", unterminated), ("typo.yaml", TYPO)])
    found = issues(caught)
    assert found[0].startswith("unterm.yaml:6:10: YAML syntax error")
    assert found[1] == "typo.yaml:6:9: spec.port: Input should be a valid integer (got '443')"


def test_a_host_port_clash_with_a_stored_server_is_in_the_applied_file(
    control: ControlPlane,
) -> None:
    clash = TYPO.replace('port: "443"', "port: 443").replace(
        "example.com", "kms.us-east-1.amazonaws.com"
    )
    with pytest.raises(ConfigError) as caught:
        control.apply([("clash.yaml", clash)])
    assert issues(caught) == [
        "clash.yaml:5:9: spec.host: kms.us-east-1.amazonaws.com:443 is already served by "
        "ServerWorkload 'aws-kms'"
    ]


def test_a_stored_policy_broken_by_an_applied_change_names_the_change(
    control: ControlPlane,
) -> None:
    static = (
        "apiVersion: latchkey/v1\nkind: CredentialProvider\nmetadata: {name: kms-federation}\n"
        "spec: {type: static, secretFile: /run/secret}\n"
    )
    with pytest.raises(ConfigError) as caught:
        control.apply([("cpstatic.yaml", static)])
    [issue] = caught.value.issues
    assert issue.file == "stored accesspolicy/local-apps-to-kms"
    assert "needs a CredentialProvider of type aws-sts-federation" in issue.message
    assert "(after the change at cpstatic.yaml:3:18)" in issue.message


def test_a_stored_object_gone_bad_is_named_with_the_way_out(
    control: ControlPlane, tmp_path: Path
) -> None:
    bundle = _write_ca(tmp_path / "bundle.pem")
    server = (
        "apiVersion: latchkey/v1\nkind: ServerWorkload\nmetadata: {name: internal}\nspec:\n"
        "  host: api.internal.example.com\n  port: 443\n  tls: true\n"
        f"  forward: {{caBundle: {bundle}}}\n  authentication: {{method: http, scheme: none}}\n"
    )
    control.apply([("bundle.yaml", server)])
    bundle.unlink()
    with pytest.raises(ConfigError) as caught:
        control.apply([("typo.yaml", TYPO)])
    found = issues(caught)
    assert found[1] == (
        f"stored serverworkload/internal:10:15: spec.forward.caBundle: caBundle {bundle} is not "
        "a readable file [stored earlier: apply a corrected serverworkload/internal "
        "(`latchkey get serverworkload internal -o yaml`)]"
    )
    assert found[0].startswith("typo.yaml:6:9: ")  # the applied file's problems too
    fixed = server.replace(f"  forward: {{caBundle: {bundle}}}\n", "")
    control.apply([("fixed.yaml", fixed)])  # the way out
    # A restart with it still broken says how to get past it.
    control.apply([("bundle.yaml", server.replace(str(bundle), str(_write_ca(bundle))))])
    control.apply([("ac.yaml", "apiVersion: latchkey/v1\nkind: AccessCondition\nmetadata: "
                   "{name: enc}\nspec: {aws: {actions: ['kms:Encrypt']}}\n")])  # fmt: skip
    bundle.unlink()
    with pytest.raises(ConfigError) as caught:
        plane(control._store.path)
    assert "latchkey up --config FILE|DIR" in caught.value.issues[0].message


def _write_ca(path: Path) -> Path:
    from latchkey.crypto.x509 import load_or_create_ca

    key = path.with_suffix(".key")
    key.unlink(missing_ok=True)
    ca = load_or_create_ca(path, key, now=dt.datetime.now(dt.UTC))
    path.write_bytes(ca.cert_pem)
    return path


def test_stored_positions_are_those_get_prints() -> None:
    import yaml

    from latchkey.control.loader import StoredObject

    obj = StoredObject("ClientWorkload", "x", {"identities": [{"sourceCidr": "10.0.0.1/8"}]})
    with pytest.raises(ConfigError) as caught:
        load_stored([obj])
    [issue] = caught.value.issues
    printed = yaml.safe_dump_all([obj.document()], sort_keys=False)  # what get -o yaml prints
    line = next(n for n, text in enumerate(printed.splitlines(), 1) if "sourceCidr" in text)
    assert (issue.file, issue.line, issue.field) == (
        "stored clientworkload/x",
        line,
        "spec.identities[0].sourceCidr",
    )


# -- prune, restart, delete ---------------------------------------------------------------


@pytest.mark.parametrize("files", [[], [("empty.yaml", "---\n# nothing\n---\n")]])
def test_prune_with_no_objects_is_refused(
    control: ControlPlane, files: list[tuple[str, str]]
) -> None:
    before = control.objects()
    with pytest.raises(NoObjects, match="no objects passed to apply"):
        control.apply(files, prune=True)
    assert control.objects() == before
    assert control.apply(files) == []  # without --prune: nothing to do


def test_an_empty_configuration_stays_empty_after_a_restart(tmp_path: Path) -> None:
    control = plane(tmp_path / "control.db")
    for obj in reversed(control.objects()):
        control.delete(obj.kind, obj.name)
    assert control.objects() == []
    again = plane(tmp_path / "control.db")
    assert again.objects() == []
    assert again.config == empty_config()
    assert again.origin == "stored configuration (latchkey apply)"


def test_an_old_store_with_objects_counts_as_applied(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "control.db")
    assert not store.objects_written()
    store._db.execute("INSERT INTO control_objects VALUES ('AccessCondition', 'enc', "
                      "'{\"aws\": {\"actions\": [\"kms:Encrypt\"]}}', 0)")  # fmt: skip
    assert store.objects_written()
    control = ControlPlane(store)
    control.start(config_paths=[], default_text=DEFAULT)
    assert [o.name for o in control.objects()] == ["enc"]


def test_delete_refuses_a_trust_provider_a_policy_names(control: ControlPlane) -> None:
    control.apply([("tp.yaml", TRUST)])
    with pytest.raises(InUse, match="AccessPolicy 'tp-policy' refer"):
        control.delete("TrustProvider", "local-process")


def test_referrers_know_every_reference_the_loader_checks() -> None:
    """Every field loader._references follows is one referrers() follows."""
    policy = parse_document({
        "apiVersion": "latchkey/v1", "kind": "AccessPolicy", "metadata": {"name": "p"},
        "spec": {"clients": ["c"], "server": "s", "credentialProviders": ["cp"],
                 "conditions": ["ac"], "trustProviders": ["tp"]},
    })  # fmt: skip
    client = parse_document({
        "apiVersion": "latchkey/v1", "kind": "ClientWorkload", "metadata": {"name": "c"},
        "spec": {"identities": [{"token": {"trustProvider": "tp2"}}]},
    })  # fmt: skip
    from latchkey.control.loader import StoredObject

    objects = [
        StoredObject(p.kind, p.metadata.name, p.spec.model_dump(by_alias=True, exclude_none=True))
        for p in (policy, client)
    ]
    for parsed in (policy, client):
        for loc, kind, name in _references(parsed):
            assert kind in POLICY_FIELDS or kind == "TrustProvider", loc
            assert referrers(objects, kind, name), (loc, kind, name)


# -- the REST API -------------------------------------------------------------------------


def call(api: ControlApi, method: str, target: str, body: object = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    request = Request(method, target, [("Authorization", f"Bearer {TOKEN}")], data)
    response = asyncio.run(api(request, Peer("127.0.0.1", 1)))
    return response.status, json.loads(response.body)


@pytest.fixture
def api(control: ControlPlane, tmp_path: Path) -> ControlApi:
    async def explainer(doc: dict[str, Any]) -> dict[str, Any]:
        return {}

    return ControlApi(control, ControlStore(tmp_path / "events.db"), TOKEN, explainer)


def test_apply_takes_files_each_with_its_name(api: ControlApi) -> None:
    files = [{"filename": "typo.yaml", "documents": TYPO},
             {"filename": "missing.yaml", "documents": MISSING_REFERENCES}]  # fmt: skip
    status, doc = call(api, "POST", "/api/v1/apply", {"files": files})
    assert (status, doc["code"]) == (422, "InvalidConfiguration")
    assert [(i["file"], i["line"]) for i in doc["issues"]] == [
        ("typo.yaml", 6),
        ("missing.yaml", 11),
        ("missing.yaml", 12),
    ]
    # the first form, one file, still works
    one = {"documents": TYPO.replace('"443"', "443"), "filename": "t.yaml"}
    status, doc = call(api, "POST", "/api/v1/apply", one)
    assert (status, doc["changes"][0]["action"]) == (200, "created")


def test_apply_prune_with_nothing_is_a_bad_request(api: ControlApi) -> None:
    status, doc = call(api, "POST", "/api/v1/apply", {"files": [], "prune": True})
    assert (status, doc["code"]) == (400, "BadRequest")
    assert "no objects passed to apply" in doc["message"]


def test_names_in_paths_are_decoded_and_checked(api: ControlApi, control: ControlPlane) -> None:
    victim = "apiVersion: latchkey/v1\nkind: ClientWorkload\nmetadata: {name: victim}\n" \
             "spec: {identities: [{sourceCidr: 10.1.0.0/16}]}\n"  # fmt: skip
    control.apply([("v.yaml", victim)])
    status, doc = call(api, "DELETE", "/api/v1/cw/victim%23oops")
    assert status == 400
    assert "invalid name 'victim#oops'" in doc["message"]
    assert [o.name for o in control.objects("ClientWorkload")] == ["local-apps", "victim"]


def test_delete_of_a_trust_provider_in_use_is_409(api: ControlApi, control: ControlPlane) -> None:
    control.apply([("tp.yaml", TRUST)])
    status, doc = call(api, "DELETE", "/api/v1/tp/local-process")
    assert (status, doc["code"]) == (409, "InUse")
    assert "AccessPolicy 'tp-policy'" in doc["message"]


def _event(time: str) -> AccessEvent:
    return AccessEvent(
        time=time, source="127.0.0.1", client="app", server="kms", policy="p",
        decision="allowed", reason=None, detail=None, credential_provider=None, method="GET",
        path="/", status=200, latency_ms=1.0,
    )  # fmt: skip


def test_events_since_compares_times(api: ControlApi) -> None:
    api.events.add_events([
        _event("2026-11-29T05:11:56.999999Z"),
        _event("2026-11-29T05:11:57Z"),  # (written without a fraction)
        _event("2026-11-29T05:11:57.454616Z"),
        _event("2026-11-29T05:11:58.000001Z"),
    ])  # fmt: skip

    def times(since: str) -> list[str]:
        status, doc = call(api, "GET", f"/api/v1/events?since={since}")
        assert status == 200, doc
        return [e["time"][17:] for e in doc["items"]]

    assert times("2026-11-29T05:11:57Z") == ["57Z", "57.454616Z", "58.000001Z"]
    assert times("2026-11-29T07:11:57.45%2B02:00") == ["57.454616Z", "58.000001Z"]
    assert times("2026-11-29T05:11:57.454617Z") == ["58.000001Z"]
    status, doc = call(api, "GET", "/api/v1/events?since=garbage")
    assert (status, doc["code"]) == (400, "BadRequest")
    assert "since" in doc["message"]


def test_list_events_since_is_a_time(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "c.db")
    store.add_events([_event("2026-11-29T05:11:57.450000Z")])
    when = dt.datetime(2026, 11, 29, 5, 11, 57, tzinfo=dt.UTC)
    assert len(store.list_events(since=when)) == 1
    assert store.list_events(since=when + dt.timedelta(seconds=1)) == []


def test_an_apply_runs_objects_in_the_order_a_restart_does(tmp_path: Path) -> None:
    control = plane(tmp_path / "control.db")
    clients = "".join(
        f"---\napiVersion: latchkey/v1\nkind: ClientWorkload\nmetadata: {{name: {n}}}\n"
        "spec: {identities: [{sourceCidr: 10.0.0.0/8}]}\n"
        for n in ("zz", "aa")
    )
    control.apply([("c.yaml", clients)])
    again = plane(tmp_path / "control.db")
    assert [c.name for c in control.config.client_workloads] == ["aa", "local-apps", "zz"]
    assert control.config == again.config
