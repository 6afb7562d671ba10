"""Loading declarative configuration: the happy path and precise error positions."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from latchkey.control import schema
from latchkey.control.loader import (
    ConfigError,
    ConfigIssue,
    load_config_file,
    load_config_paths,
    load_config_text,
)
from latchkey.control.model import (
    AccessPolicy,
    AuthScheme,
    ClientWorkload,
    CredentialProvider,
    ServerWorkload,
    SourceCidr,
    empty_config,
)

# Line numbers matter: the error table below points into this text.
EXAMPLE = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: aws-kms}
spec:
  host: kms.us-east-1.amazonaws.com
  port: 443
  tls: true
  appProtocol: http
  forward: {port: 443, tls: true}
  authentication: {method: http, scheme: aws-sigv4}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: kms-federation}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/latchkey-kms
  audience: sts.amazonaws.com
  sessionDuration: 3600
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: local-apps}
spec:
  identities:
    - sourceCidr: 127.0.0.0/8
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: local-apps-to-kms}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
---
"""

EXTRA_CLIENT = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: local-apps}
spec: {identities: [{sourceCidr: 10.0.0.0/8}]}
"""

EXTRA_SERVER = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: kms-again}
spec:
  host: KMS.us-east-1.amazonaws.com.
  port: 443
  tls: true
  authentication: {method: http, scheme: aws-sigv4}
"""


def test_example_loads_into_domain_objects() -> None:
    config = load_config_text(EXAMPLE, "x.yaml")

    assert config.server_workloads == (
        ServerWorkload(
            name="aws-kms",
            host="kms.us-east-1.amazonaws.com",
            port=443,
            tls=True,
            app_protocol="http",
            forward_host="kms.us-east-1.amazonaws.com",
            forward_port=443,
            forward_tls=True,
            tls_verify=True,
            auth_scheme=AuthScheme.AWS_SIGV4,
        ),
    )
    assert config.credential_providers == (
        CredentialProvider(
            name="kms-federation",
            type="aws-sts-federation",
            role_arn="arn:aws:iam::000000000000:role/latchkey-kms",
            audience="sts.amazonaws.com",
            session_duration=3600,
            sts_endpoint=None,
            region="us-east-1",
            role_session_name=None,
        ),
    )
    assert config.client_workloads == (
        ClientWorkload("local-apps", (SourceCidr(ipaddress.ip_network("127.0.0.0/8")),)),
    )
    assert config.access_policies == (
        AccessPolicy("local-apps-to-kms", ("local-apps",), "aws-kms", "kms-federation"),
    )
    assert config.server_workload_for("kms.us-east-1.amazonaws.com", 443) is not None
    assert config.clients_matching("127.0.0.1") == config.client_workloads


def test_optional_fields_and_forward_overrides() -> None:
    text = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: kms-local}
spec:
  host: "*.kms.example.com"
  port: 8443
  tls: true
  forward: {host: 127.0.0.1, port: 4566, tls: false, tlsVerification: none}
  authentication: {method: http, scheme: bearer}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: local-sts}
spec:
  type: aws-sts-federation
  roleArn: arn:aws-us-gov:iam::123456789012:role/path/to/role
  audience: latchkey
  sessionDuration: 900
  stsEndpoint: http://127.0.0.1:4566
  region: us-gov-west-1
  roleSessionName: edge@latchkey
