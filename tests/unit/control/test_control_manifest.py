"""Config as code: canonical objects, render round trips, apply plans."""

from __future__ import annotations

import json

import pytest

from latchkey.control.defaults import render_default_config
from latchkey.control.loader import load_objects_text
from latchkey.control.manifest import (
    Action,
    config_of,
    merged,
    plan,
    render_json,
    render_table,
    render_yaml,
    resolve_kind,
)

DEFAULT = render_default_config("127.0.0.1", 4566)


def test_get_yaml_then_apply_again_is_unchanged() -> None:
    config, objects = load_objects_text(DEFAULT, "default.yaml")
    printed = render_yaml(objects)
    again_config, again = load_objects_text(printed, "printed.yaml")
    assert again_config == config
    changes = plan(objects, again, prune=True)
    assert {c.action for c in changes} == {Action.UNCHANGED}
    assert len(changes) == 4
    assert render_yaml(again) == printed  # stable text too


def test_defaults_are_canonical_whoever_writes_them() -> None:
    explicit = DEFAULT.replace("  appProtocol: http\n", "  appProtocol: http\n")
    terse = DEFAULT.replace("  appProtocol: http\n", "").replace("  sessionDuration: 3600\n", "")
    _, a = load_objects_text(explicit)
    _, b = load_objects_text(terse)
    assert a == b


def test_plan_created_updated_deleted() -> None:
    _, current = load_objects_text(DEFAULT)
    changed = DEFAULT.replace("sourceCidr: 127.0.0.0/8", "sourceCidr: 127.0.0.1/32")
    changed = changed.split("---\napiVersion: latchkey/v1\nkind: AccessPolicy")[0]
    changed += "---\napiVersion: latchkey/v1\nkind: AccessCondition\nmetadata: {name: enc}\n"
    changed += "spec: {aws: {actions: ['kms:Encrypt']}}\n"
    _, desired = load_objects_text(changed)
    result = {str(c) for c in plan(current, desired, prune=True)}
    assert result == {
        "serverworkload/aws-kms unchanged",
        "credentialprovider/kms-federation unchanged",
        "clientworkload/local-apps updated",
        "accesscondition/enc created",
        "accesspolicy/local-apps-to-kms deleted",
    }
    without_prune = {str(c) for c in plan(current, desired, prune=False)}
    assert "accesspolicy/local-apps-to-kms deleted" not in without_prune
    assert len(merged(current, desired, prune=False)) == 5
    assert len(merged(current, desired, prune=True)) == 4
    config_of(merged(current, desired, prune=False))  # still a valid whole


def test_json_and_table() -> None:
    _, objects = load_objects_text(DEFAULT)
    doc = json.loads(render_json(objects))
    assert doc["kind"] == "List"
    assert [i["kind"] for i in doc["items"]] == [
        "ServerWorkload",
        "CredentialProvider",
        "ClientWorkload",
        "AccessPolicy",
    ]
    table = render_table(objects).splitlines()
    assert table[0].split() == ["KIND", "NAME", "SUMMARY"]
    assert table[1].startswith("ServerWorkload      aws-kms")


@pytest.mark.parametrize(
    ("text", "kind"), [("sw", "ServerWorkload"), ("AccessPolicies", "AccessPolicy"),
                       ("tp", "TrustProvider")],
)  # fmt: skip
def test_resolve_kind(text: str, kind: str) -> None:
    assert resolve_kind(text) == kind


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'widgets'"):
        resolve_kind("widgets")
