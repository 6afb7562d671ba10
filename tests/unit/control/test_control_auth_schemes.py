"""Non-AWS authentication schemes in configuration: ``static`` credential providers, the
``header`` of scheme header, optional providers for scheme none, and the cross-check that a
policy's providers fit its server's scheme, each error at FILE:LINE:COLUMN: FIELD."""

from __future__ import annotations

import pytest

from latchkey.control.loader import ConfigError, StoredObject, load_config_text
from latchkey.control.manifest import render_table
from latchkey.control.model import AuthScheme

# Line numbers matter: the error table below points into this text.
BASE = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: api}
spec:
  host: api.example.com
  port: 443
  tls: true
  authentication: {method: http, scheme: header, header: X-Api-Key}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: api-key}
spec:
  type: static
  secretFile: /run/secrets/api-key
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: fed}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/kms
  audience: sts.amazonaws.com
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: apps}
spec: {identities: [{sourceCidr: 127.0.0.0/8}]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: apps-to-api}
spec:
  clients: [apps]
  server: api
  credentialProvider: api-key
"""

ENV = "LATCHKEY_TEST_SCHEME_SECRET"
UNSET = "LATCHKEY_TEST_SCHEME_UNSET"


def test_the_base_loads() -> None:
    config = load_config_text(BASE, "s.yaml")
    server = config.server_workloads[0]
    assert (server.auth_scheme, server.auth_header) == (AuthScheme.HEADER, "X-Api-Key")
    provider = config.credential_provider("api-key")
    assert (provider.type, provider.secret_file, provider.secret_env) == (
        "static",
        "/run/secrets/api-key",
        None,
    )
    assert provider.describe() == "static secret from file /run/secrets/api-key"
    assert config.credential_provider("fed").describe() == (
        "role arn:aws:iam::000000000000:role/kms"
    )


def test_secret_env_is_read_from_the_node_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "s3cr3t-value")
    text = BASE.replace("secretFile: /run/secrets/api-key", f"secretEnv: {ENV}")
    provider = load_config_text(text, "s.yaml").credential_provider("api-key")
    assert (provider.secret_file, provider.secret_env) == (None, ENV)
    assert provider.describe() == f"static secret from environment variable {ENV}"
    assert "s3cr3t-value" not in repr(provider)  # the value is never part of the config


def test_scheme_none_needs_no_credential_provider() -> None:
    text = BASE.replace("scheme: header, header: X-Api-Key", "scheme: none")
    text = text.replace("  credentialProvider: api-key\n", "")
    policy = load_config_text(text, "s.yaml").access_policies[0]
    assert (policy.credential_provider, policy.select_provider("anything")) == (None, None)


def test_a_static_provider_is_chosen_by_the_placeholder() -> None:
    other = BASE.split("---\n")[1].replace("api-key", "other")
    text = BASE.replace("credentialProvider: api-key", "credentialProviders: [api-key, other]")
    policy = load_config_text(text + "---\n" + other, "s.yaml").access_policies[0]
    assert policy.select_provider("OTHER") == "other"
    assert policy.select_provider("placeholder") == "api-key"
    assert policy.select_provider(None) == "api-key"


def test_the_table_names_where_a_static_secret_comes_from() -> None:
    table = render_table(
        [
            StoredObject("CredentialProvider", "a", {"type": "static", "secretFile": "/s/a"}),
            StoredObject("CredentialProvider", "b", {"type": "static", "secretEnv": "B"}),
            StoredObject("AccessPolicy", "p", {"clients": ["c"], "server": "open"}),
        ]
    )
    assert "CredentialProvider  a     static secret from file /s/a" in table
    assert "CredentialProvider  b     static secret from environment variable B" in table
    assert table.splitlines()[-1] == "AccessPolicy        p     ['c'] -> open"


# (name, (old, new) edit of BASE, the one expected issue, exactly)
BROKEN = [
    (
        "static provider with a federation field",
        (
            "secretFile: /run/secrets/api-key",
            "secretFile: /a\n  roleArn: arn:aws:iam::000000000000:role/x",
        ),
        "s.yaml:16:3: spec.roleArn: a static credential provider takes only secretFile or "
        "secretEnv",
    ),
    (
        "static provider with neither source",
        ("  secretFile: /run/secrets/api-key\n", ""),
        "s.yaml:14:3: spec.secretFile: a static credential provider needs exactly one of "
        "secretFile, secretEnv",
    ),
    (
        "static provider with both sources",
        ("secretFile: /run/secrets/api-key", f"secretFile: /a\n  secretEnv: {ENV}"),
        "s.yaml:16:3: spec.secretEnv: a static credential provider needs exactly one of "
        "secretFile, secretEnv",
    ),
    (
        "relative secret file",
        ("secretFile: /run/secrets/api-key", "secretFile: run/api-key"),
        "s.yaml:15:15: spec.secretFile: secretFile must be an absolute path",
    ),
    (
        "secret environment variable not set",
        ("secretFile: /run/secrets/api-key", f"secretEnv: {UNSET}"),
        "s.yaml:15:14: spec.secretEnv: the variable secretEnv names is not set (or is empty) "
        "for latchkey",
    ),
    (
        "bad environment variable name",
        ("secretFile: /run/secrets/api-key", "secretEnv: 1-BAD"),
        "s.yaml:15:14: spec.secretEnv: secretEnv must be an environment variable name (letters, "
        "digits, _)",
    ),
    (
        "federation provider with a secret",
        ("audience: sts.amazonaws.com", "audience: sts.amazonaws.com\n  secretFile: /x"),
        "s.yaml:24:3: spec.secretFile: an aws-sts-federation credential provider takes no "
        "secretFile or secretEnv (those are for type static)",
    ),
    (
        "federation provider without roleArn",
        ("  roleArn: arn:aws:iam::000000000000:role/kms\n", ""),
        "s.yaml:21:3: spec.roleArn: missing required field",
    ),
    (
        "scheme header without a header",
        ("scheme: header, header: X-Api-Key", "scheme: header"),
        "s.yaml:8:19: spec.authentication.header: scheme header needs the name of the header "
        "to send the secret in (e.g. header: X-Api-Key)",
    ),
    (
        "a header for another scheme",
        ("scheme: header, header: X-Api-Key", "scheme: bearer, header: X-Api-Key"),
        "s.yaml:8:50: spec.authentication.header: only scheme header takes a header (not bearer)",
    ),
    (
        "a framing header",
        ("header: X-Api-Key", "header: Content-Length"),
        "s.yaml:8:58: spec.authentication.header: header 'Content-Length' cannot carry a "
        "secret: it is a framing, routing or hop-by-hop header",
    ),
    (
        "a hop-by-hop header",
        ("header: X-Api-Key", "header: Proxy-Authorization"),
        "s.yaml:8:58: spec.authentication.header: header 'Proxy-Authorization' cannot carry a "
        "secret: it is a framing, routing or hop-by-hop header",
    ),
    (
        "not a header name",
        ("header: X-Api-Key", "header: 'X Api'"),
        "s.yaml:8:58: spec.authentication.header: invalid header name: use letters, "
        "digits and !#$%&'*+-.^_`|~",
    ),
    (
        "no provider for a scheme that injects one",
        ("  credentialProvider: api-key\n", ""),
        "s.yaml:34:3: spec.credentialProvider: ServerWorkload 'api' uses scheme header: give "
        "credentialProvider or credentialProviders",
    ),
    (
        "a federation provider for scheme header",
        ("credentialProvider: api-key", "credentialProvider: fed"),
        "s.yaml:36:23: spec.credentialProvider: ServerWorkload 'api' uses scheme header, which "
        "needs a CredentialProvider of type static; 'fed' is aws-sts-federation",
    ),
    (
        "a static provider for scheme aws-sigv4",
        ("scheme: header, header: X-Api-Key", "scheme: aws-sigv4"),
        "s.yaml:36:23: spec.credentialProvider: ServerWorkload 'api' uses scheme aws-sigv4, "
        "which needs a CredentialProvider of type aws-sts-federation; 'api-key' is static",
    ),
    (
        "the second of several providers does not fit",
        ("credentialProvider: api-key", "credentialProviders: [api-key, fed]"),
        "s.yaml:36:34: spec.credentialProviders[1]: ServerWorkload 'api' uses scheme header, "
        "which needs a CredentialProvider of type static; 'fed' is aws-sts-federation",
    ),
    (
        "both provider fields",
        (
            "credentialProvider: api-key",
            "credentialProvider: api-key\n  credentialProviders: [fed]",
        ),
        "s.yaml:34:3: spec: give credentialProvider or credentialProviders, not both",
    ),
]


@pytest.mark.parametrize(("name", "edit", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_errors_name_file_line_column_and_field(
    name: str, edit: tuple[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "value")
    monkeypatch.delenv(UNSET, raising=False)
    text = BASE.replace(*edit, 1)
    assert text != BASE
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "s.yaml")
    assert [str(issue) for issue in caught.value.issues] == [expected]


def test_a_basic_secret_from_the_environment_must_be_user_colon_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "no-colon-here")
    text = BASE.replace("scheme: header, header: X-Api-Key", "scheme: basic")
    text = text.replace("secretFile: /run/secrets/api-key", f"secretEnv: {ENV}")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "s.yaml")
    message = str(caught.value)
    assert message == (
        f"s.yaml:36:23: spec.credentialProvider: ServerWorkload 'api' uses scheme basic: the "
        f"secret in environment variable {ENV} of CredentialProvider 'api-key' does not fit: "
        "it is not user:password"
    )
    assert "no-colon-here" not in message
    monkeypatch.setenv(ENV, "user:pass word")
    assert load_config_text(text, "s.yaml").access_policies[0].credential_provider == "api-key"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secretEnv", "sk_live_51HxSECRETvalueABC123"),
        ("secretFile", "sk_live_51HxSECRETvalueDEF456"),
        ("secretEnv", 123456789012),
    ],
)
def test_a_secret_put_where_its_name_belongs_is_not_echoed(field: str, value: object) -> None:
    text = (
        "apiVersion: latchkey/v1\nkind: CredentialProvider\nmetadata: {name: p}\n"
        f"spec: {{type: static, {field}: {value}}}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config_text(text, "s.yaml")
    assert str(value) not in str(refused.value)
    assert f"spec.{field}" in str(refused.value)  # the place is named, not the value
