"""The token file follower behind ``latchkey token-relay``, and the CONNECT head it builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from latchkey.edge.relay import connect_head
from latchkey.edge.tokenfile import TokenFile, TokenFileError
from latchkey.http.h1 import RequestParser

TOKEN_A = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
TOKEN_B = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiIn0.c2ln"


def project(directory: Path, version: str, token: str) -> Path:
    """Kubernetes' projected-volume update: a new file, then a symlink swapped atomically."""
    (directory / version).write_text(token + "\n")
    (directory / "tmp-link").symlink_to(version)
    (directory / "tmp-link").replace(directory / "token")
    return directory / "token"


def test_reads_once_until_the_file_changes(tmp_path: Path) -> None:
    path = project(tmp_path, "v1", TOKEN_A)
    follower = TokenFile(path)
    assert [follower.current() for _ in range(5)] == [TOKEN_A] * 5
    assert follower.reads == 1
    project(tmp_path, "v2", TOKEN_B)
    assert follower.current() == TOKEN_B
    assert follower.reads == 2


def test_an_in_place_rewrite_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN_A)
    follower = TokenFile(path)
    assert follower.current() == TOKEN_A
    path.write_text(TOKEN_B + "x")  # another size, so no mtime-granularity doubt
    os.utime(path, ns=(1, 1))
    assert follower.current() == TOKEN_B + "x"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "does not hold one token"),
        (f"{TOKEN_A} {TOKEN_B}".encode(), "does not hold one token"),
        ("t\u00f6ken".encode(), "is not ASCII text"),
        (b"x" * 20_000, "larger than"),
    ],
)
def test_unusable_files_are_named_and_the_content_is_not(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(TokenFileError) as info:
        TokenFile(path).current()
    assert str(path) in str(info.value)
    assert why in str(info.value)
    assert TOKEN_A not in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"cannot read token file .*token"):
        TokenFile(tmp_path / "token").current()


def test_connect_head_replaces_the_clients_proxy_authorization() -> None:
    raw = (
        b"CONNECT kms.us-east-1.amazonaws.com:443 HTTP/1.1\r\n"
        b"Host: kms.us-east-1.amazonaws.com:443\r\n"
        b"Proxy-Authorization: Basic d29ya2xvYWQ6b2xk\r\n"
        b"User-Agent: aws-cli\r\n\r\n"
    )
    (request,) = RequestParser().feed(raw)
    head = connect_head(request, TOKEN_A)
    (forwarded,) = RequestParser().feed(head)
    assert forwarded.method == "CONNECT"
    assert forwarded.target == "kms.us-east-1.amazonaws.com:443"
    assert [v for k, v in forwarded.headers if k.lower() == "proxy-authorization"] == [
        f"Bearer {TOKEN_A}"
    ]
    assert forwarded.header("User-Agent") == "aws-cli"


def test_connect_head_keeps_the_http_version() -> None:
    """Python's http.client tunnels with an HTTP/1.0 CONNECT and no Host header."""
    (request,) = RequestParser().feed(b"CONNECT kms.us-east-1.amazonaws.com:443 HTTP/1.0\r\n\r\n")
    (forwarded,) = RequestParser().feed(connect_head(request, TOKEN_A))
    assert forwarded.http_version == "1.0"
    assert forwarded.header("Proxy-Authorization") == f"Bearer {TOKEN_A}"
