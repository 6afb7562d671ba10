"""The frozen domain objects: matching hosts, addresses and lookups."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from latchkey.control.model import (
    AccessPolicy,
    AuthScheme,
    ClientWorkload,
    Config,
    CredentialProvider,
    ServerWorkload,
    SourceCidr,
    empty_config,
    normalize_host,
)


def server(name: str, host: str, port: int = 443) -> ServerWorkload:
    return ServerWorkload(
        name=name,
        host=host,
        port=port,
        tls=True,
        app_protocol="http",
        forward_host=host,
        forward_port=port,
        forward_tls=True,
        tls_verify=True,
        auth_scheme=AuthScheme.AWS_SIGV4,
    )


def cidr(text: str) -> SourceCidr:
    return SourceCidr(ipaddress.ip_network(text))


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("kms.us-east-1.amazonaws.com", 443, True),
        ("KMS.US-EAST-1.AmazonAWS.com", 443, True),
        ("kms.us-east-1.amazonaws.com.", 443, True),
        ("kms.us-east-1.amazonaws.com", 80, False),
        ("kms.us-east-2.amazonaws.com", 443, False),
        ("xkms.us-east-1.amazonaws.com", 443, False),
    ],
)
def test_exact_host_matching(host: str, port: int, expected: bool) -> None:
    assert server("kms", "kms.us-east-1.amazonaws.com").matches(host, port) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("kms.us-east-1.amazonaws.com", True),
        ("STS.us-east-1.amazonaws.com.", True),
        ("us-east-1.amazonaws.com", False),  # no extra label
        (".us-east-1.amazonaws.com", False),  # empty extra label
        ("a.kms.us-east-1.amazonaws.com", False),  # two extra labels
        ("kmsus-east-1.amazonaws.com", False),
    ],
)
def test_wildcard_matches_exactly_one_label(host: str, expected: bool) -> None:
    assert server("any", "*.us-east-1.amazonaws.com").matches(host, 443) is expected


def test_ip_literal_hosts() -> None:
    assert server("v6", "::1").matches("[0:0::1]", 443)
    assert server("v4", "127.0.0.1").matches("127.0.0.1", 443)
    assert normalize_host("[2001:DB8::0001]") == "2001:db8::1"


def test_upstream_host_for_wildcards() -> None:
    wildcard = server("any", "*.example.com")
    assert wildcard.upstream_host("A.Example.com.") == "a.example.com"
    pinned = dataclasses.replace(wildcard, forward_host="127.0.0.1")
    assert pinned.upstream_host("a.example.com") == "127.0.0.1"


@pytest.mark.parametrize(
    ("network", "address", "expected"),
    [
        ("127.0.0.0/8", "127.0.0.1", True),
        ("127.0.0.0/8", "::ffff:127.0.0.1", True),
        ("127.0.0.0/8", "::ffff:10.0.0.1", False),
        ("127.0.0.0/8", "::1", False),
        ("::1/128", "::1", True),
        ("::1/128", "[::1]", True),
        ("::1/128", "127.0.0.1", False),
        ("::ffff:0:0/96", "10.1.2.3", True),
        ("10.0.0.0/8", "not an address", False),
        ("10.0.0.0/8", "", False),
        ("10.0.0.0/8", "10.0.0.1:443", False),
    ],
)
def test_source_cidr_matching(network: str, address: str, expected: bool) -> None:
    assert cidr(network).matches(address) is expected


def test_client_workload_needs_every_identity() -> None:
    both = ClientWorkload("c", (cidr("10.0.0.0/8"), cidr("10.1.0.0/16")))
    assert both.matches("10.1.2.3")
    assert not both.matches("10.2.0.1")
    assert not ClientWorkload("none", ()).matches("10.1.2.3")


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        server("kms", "kms.example.com").port = 1  # type: ignore[misc]


def test_config_lookups() -> None:
    wildcard = server("wild", "*.us-east-1.amazonaws.com")
    exact = server("kms", "kms.us-east-1.amazonaws.com")
    provider = CredentialProvider(
        "fed", "aws-sts-federation", "arn:aws:iam::000000000000:role/r", "sts.amazonaws.com",
        3600, None, "us-east-1", None,
    )  # fmt: skip
    local, other = ClientWorkload("local", (cidr("127.0.0.0/8"),)), ClientWorkload("lan", ())
    policies = (
        AccessPolicy("p1", ("local",), "kms", "fed"),
        AccessPolicy("p2", ("local", "lan"), "wild", "fed"),
    )
    config = Config((wildcard, exact), (provider,), (local, other), policies)

    assert config.server_workload_for("KMS.us-east-1.amazonaws.com.", 443) is exact
    assert config.server_workload_for("sts.us-east-1.amazonaws.com", 443) is wildcard
    assert config.server_workload_for("kms.us-east-1.amazonaws.com", 80) is None
    assert config.credential_provider("fed") is provider
    assert config.client_workload("local") is local
    assert config.clients_matching("::ffff:127.0.0.9") == (local,)
    assert config.policies_for("wild") == (policies[1],)
    assert config.policies_for("nothing") == ()
    with pytest.raises(KeyError):
        config.credential_provider("nope")
    with pytest.raises(KeyError):
        config.client_workload("nope")


def test_empty_config() -> None:
    config = empty_config()
    assert config.server_workload_for("example.com", 443) is None
    assert config.clients_matching("127.0.0.1") == ()


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("*.us-east-1.amazonaws.com", True),
        ("*.example.co.uk", True),
        ("*.co.uk", False),
        ("*.com.au", False),
        ("*.com", False),
    ],
)
def test_wildcards_stay_below_public_suffixes(host: str, ok: bool) -> None:
    from latchkey.control.loader import ConfigError, load_config_text

    text = (
        "apiVersion: latchkey/v1\nkind: ServerWorkload\nmetadata: {name: s}\n"
        f"spec: {{host: '{host}', port: 443, tls: true, "
        "authentication: {method: http, scheme: none}}\n"
    )
    if ok:
        load_config_text(text)
    else:
        with pytest.raises(ConfigError, match="public suffix"):
            load_config_text(text)
