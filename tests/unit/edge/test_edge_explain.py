"""explain() agrees with the edge's decision and says why, step by step."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from latchkey.control.conditions import RequestFacts
from latchkey.control.loader import load_config_text
from latchkey.control.model import Evidence, ProcessFacts
from latchkey.edge.decide import Allowed, check_conditions, decide
from latchkey.edge.explain import explain

CONFIG = load_config_text(
    """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: aws-kms}
spec: {host: kms.us-east-1.amazonaws.com, port: 443, tls: true,
       authentication: {method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: kms-west}
spec: {host: kms.us-west-2.amazonaws.com, port: 443, tls: true,
       authentication: {method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: fed}
spec: {type: aws-sts-federation, roleArn: "arn:aws:iam::000000000000:role/r", audience: sts}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: loopback}
spec: {identities: [{sourceCidr: 127.0.0.0/8}]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: builders}
spec: {identities: [{sourceCidr: 10.0.0.0/8}, {process: {user: builder}}]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: loopback-kms}
spec: {clients: [loopback], server: aws-kms, credentialProvider: fed, conditions: [encrypt-only]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: builders-west}
spec: {clients: [builders], server: kms-west, credentialProvider: fed}
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: encrypt-only}
spec: {aws: {actions: ["kms:Encrypt", "kms:GenerateDataKey*"]}}
"""
)
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
BUILDER = ProcessFacts(pid=7, uid=1000, user="builder", exe="/usr/bin/make")


def edge_outcome(host: str, evidence: Evidence, facts: RequestFacts) -> tuple[str, str | None]:
    """What the edge does, with the functions it calls (server.py: _serve_proxy / _handle)."""
    server = CONFIG.server_workload_for(host, 443)
    if server is None:
        return "tunnelled", None
    decision = decide(CONFIG, server, evidence)
    if not isinstance(decision, Allowed):
        return "denied", decision.reason.value
    failed = check_conditions(CONFIG, decision, facts)
    if failed is not None:
        return "denied", failed.reason.value
    return "allowed", None


def test_fifty_generated_cases_agree() -> None:
    rng = random.Random(20261128)
    hosts = ["kms.us-east-1.amazonaws.com", "kms.us-west-2.amazonaws.com", "example.com"]
    addresses = ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "::ffff:127.0.0.1"]
    actions = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ListKeys", None]
    outcomes = set()
    for _ in range(50):
        host = rng.choice(hosts)
        evidence = Evidence(rng.choice(addresses), rng.choice([None, BUILDER]))
        facts = RequestFacts(now=NOW, action=rng.choice(actions))
        result = explain(CONFIG, host=host, port=443, evidence=evidence, facts=facts)
        assert (result.outcome, result.reason) == edge_outcome(host, evidence, facts)
        outcomes.add((result.outcome, result.reason))
    # the generated cases cover every kind of outcome
    assert outcomes >= {
        ("allowed", None),
        ("tunnelled", None),
        ("denied", "IdentityNotMatched"),
        ("denied", "ConditionFailed"),
    }


@pytest.mark.parametrize(
    ("address", "process", "action", "expected", "lines"),
    [
        ("127.0.0.1", None, "kms:Encrypt", "ALLOWED",
         ["PASS  identity         ClientWorkload 'loopback' matches",
          "PASS  condition        'encrypt-only' holds",
          "PASS  credentials      CredentialProvider 'fed'"]),
        ("127.0.0.1", None, "kms:Decrypt", "DENIED (ConditionFailed)",
         ["FAIL  condition        'encrypt-only': action kms:Decrypt is not one of"]),
        ("10.0.0.5", None, "kms:Encrypt", "DENIED (IdentityNotMatched)",
         ["FAIL  identity         ClientWorkload 'builders': the calling process could not",
          "FAIL  identity         ClientWorkload 'loopback': source address 10.0.0.5 is not in"]),
        ("10.0.0.5", BUILDER, "kms:Encrypt", "DENIED (NoMatchingPolicy)",
         ["PASS  identity         ClientWorkload 'builders' matches"]),
    ],
)  # fmt: skip
def test_rendered_steps(
    address: str, process: ProcessFacts | None, action: str, expected: str, lines: list[str]
) -> None:
    result = explain(
        CONFIG,
        host="kms.us-east-1.amazonaws.com",
        port=443,
        evidence=Evidence(address, process),
        facts=RequestFacts(now=NOW, action=action),
    )
    text = result.render()
    assert text.splitlines()[-1] == expected
    assert text.splitlines()[0].startswith("PASS  server workload")
    for line in lines:
        assert any(row.startswith(line) for row in text.splitlines()), (line, text)


ATTESTED = load_config_text(
    """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: aws-kms}
spec: {host: kms.us-east-1.amazonaws.com, port: 443, tls: true,
       authentication: {method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: fed}
spec: {type: aws-sts-federation, roleArn: "arn:aws:iam::000000000000:role/r", audience: sts}
---
apiVersion: latchkey/v1
kind: TrustProvider
metadata: {name: local-process}
spec: {type: process, facts: [exe, uid, exeSha256]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: loopback}
spec: {identities: [{sourceCidr: 127.0.0.0/8}]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: attested}
spec: {clients: [loopback], server: aws-kms, credentialProvider: fed,
       trustProviders: [local-process]}
"""
)


@pytest.mark.parametrize(
    ("process", "allowed", "why"),
    [
        (None, False, "the calling process could not be read"),
        (ProcessFacts(1, 0, "root", "/usr/bin/aws"), False, "no exeSha256 for the process"),
        (ProcessFacts(1, 0, "root", "/usr/bin/aws", exe_sha256="ab" * 32), True, ""),
    ],
)
def test_policy_needs_its_trust_provider_to_attest(
    process: ProcessFacts | None, allowed: bool, why: str
) -> None:
    assert ATTESTED.needs_process
    assert ATTESTED.needs_exe_sha256
    server = ATTESTED.server_workload_for("kms.us-east-1.amazonaws.com", 443)
    assert server is not None
    decision = decide(ATTESTED, server, Evidence("127.0.0.1", process))
    assert isinstance(decision, Allowed) is allowed
    if not allowed:
        assert why in decision.message  # type: ignore[union-attr]
        assert "access policy 'attested' needs attestation" in decision.message  # type: ignore[union-attr]


def test_a_process_trust_provider_takes_only_facts() -> None:
    from latchkey.control.loader import ConfigError

    with pytest.raises(ConfigError, match="takes only facts"):
        load_config_text(
            "apiVersion: latchkey/v1\nkind: TrustProvider\nmetadata: {name: p}\n"
            "spec: {type: process, issuer: 'https://x.example'}\n"
        )