"""
    config = load_config_text(text)
    server = config.server_workloads[0]
    assert (server.host, server.app_protocol, server.auth_scheme) == (
        "*.kms.example.com",
        "http",
        AuthScheme.BEARER,
    )
    assert (server.forward_host, server.forward_port, server.forward_tls) == (
        "127.0.0.1",
        4566,
        False,
    )
    assert server.tls_verify is False
    provider = config.credential_provider("local-sts")
    assert provider.sts_endpoint == "http://127.0.0.1:4566"
    assert (provider.region, provider.role_session_name) == ("us-gov-west-1", "edge@latchkey")
    assert provider.session_duration == 900


def test_empty_streams_and_documents_are_skipped() -> None:
    assert load_config_text("") == empty_config()
    assert load_config_text("---\n# only a comment\n---\n...\n") == empty_config()


# (name, edit of EXAMPLE, [(line, column, field, words in the message), ...])
BROKEN = [
    ("port out of range", ("port: 443", "port: 70000"), [(6, 9, "spec.port", "65535")]),
    (
        "typo in a field name",
        ("  host:", "  hots:"),
        [(5, 3, "spec.host", "missing required field"), (5, 3, "spec.hots", "unknown field")],
    ),
    (
        "CIDR with host bits",
        ("127.0.0.0/8", "127.0.0.1/8"),
        [(26, 19, "spec.identities[0].sourceCidr", "host bits set")],
    ),
    (
        "policy names a missing server",
        ("server: aws-kms", "server: aws-kmz"),
        [(33, 11, "spec.server", "no ServerWorkload named 'aws-kmz'")],
    ),
    (
        "policy names a missing client and provider",
        ("clients: [local-apps]\n", "clients: [local-apps, nobody]\n"),
        [(32, 25, "spec.clients[1]", "no ClientWorkload named 'nobody'")],
    ),
    (
        "duplicate name",
        ("---\n", "---\n" + EXTRA_CLIENT, -1),
        [(38, 18, "metadata.name", "duplicate ClientWorkload 'local-apps'")],
    ),
    (
        "two servers on one host:port",
        ("---\n", "---\n" + EXTRA_SERVER, -1),
        [(40, 9, "spec.host", "already served by ServerWorkload 'aws-kms'")],
    ),
    (
        "YAML syntax error",
        ("{name: aws-kms}", "{name: aws-kms"),
        [(4, 5, "", "YAML syntax error")],
    ),
    ("wrong apiVersion", ("v1\nkind: Cred", "v2\nkind: Cred"), [(12, 13, "apiVersion", "v1")]),
    ("unknown kind", ("kind: ServerWorkload", "kind: Server"), [(2, 7, "kind", "'Server'")]),
    ("wildcard over a TLD", ("host: kms.", 'host: "*.com" #'), [(5, 9, "spec.host", "wildcard")]),
    (
        "session too short",
        ("sessionDuration: 3600", "sessionDuration: 100"),
        [(19, 20, "spec.sessionDuration", "900")],
    ),
    (
        "bad role ARN",
        ("::000000000000:", "::0000:"),
        [(17, 12, "spec.roleArn", "invalid role ARN")],
    ),
    ("bad name", ("{name: aws-kms}", "{name: AWS_kms}"), [(3, 18, "metadata.name", "invalid")]),
    ("quoted boolean", ("tls: true\n  app", "tls: 'true'\n  app"), [(7, 8, "spec.tls", "bool")]),
    (
        "spec is not a mapping",
        ("  identities:\n    - sourceCidr: 127.0.0.0/8\n", "  - 127.0.0.0/8\n"),
        [(25, 3, "spec", "expected a mapping")],
    ),
    (
        "document that is not a mapping",
        ("---\n", "---\n- just a list\n", -1),
        [(36, 1, "", "must be a mapping")],
    ),
    (
        "empty clients",
        ("clients: [local-apps]", "clients: []"),
        [(32, 12, "spec.clients", "at least 1")],
    ),
    (
        "unsafe tag",
        ("audience: sts.amazonaws.com", "audience: !!python/name:os.system"),
        [(18, 13, "spec.audience", "bad value")],
    ),
    (
        "duplicate key",
        ("  port: 443\n", "  port: 443\n  port: 444\n"),
        [(7, 3, "spec.port", "duplicate key")],
    ),
]


def _edit(text: str, old: str, new: str, count: int = 1) -> str:
    assert old in text
    if count == -1:  # replace the last occurrence only
        head, _, tail = text.rpartition(old)
        return head + new + tail
    return text.replace(old, new, count)


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_config_reports_exact_positions(
    edit: tuple[str, str] | tuple[str, str, int], expected: list[tuple[int, int, str, str]]
) -> None:
    text = _edit(EXAMPLE, *edit)
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    issues = caught.value.issues
    assert [(i.file, i.line, i.column, i.field) for i in issues] == [
        ("x.yaml", line, column, field) for line, column, field, _ in expected
    ], str(caught.value)
    for issue, (line, column, field, words) in zip(issues, expected, strict=True):
        assert words in issue.message
        prefix = f"x.yaml:{line}:{column}: {field}: " if field else f"x.yaml:{line}:{column}: "
        assert str(issue).startswith(prefix)


def test_all_issues_of_a_stream_are_collected() -> None:
    text = _edit(
        _edit(EXAMPLE, "port: 443", "port: 0"), "sessionDuration: 3600", "sessionDuration: 1"
    )
    text = _edit(text, "127.0.0.0/8", "::1/8")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        ["x.yaml:6:9", "spec.port"],
        ["x.yaml:19:20", "spec.sessionDuration"],
        ["x.yaml:26:19", "spec.identities[0].sourceCidr"],
    ]
    assert isinstance(caught.value, ValueError)


def test_issue_str_format() -> None:
    issue = ConfigIssue("a.yaml", 8, 9, "spec.port", "too big")
    assert str(issue) == "a.yaml:8:9: spec.port: too big"
    assert (
        str(ConfigIssue("a.yaml", 1, 1, "", "cannot read file")) == "a.yaml:1:1: cannot read file"
    )


def test_reference_to_invalid_object_is_not_also_reported_missing() -> None:
    text = _edit(EXAMPLE, "port: 443", "port: -1")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    assert [i.field for i in caught.value.issues] == ["spec.port"]


def test_load_config_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latchkey.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_config_file(path) == load_config_text(EXAMPLE)

    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config_file(missing)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column, issue.field) == (str(missing), 1, 1, "")
    assert "cannot read file" in issue.message


def test_load_config_paths_merges_files_and_directories(tmp_path: Path) -> None:
    documents = EXAMPLE.split("---\n")
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "20-policy.yml").write_text(documents[3], encoding="utf-8")
    (conf / "10-server.yaml").write_text(documents[0], encoding="utf-8")
    (conf / "notes.txt").write_text("not: [yaml", encoding="utf-8")
    (conf / ".hidden.yaml").write_text("not: [yaml", encoding="utf-8")
    single = tmp_path / "rest.yaml"
    single.write_text("---\n".join(documents[1:3]), encoding="utf-8")

    config = load_config_paths([conf, single])
    assert config == load_config_text(EXAMPLE)
    assert load_config_paths([]) == empty_config()


def test_duplicates_across_files_name_both_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(EXAMPLE, encoding="utf-8")
    second.write_text(EXTRA_CLIENT, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_paths([first, second])
    (issue,) = caught.value.issues
    assert str(issue) == (
        f"{second}:3:18: metadata.name: duplicate ClientWorkload 'local-apps', "
        f"first defined at {first}:23:18"
    )


def test_alias_bombs_and_recursive_aliases_are_rejected() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdef":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with pytest.raises(ConfigError, match="too large"):
        load_config_text(bomb)
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config_text("a: &a [*a]\n")


@pytest.mark.parametrize(
    "host",
    ["kms.us-east-1.amazonaws.com", "localhost", "*.us-east-1.amazonaws.com", "10.0.0.1", "[::1]"],
)
def test_valid_hosts(host: str) -> None:
    assert schema.ServerWorkloadSpec.model_validate(
        {
            "host": host,
            "port": 1,
            "tls": False,
            "authentication": {"method": "http", "scheme": "none"},
        }
    )


@pytest.mark.parametrize(
    "host",
    ["*.com", "*", "a.*.com", "-a.com", "a..com", "", "a_b.com", "1.2.3", "[a.com]", "[1.2.3.4]"],
)
def test_invalid_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="invalid host"):
        schema._check_host(host)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://sts.amazonaws.com", True),
        ("https://sts.us-east-1.amazonaws.com/", True),
        ("http://localhost:4566", True),
        ("http://[::1]:4566", True),
        ("http://sts.amazonaws.com", False),
        ("ftp://sts.amazonaws.com", False),
        ("https://user:pw@sts.amazonaws.com", False),
        ("https://sts.amazonaws.com:99999", False),
        ("sts.amazonaws.com", False),
    ],
)
def test_sts_endpoint(url: str, ok: bool) -> None:
    if ok:
        assert schema._check_sts_endpoint(url) == url
    else:
        with pytest.raises(ValueError, match="invalid URL"):
            schema._check_sts_endpoint(url)


def test_bare_addresses_are_single_host_networks() -> None:
    assert str(schema._parse_cidr("10.1.2.3")) == "10.1.2.3/32"
    assert str(schema._parse_cidr("2001:db8::1")) == "2001:db8::1/128"


def test_an_internationalized_host_gets_its_ascii_form_as_a_hint() -> None:
    with pytest.raises(ValueError, match=r"ASCII form: 'xn--caf-dma\.example\.com'"):
        schema._check_host("café.example.com")
    assert schema._check_host("xn--caf-dma.example.com") == "xn--caf-dma.example.com"


def test_a_file_that_is_not_utf8_is_reported_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        b"apiVersion: latchkey/v1\nkind: ClientWorkload\nmetadata: {name: lat1}\nspec:\n"
        b'  identities: [{hostname: "caf\xe9"}]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config_paths([path])
    assert [str(i) for i in caught.value.issues] == [f"{path}:5:31: not UTF-8 text: byte 0xe9"]
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes("apiVersion: latchkey/v1\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"u16.yaml:1:1: not UTF-8 text: byte 0xff \(UTF-16\?\)"):
        load_config_file(utf16)
    bom = tmp_path / "bom.yaml"  # a UTF-8 byte order mark is fine, and not a column
    last = b"spec: {identities: [{hostname: 'caf\xe9'}]}\n"
    bom.write_bytes(b"\xef\xbb\xbfapiVersion: latchkey/v1\nkind: ClientWorkload\n"
                    b"metadata: {name: b}\n" + last)  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config_file(bom)
    assert caught.value.issues[0].line == 4
    assert caught.value.issues[0].column == 36
