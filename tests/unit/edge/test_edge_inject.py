"""Static secrets into requests: the headers sent upstream per scheme (the client's own
credentials removed), the placeholder that picks a provider, and the 0600 secret file that is
re-read when it changes, whose errors name the file and never the secret."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from latchkey.control.model import AuthScheme, CredentialProvider
from latchkey.edge.inject import SecretError, check_secret, inject, placeholder
from latchkey.edge.secrets import SecretFile, SecretUnavailable, StaticSecrets
from latchkey.edge.tokenfile import TokenFileError

SECRET = "sk-live-4f9b2c"
CLIENT = [
    ("Host", "api.example.com"),
    ("Authorization", "Bearer placeholder"),
    ("x-api-key", "placeholder"),
    ("Accept", "application/json"),
]


def test_bearer_replaces_the_clients_authorization() -> None:
    sent = inject(CLIENT, AuthScheme.BEARER, SECRET)
    assert sent == [
        ("Host", "api.example.com"),
        ("x-api-key", "placeholder"),
        ("Accept", "application/json"),
        ("Authorization", f"Bearer {SECRET}"),
    ]


def test_header_replaces_the_named_header_and_authorization() -> None:
    sent = inject(CLIENT, AuthScheme.HEADER, SECRET, "X-Api-Key")
    assert sent == [
        ("Host", "api.example.com"),
        ("Accept", "application/json"),
        ("X-Api-Key", SECRET),
    ]


def test_basic_encodes_user_and_password_as_utf8_base64() -> None:
    sent = inject(CLIENT, AuthScheme.BASIC, "ci-bot:pä ss:word")
    name, value = sent[-1]
    assert name == "Authorization"
    assert value == "Basic Y2ktYm90OnDDpCBzczp3b3Jk"
    assert base64.b64decode(value.split()[1]).decode() == "ci-bot:pä ss:word"
    assert sum(k.lower() == "authorization" for k, _ in sent) == 1


def test_none_sends_the_request_as_it_is() -> None:
    assert inject(CLIENT, AuthScheme.NONE, "") == CLIENT


@pytest.mark.parametrize(
    ("scheme", "secret", "why"),
    [
        (AuthScheme.BEARER, "", "it is empty"),
        (AuthScheme.BEARER, "abc\r\nX-Evil: 1", "control character"),
        (AuthScheme.HEADER, "caf\u00e9", "non-ASCII"),
        (AuthScheme.BASIC, "no-colon", "not user:password"),
        (AuthScheme.BASIC, "user:pa\nss", "control character"),
    ],
)
def test_a_secret_that_does_not_fit_is_refused_without_quoting_it(
    scheme: AuthScheme, secret: str, why: str
) -> None:
    problem = check_secret(scheme, secret)
    assert problem is not None
    assert why in problem
    with pytest.raises(SecretError) as caught:
        inject(CLIENT, scheme, secret, "X-Api-Key")
    assert why in str(caught.value)
    assert not secret or secret not in str(caught.value)


def test_aws_sigv4_is_not_a_static_scheme() -> None:
    with pytest.raises(ValueError, match="injects no static secret"):
        inject(CLIENT, AuthScheme.AWS_SIGV4, SECRET)


@pytest.mark.parametrize(
    ("scheme", "headers", "expected"),
    [
        (AuthScheme.BEARER, [("authorization", "Bearer  audit ")], "audit"),
        (AuthScheme.BEARER, [("Authorization", "Basic YTpi")], None),
        (AuthScheme.BEARER, [], None),
        (AuthScheme.HEADER, [("X-API-KEY", "audit")], "audit"),
        (
            AuthScheme.BASIC,
            [("Authorization", "Basic " + base64.b64encode(b"audit:x").decode())],
            "audit",
        ),
        (AuthScheme.BASIC, [("Authorization", "Basic !!notbase64")], None),
        (AuthScheme.NONE, [("Authorization", "Bearer audit")], None),
    ],
)
def test_the_placeholder_can_name_a_provider(
    scheme: AuthScheme, headers: list[tuple[str, str]], expected: str | None
) -> None:
    assert placeholder(headers, scheme, "X-Api-Key") == expected


def _static(path: Path | None = None, env: str | None = None) -> CredentialProvider:
    return CredentialProvider(
        name="api-key",
        type="static",
        role_arn="",
        audience="",
        session_duration=3600,
        sts_endpoint=None,
        region="us-east-1",
        role_session_name=None,
        secret_file=str(path) if path else None,
        secret_env=env,
    )


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def test_a_secret_file_is_read_once_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    _write(path, SECRET + "\n")
    follower = SecretFile(path)
    assert [follower.current() for _ in range(3)] == [SECRET] * 3
    assert follower.reads == 1
    _write(path, "rotated-secret-2")
    assert follower.current() == "rotated-secret-2"
    assert follower.reads == 2


def test_a_chmod_alone_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    _write(path, SECRET)
    follower = SecretFile(path)
    assert follower.current() == SECRET
    path.chmod(0o640)
    with pytest.raises(TokenFileError, match="mode 0640: group and others must have no access"):
        follower.current()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: None, "cannot read secret file {path}: No such file or directory"),
        (lambda p: _write(p, SECRET, 0o644), "secret file {path} has mode 0644"),
        (lambda p: _write(p, " \n"), "secret file {path} is empty"),
        (lambda p: p.mkdir(mode=0o700), "secret file {path} is not a regular file"),
        (lambda p: os.mkfifo(p, 0o600), "secret file {path} is not a regular file"),
    ],
    ids=["missing", "group-readable", "empty", "directory", "fifo"],
)
def test_a_secret_file_that_cannot_be_used_is_named(
    tmp_path: Path, prepare: object, message: str
) -> None:
    path = tmp_path / "secret"
    assert callable(prepare)
    prepare(path)
    provider = _static(path)
    with pytest.raises(SecretUnavailable) as caught:
        StaticSecrets().secret_for(provider, AuthScheme.BEARER)
    assert str(caught.value).startswith("credential provider 'api-key': ")
    assert message.format(path=path) in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_secret_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    path = tmp_path / "secret"
    _write(path, SECRET)
    os.chown(path, 4242, 4242)
    with pytest.raises(SecretUnavailable, match="owned by uid 4242, not by uid 0"):
        StaticSecrets().secret_for(_static(path), AuthScheme.BEARER)


def test_a_file_secret_must_fit_the_scheme(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    _write(path, "no-colon-secret")
    secrets = StaticSecrets()
    assert secrets.secret_for(_static(path), AuthScheme.BEARER) == "no-colon-secret"
    with pytest.raises(SecretUnavailable) as caught:
        secrets.secret_for(_static(path), AuthScheme.BASIC)
    assert str(caught.value) == (
        f"credential provider 'api-key': the secret in secret file {path} cannot be sent as "
        "basic credentials: it is not user:password"
    )


def test_an_environment_secret(tmp_path: Path) -> None:
    secrets = StaticSecrets({"API_KEY": f" {SECRET}\n"})
    assert secrets.secret_for(_static(env="API_KEY"), AuthScheme.HEADER) == SECRET
    with pytest.raises(SecretUnavailable, match="environment variable GONE is not set or empty"):
        secrets.secret_for(_static(env="GONE"), AuthScheme.HEADER)
