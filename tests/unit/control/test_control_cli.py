"""The control commands' own handling, no node needed: argument checks, input files, answers
that are not JSON, Ctrl-C, and `get` from the store while latchkey is down."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from latchkey.cli import control as cli
from latchkey.cli.main import build_parser
from latchkey.control.defaults import render_default_config
from latchkey.control.service import ControlPlane
from latchkey.control.since import parse_since
from latchkey.store.control import ControlStore

NOW = dt.datetime(2026, 11, 29, 5, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", "2026-11-29T04:00:00+00:00"),
        ("90s", "2026-11-29T04:58:30+00:00"),
        ("2026-11-29T07:11:57.45+02:00", "2026-11-29T05:11:57.450000+00:00"),
        ("2026-11-29T05:11:57Z", "2026-11-29T05:11:57+00:00"),
        ("2026-11-29T05:11:57", "2026-11-29T05:11:57+00:00"),  # no zone: UTC
    ],
)
def test_parse_since(text: str, expected: str) -> None:
    assert parse_since(text, NOW).isoformat() == expected


@pytest.mark.parametrize("text", ["garbage", "1y", "-1h", "\u0661h", "", "0001-01-01T00:00+01:00"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies)
        parse_since(text, NOW)


@pytest.mark.parametrize(
    "argv",
    [["events", "--since", "garbage"], ["explain", "--host", "h", "--client-ip", "notanip"]],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def run(argv: list[str], data_dir: Path) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_control(args, data_dir)


@pytest.mark.parametrize(("command", "code"), [("apply", 1), ("diff", 2)])
def test_a_missing_file_is_not_a_network_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, code: int
) -> None:
    assert run([command, "-f", str(tmp_path / "nonexist.yaml")], tmp_path) == code
    err = capsys.readouterr().err
    assert f"the path '{tmp_path / 'nonexist.yaml'}' does not exist" in err
    assert "cannot reach" not in err


def test_a_file_that_is_not_utf8_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"apiVersion: latchkey/v1\nkind: ClientWorkload\n# caf\xe9\n")
    assert run(["apply", "-f", str(tmp_path)], tmp_path) == 1
    assert f"{bad}:3:6: not UTF-8 text: byte 0xe9" in capsys.readouterr().err


def test_a_token_file_that_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["explain", "--host", "h", "--token", str(tmp_path / "nonexist")]
    assert run(argv, tmp_path) == 1
    err = capsys.readouterr().err
    assert "cannot read the token file" in err
    assert "No such file or directory" in err
    assert "cannot reach" not in err


def test_stdin_is_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = __import__("io").BytesIO(b"apiVersion: latchkey/v1\n")

    monkeypatch.setattr("sys.stdin", Stdin)
    assert cli._documents(["-"]) == [("<stdin>", "apiVersion: latchkey/v1\n")]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["get", "sw/aws-kms"], ("ServerWorkload", "aws-kms")),
        (["get", "sw", "aws-kms"], ("ServerWorkload", "aws-kms")),
        (["get", "all"], ("all", None)),
        (["delete", "cw/x"], ("ClientWorkload", "x")),
    ],
)
def test_kind_and_name(argv: list[str], expected: tuple[str, str | None]) -> None:
    assert cli._kind_and_name(build_parser().parse_args(argv)) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "all", "aws-kms"], "a name cannot be given with 'all'"),
        (["get", "sw/aws-kms", "x"], "give the name once"),
        (["delete", "cw", "victim#oops"], "invalid name 'victim#oops'"),
        (["delete", "cw"], "delete needs a kind and a name"),
        (["get", "widgets"], "unknown kind 'widgets'"),
    ],
)
def test_bad_names_are_refused_before_asking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(argv, tmp_path) == 1
    assert message in capsys.readouterr().err


def test_path_segments_are_quoted() -> None:
    assert cli._path("ClientWorkload", "a#b/c") == "/ClientWorkload/a%23b%2Fc"


def client_answering(status: int, body: bytes, content_type: str) -> cli.ControlClient:
    client = object.__new__(cli.ControlClient)
    client.url = "https://127.0.0.1:1/api/v1"
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers={"Content-Type": content_type})
    )
    client.client = httpx.Client(transport=transport)
    return client


def test_an_answer_that_is_not_json_says_its_status() -> None:
    client = client_answering(413, b"request body too large\n", "text/plain")
    with pytest.raises(cli.ApiError) as caught:
        client.call("POST", "/apply", json={})
    assert caught.value.render() == "HTTP 413: request body too large"


def test_follow_ends_quietly_on_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    class Interrupted:
        def call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise KeyboardInterrupt

    args = build_parser().parse_args(["events", "--follow"])
    assert cli._events(Interrupted(), args) == cli.INTERRUPTED  # type: ignore[arg-type]
    assert capsys.readouterr().err == ""


def test_get_reads_the_store_while_latchkey_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["get", "all"], tmp_path) == 1
    assert "nothing is stored" in capsys.readouterr().err
    store = ControlStore(tmp_path / "control.db")
    ControlPlane(store).start(config_paths=[],
                              default_text=render_default_config("127.0.0.1", 1))  # fmt: skip
    store.close()
    assert run(["get", "sw/aws-kms", "-o", "json"], tmp_path) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["spec"]["host"] == "kms.us-east-1.amazonaws.com"
    assert "latchkey is not running; showing what" in err
    assert run(["get", "ac"], tmp_path) == 0
    out, err = capsys.readouterr()
    assert (out, err.splitlines()[-1]) == ("", "No resources found")
    assert run(["get", "cw", "nope"], tmp_path) == 1
    assert "ClientWorkload 'nope' not found" in capsys.readouterr().err


def test_diff_help_gives_the_exit_codes() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "2 on any error" in sub.choices["diff"].format_help()
