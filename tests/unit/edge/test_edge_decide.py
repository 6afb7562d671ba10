"""decide(): which client is calling and which policy lets it reach a server (default deny)."""

from __future__ import annotations

import pytest

from latchkey.control.loader import load_config_text
from latchkey.control.model import Config, ServerWorkload, empty_config
from latchkey.edge.decide import Allowed, Denied, Reason, decide


def _server(name: str, host: str) -> str:
    return f"""\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: {name}}}
spec:
  host: {host}
  port: 443
  tls: true
  authentication: {{method: http, scheme: aws-sigv4}}
"""


def _client(name: str, *cidrs: str) -> str:
    identities = "\n".join(f'    - sourceCidr: "{cidr}"' for cidr in cidrs)
    return f"""\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: {name}}}
spec:
  identities:
{identities}
"""


def _policy(name: str, server: str, *clients: str) -> str:
    return f"""\
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: {name}}}
spec:
  clients: [{", ".join(clients)}]
  server: {server}
  credentialProvider: federation
"""


PROVIDER = """\
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: federation}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/latchkey
  audience: sts.amazonaws.com
"""

YAML = "---\n".join(
    [
        _server("aws-kms", "kms.us-east-1.amazonaws.com"),
        _server("aws-sts", "sts.amazonaws.com"),
        _server("aws-iam", "iam.amazonaws.com"),
        PROVIDER,
        _client("local-apps", "127.0.0.0/8"),
        _client("admins", "127.0.0.2/32"),
        _client("v6-apps", "fd00::/8"),
        _client("mapped-apps", "::ffff:172.16.0.0/108"),
        _client("lab", "10.0.0.0/8"),
        _client("narrow", "192.168.0.0/16", "192.168.7.0/24"),  # every identity must hold
        _policy("apps-to-kms", "aws-kms", "local-apps", "v6-apps", "mapped-apps"),
        _policy("admins-to-sts", "aws-sts", "admins"),
        _policy("narrow-to-iam", "aws-iam", "narrow"),
    ]
)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config_text(YAML)


def server(config: Config, name: str) -> ServerWorkload:
    (found,) = [s for s in config.server_workloads if s.name == name]
    return found


@pytest.mark.parametrize(
    ("address", "target", "client", "policy"),
    [
        ("127.0.0.1", "aws-kms", "local-apps", "apps-to-kms"),
        ("127.255.255.254", "aws-kms", "local-apps", "apps-to-kms"),
        ("127.0.0.2", "aws-kms", "local-apps", "apps-to-kms"),
        ("127.0.0.2", "aws-sts", "admins", "admins-to-sts"),  # second matching client
        ("::ffff:127.0.0.9", "aws-kms", "local-apps", "apps-to-kms"),  # IPv4-mapped
        ("::FFFF:7F00:1", "aws-kms", "local-apps", "apps-to-kms"),
        ("fd00::1", "aws-kms", "v6-apps", "apps-to-kms"),
        ("fdff:ffff::abcd", "aws-kms", "v6-apps", "apps-to-kms"),
        ("[fd12::5]", "aws-kms", "v6-apps", "apps-to-kms"),
        ("172.16.3.4", "aws-kms", "mapped-apps", "apps-to-kms"),  # IPv4 into a mapped network
        ("192.168.7.7", "aws-iam", "narrow", "narrow-to-iam"),
    ],
)
def test_allowed(config: Config, address: str, target: str, client: str, policy: str) -> None:
    decision = decide(config, server(config, target), address)
    assert isinstance(decision, Allowed)
    assert (decision.client.name, decision.policy.name) == (client, policy)
    assert decision.policy.credential_provider == "federation"


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("192.0.2.1", "aws-kms"),
        ("128.0.0.1", "aws-kms"),
        ("::1", "aws-kms"),  # IPv6 loopback is not 127.0.0.0/8
        ("fe80::1", "aws-kms"),
        ("::ffff:192.0.2.1", "aws-kms"),
        ("172.32.0.1", "aws-kms"),
        ("192.168.8.1", "aws-iam"),  # in one identity of 'narrow' but not the other
        ("not-an-address", "aws-kms"),
        ("", "aws-sts"),
    ],
)
def test_identity_not_matched(config: Config, address: str, target: str) -> None:
    decision = decide(config, server(config, target), address)
    assert isinstance(decision, Denied)
    assert decision.reason is Reason.IDENTITY_NOT_MATCHED
    assert decision.reason.value == "IdentityNotMatched"
    assert f"source address {address})" in decision.message
    assert f"'{target}'" in decision.message


@pytest.mark.parametrize(
    ("address", "target", "clients"),
    [
        ("10.1.2.3", "aws-kms", "lab"),
        ("::ffff:10.0.0.1", "aws-kms", "lab"),
        ("127.0.0.1", "aws-sts", "local-apps"),
        ("127.0.0.2", "aws-iam", "admins, local-apps"),
        ("fd00::1", "aws-sts", "v6-apps"),
    ],
)
def test_no_matching_policy(config: Config, address: str, target: str, clients: str) -> None:
    decision = decide(config, server(config, target), address)
    assert isinstance(decision, Denied)
    assert decision.reason is Reason.NO_MATCHING_POLICY
    assert decision.reason.value == "NoMatchingPolicy"
    assert decision.message == (
        f"no access policy lets client workload(s) {clients} reach server workload '{target}'"
    )


def test_empty_config_denies_everyone(config: Config) -> None:
    decision = decide(empty_config(), server(config, "aws-kms"), "127.0.0.1")
    assert isinstance(decision, Denied)
    assert decision.reason is Reason.IDENTITY_NOT_MATCHED
