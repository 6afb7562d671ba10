"""``latchkey idp token|rotate|keys`` and the ``up`` flags for the idp, without a running node
(``idp token`` reads a hand-written run.json)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from latchkey.cli.main import build_parser, main
from latchkey.clock import SystemClock
from latchkey.crypto.jwt import verify_jwt
from latchkey.idp.issuer import Issuer
from latchkey.idp.keyring import Keyring
from latchkey.node import RunInfo

ISSUER = "https://idp.example.com/x"


def write_run(data_dir: Path, providers: list[str]) -> None:
    info = RunInfo(
        pid=1, data_dir=str(data_dir), edge="http://127.0.0.1:1", cloud="https://127.0.0.1:2",
        idp=ISSUER, ca_bundle="ca.pem", config="", idp_listen="https://127.0.0.1:3",
        providers=providers,
    )  # fmt: skip
    (data_dir / "run.json").write_text(info.to_json())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    Keyring.open(tmp_path, SystemClock())
    write_run(tmp_path, ["kms-federation"])
    return tmp_path


def served_jwks(data_dir: Path) -> dict[str, object]:
    clock = SystemClock()
    return Issuer(ISSUER, Keyring.load(data_dir, clock), clock).jwks()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_token(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "idp", "token", "--data-dir", str(data_dir), "--client", "ci-runner",
        "--audience", "sts.amazonaws.com", "--ttl", "60",
    )  # fmt: skip
    assert code == 0
    claims = verify_jwt(out.strip(), served_jwks(data_dir))[1]
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "latchkey:kms-federation:ci-runner"
    assert claims["latchkey"] == {
        "client_workload": "ci-runner",
        "credential_provider": "kms-federation",
    }
    assert claims["exp"] == claims["iat"] + 60  # type: ignore[operator]


def test_token_with_provider_and_lifetime_alias(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "idp", "token", "--data-dir", str(data_dir), "--client", "a", "--audience",
        "aud-1", "--provider", "hand-made", "--lifetime", "3600",
    )  # fmt: skip
    assert code == 0
    claims = verify_jwt(out.strip(), served_jwks(data_dir))[1]
    assert (claims["sub"], claims["aud"]) == ("latchkey:hand-made:a", "aud-1")
    assert claims["exp"] == claims["iat"] + 3600  # type: ignore[operator]


@pytest.mark.parametrize(
    ("extra", "providers", "message"),
    [
        (["--ttl", "0"], ["kms-federation"], "--ttl must be between 1 and 3600"),
        (["--ttl", "3601"], ["kms-federation"], "--ttl must be between 1 and 3600"),
        ([], ["a", "b"], "name the credential provider with --provider (configured: a, b)"),
        ([], [], "configured: none"),
        (["--provider", "Bad:Name"], ["a"], "invalid credential provider name"),
    ],
)
def test_token_refusals(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    providers: list[str],
    message: str,
) -> None:
    write_run(data_dir, providers)
    code, out, err = run(
        capsys, "idp", "token", "--data-dir", str(data_dir), "--client", "c1", "--audience",
        "a", *extra,
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_token_needs_a_running_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "idp", "token", "--data-dir", str(tmp_path), "--client", "c", "--audience", "a"
    )
    assert code == 1
    assert "not running" in err


def test_rotate_and_keys(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = Keyring.load(data_dir, SystemClock()).active_kid
    code, out, _ = run(
        capsys, "idp", "rotate", "--data-dir", str(data_dir), "--overlap", "90",
        "--algorithm", "RS256",
    )  # fmt: skip
    assert code == 0
    keyring = Keyring.load(data_dir, SystemClock())
    assert keyring.signing_key().algorithm == "RS256"
    assert f"new key {keyring.active_kid} (RS256)" in out
    assert f"previous key {before} (ES256) stays in the JWKS until" in out
    previous = next(e for e in keyring.entries if e.kid == before)
    assert previous.retire_after is not None
    left = previous.retire_after - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=80) < left <= dt.timedelta(seconds=90)

    code, out, _ = run(capsys, "idp", "keys", "--data-dir", str(data_dir), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["active"] == keyring.active_kid
    assert [(k["kid"], k["state"]) for k in doc["keys"]] == [
        (before, "retiring"),
        (keyring.active_kid, "active"),
    ]
    code, out, _ = run(capsys, "idp", "keys", "--data-dir", str(data_dir))
    assert code == 0
    assert f"{keyring.active_kid}  RS256  active" in out


def test_rotate_publish_ahead(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = Keyring.load(data_dir, SystemClock()).active_kid
    code, _, _ = run(capsys, "idp", "rotate", "--data-dir", str(data_dir), "--publish-ahead", "600")
    assert code == 0
    keyring = Keyring.load(data_dir, SystemClock())
    assert keyring.active_kid == before
    assert len(keyring.public_keys()) == 2


@pytest.mark.parametrize("flag", ["--overlap", "--publish-ahead"])
def test_rotate_refusals(data_dir: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, _, err = run(capsys, "idp", "rotate", "--data-dir", str(data_dir), flag, "-1")
    assert code == 1
    assert "cannot be negative" in err
    code, _, err = run(capsys, "idp", "rotate", "--data-dir", str(data_dir / "nope"))
    assert code == 1
    assert "no data directory" in err


def test_up_flags() -> None:
    args = build_parser().parse_args(
        ["up", "--idp-issuer", "https://idp.example.com/", "--idp-algorithm", "RS256"]
    )
    assert (args.idp_issuer, args.idp_algorithm) == ("https://idp.example.com", "RS256")
    args = build_parser().parse_args(["up"])
    assert (args.idp_issuer, args.idp_algorithm) == (None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--idp-issuer", "http://idp.example.com"],
        ["up", "--idp-issuer", "https://idp.example.com?x"],
        ["up", "--idp-algorithm", "HS256"],
    ],
)
def test_up_flag_refusals(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "--idp-" in capsys.readouterr().err
