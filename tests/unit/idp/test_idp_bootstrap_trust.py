"""The bootstrap's role trust for the idp: ``:aud`` exact, ``:sub`` on the provider's prefix,
and convergence of a role whose trust does not let the current issuer in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey.aws.policy import Decision, RequestContext, evaluate, parse_policy
from latchkey.cloud.bootstrap import bootstrap_federation, ensure_federation
from latchkey.control.defaults import render_default_config
from latchkey.control.loader import load_config_text
from latchkey.idp.issuer import subject_prefix, workload_subject
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/latchkey-kms"
ISSUER = "https://127.0.0.1:8443"
KEY = "127.0.0.1:8443"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{KEY}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    made = SqliteStore(tmp_path / "latchkey.db")
    yield made
    made.close()


def allowed(document: str, sub: str, aud: str = "sts.amazonaws.com", key: str = KEY) -> bool:
    ctx = RequestContext(
        action="sts:AssumeRoleWithWebIdentity",
        resource=ROLE,
        principals=frozenset({f"arn:aws:iam::{ACCOUNT}:oidc-provider/{key}"}),
        keys={f"{key}:aud": aud, f"{key}:sub": sub},
    )
    return evaluate(parse_policy(document, require_principal=True), ctx) is Decision.ALLOW


def federate(store: SqliteStore, issuer: str = ISSUER) -> list[str]:
    return ensure_federation(
        store,
        account=ACCOUNT,
        issuer_url=issuer,
        audience="sts.amazonaws.com",
        role_arn=ROLE,
        subject_prefix=subject_prefix("kms-federation"),
        clients=["local-apps"],
    )


def test_new_role_trusts_aud_and_the_provider_prefix(store: SqliteStore) -> None:
    assert federate(store) == [PROVIDER_ARN, ROLE]
    role = store.load_role("latchkey-kms")
    assert role is not None
    (stmt,) = json.loads(role.trust_policy)["Statement"]
    assert stmt["Principal"] == {"Federated": PROVIDER_ARN}
    assert stmt["Condition"] == {
        "StringEquals": {f"{KEY}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{KEY}:sub": "latchkey:kms-federation:*"},
    }
    doc = role.trust_policy
    assert allowed(doc, workload_subject("kms-federation", "local-apps"))
    assert allowed(doc, workload_subject("kms-federation", "any-other-client"))
    assert not allowed(doc, workload_subject("kms-federation-2", "local-apps"))
    assert not allowed(doc, workload_subject("other", "local-apps"))
    assert not allowed(doc, "local-apps")
    assert not allowed(doc, workload_subject("kms-federation", "local-apps"), aud="other")
    assert federate(store) == []  # converged: nothing more to do


def test_a_moved_issuer_gets_one_more_statement(store: SqliteStore) -> None:
    federate(store)
    moved = "https://localhost:9443/tenants/a"
    made = federate(store, moved)
    assert made == [
        f"arn:aws:iam::{ACCOUNT}:oidc-provider/localhost:9443/tenants/a",
        f"trust for arn:aws:iam::{ACCOUNT}:oidc-provider/localhost:9443/tenants/a on {ROLE}",
    ]
    role = store.load_role("latchkey-kms")
    assert role is not None
    assert len(json.loads(role.trust_policy)["Statement"]) == 2
    sub = workload_subject("kms-federation", "local-apps")
    assert allowed(role.trust_policy, sub)  # the old issuer still trusted
    assert allowed(role.trust_policy, sub, key="localhost:9443/tenants/a")
    assert federate(store, moved) == []


def test_a_role_whose_sub_condition_misses_a_client_converges(store: SqliteStore) -> None:
    federate(store)
    narrow = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": PROVIDER_ARN},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{KEY}:sub": "local-apps"}},
                }
            ],
        }
    )
    store.update_role_trust_policy("latchkey-kms", narrow)  # e.g. made by an older release
    assert federate(store) == [f"trust for {PROVIDER_ARN} on {ROLE}"]
    role = store.load_role("latchkey-kms")
    assert role is not None
    assert allowed(role.trust_policy, workload_subject("kms-federation", "local-apps"))


def test_bootstrap_federation_covers_local_providers_only(store: SqliteStore) -> None:
    config = load_config_text(render_default_config("127.0.0.1", 4566), "default.yaml")
    assert bootstrap_federation(
        store, config, account=ACCOUNT, cloud=("127.0.0.1", 9999), issuer_url=ISSUER
    ) == []  # fmt: skip
    made = bootstrap_federation(
        store, config, account=ACCOUNT, cloud=("127.0.0.1", 4566), issuer_url=ISSUER
    )
    assert made == [PROVIDER_ARN, ROLE]
    role = store.load_role("latchkey-kms")
    assert role is not None
    assert allowed(role.trust_policy, "latchkey:kms-federation:local-apps")
