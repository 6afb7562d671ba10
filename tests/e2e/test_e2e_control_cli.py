"""The control commands against a running node, where the user meets them: problems reported in
the files given (several at once, stdin), refusals that protect what is stored (prune with
nothing, names that are no names), exit codes (diff, Ctrl-C) and `events --since`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from latchkey_testing import MISSING_REFERENCES, VENV_BIN, UpProcess, aws

pytestmark = pytest.mark.e2e

TYPO = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: typo}
spce:
  identities: [{sourceCidr: 10.1.0.0/16}]
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: typo2}
spec:
  host: example.com
  port: "443"
  tls: true
  authentication: {method: http, scheme: none}
"""

VICTIM = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: victim}
spec:
  identities: [{sourceCidr: 10.1.0.0/16}]
"""


def latchkey(
    up: UpProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), *args, "--data-dir", str(up.data_dir)],
        capture_output=True, text=True, timeout=60, check=False, input=stdin,
    )  # fmt: skip


def stored(up: UpProcess) -> str:
    result = latchkey(up, "get", "all", "-o", "json")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_problem_of_every_file_is_reported_where_it_is(up: UpProcess, tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(TYPO)
    (tmp_path / "missing.yaml").write_text(MISSING_REFERENCES)
    before = stored(up)
    result = latchkey(up, "apply", "-f", str(tmp_path / "typo.yaml"),
                      "-f", str(tmp_path / "missing.yaml"))  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "latchkey: the configuration is invalid (nothing was changed):"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        f"{tmp_path}/typo.yaml:1:1",
        f"{tmp_path}/typo.yaml:4:1",
        f"{tmp_path}/typo.yaml:12:9",
        f"{tmp_path}/missing.yaml:11:18",
        f"{tmp_path}/missing.yaml:12:11",
    ]
    assert "spec.server: no ServerWorkload named 'aws-kmz'" in lines[-1]
    diff = latchkey(up, "diff", "-f", str(tmp_path))  # a directory: the same files, by name
    assert diff.returncode == 2
    assert f"{tmp_path}/missing.yaml:12:11" in diff.stderr
    assert stored(up) == before


def test_stdin_is_read_with_dash(up: UpProcess) -> None:
    result = latchkey(up, "diff", "-f", "-", stdin=VICTIM)
    assert (result.returncode, result.stdout) == (1, "clientworkload/victim created\n")
    bad = latchkey(up, "apply", "-f", "-", stdin=VICTIM.replace("10.1.0.0/16", "10.1.0.1/16"))
    assert bad.returncode == 1
    assert "<stdin>:5:29: spec.identities[0].sourceCidr: invalid CIDR" in bad.stderr


@pytest.mark.parametrize("text", ["", "---\n# only a comment\n---\n"])
def test_prune_with_no_objects_is_refused(up: UpProcess, tmp_path: Path, text: str) -> None:
    before = stored(up)
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    result = latchkey(up, "apply", "--prune", "-f", str(empty))
    assert result.returncode == 1
    assert "no objects passed to apply" in result.stderr
    assert latchkey(up, "diff", "--prune", "-f", str(tmp_path)).returncode == 2
    assert stored(up) == before


def test_a_body_over_the_limit_says_so(up: UpProcess, tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (9 << 20) + "\n" + VICTIM)
    result = latchkey(up, "apply", "-f", str(huge))
    assert result.returncode == 1
    assert "HTTP 413" in result.stderr
    assert "Expecting value" not in result.stderr


def test_names_are_checked_and_kind_slash_name_works(up: UpProcess, tmp_path: Path) -> None:
    (tmp_path / "victim.yaml").write_text(VICTIM)
    assert latchkey(up, "apply", "-f", str(tmp_path / "victim.yaml")).returncode == 0
    refused = latchkey(up, "delete", "cw", "victim#oops")
    assert refused.returncode == 1
    assert "invalid name 'victim#oops'" in refused.stderr
    one = latchkey(up, "get", "cw/victim", "-o", "json")
    assert json.loads(one.stdout)["metadata"]["name"] == "victim"
    both = latchkey(up, "get", "all", "victim")
    assert both.returncode == 1
    assert "a name cannot be given with 'all'" in both.stderr
    deleted = latchkey(up, "delete", "cw/victim")
    assert (deleted.returncode, deleted.stdout) == (0, "clientworkload/victim deleted\n")
    none = latchkey(up, "get", "tp")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "No resources found\n")


def test_events_since_and_follow(up: UpProcess) -> None:
    aws(up.env(), "kms", "list-keys")
    deadline = time.monotonic() + 5
    recent = ""
    while time.monotonic() < deadline and not recent:
        recent = latchkey(up, "events", "--json", "--since", "1h").stdout
        time.sleep(0.2)
    assert recent
    first = json.loads(recent.splitlines()[0])
    same_second = first["time"][:19] + "Z"  # what a user copies from the table, to the second
    again = latchkey(up, "events", "--json", "--since", same_second).stdout
    assert json.loads(again.splitlines()[0]) == first
    assert latchkey(up, "events", "--since", "2099-01-01T00:00:00+02:00").stdout == ""
    garbage = latchkey(up, "events", "--since", "garbage")
    assert garbage.returncode == 2
    assert "--since" in garbage.stderr

    follow = subprocess.Popen(
        [str(VENV_BIN / "latchkey"), "events", "--follow", "--data-dir", str(up.data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follow.stdout is not None
    assert follow.stdout.readline().startswith("TIME")  # it is following now
    follow.send_signal(signal.SIGINT)
    _, err = follow.communicate(timeout=20)
    assert follow.returncode == 130
    assert "Traceback" not in err


def test_a_stored_object_gone_bad_names_itself_and_the_way_out(tmp_path: Path) -> None:
    from latchkey_testing import start_up_process

    data = tmp_path / "data"
    node = start_up_process(data)
    bundle = tmp_path / "bundle.pem"
    try:
        bundle.write_bytes((data / "ca.pem").read_bytes())
        (tmp_path / "bundle.yaml").write_text(
            "apiVersion: latchkey/v1\nkind: ServerWorkload\nmetadata: {name: internal-api}\n"
            "spec:\n  host: api.internal.example.com\n  port: 443\n  tls: true\n"
            f"  forward: {{caBundle: {bundle}}}\n  authentication: {{method: http, scheme: none}}\n"
        )
        applied = latchkey(node, "apply", "-f", str(tmp_path / "bundle.yaml"))
        assert applied.returncode == 0, applied.stderr
    finally:
        node.stop()
    bundle.unlink()
    up = subprocess.run(
        [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(data), "--edge", "0", "--cloud", "0",
         "--idp", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert up.returncode == 1
    assert (
        f"stored serverworkload/internal-api:10:15: spec.forward.caBundle: caBundle {bundle}"
        in (up.stderr)
    )
    assert "`latchkey up --config FILE|DIR`" in up.stderr
    offline = latchkey(node, "get", "sw/internal-api", "-o", "yaml")  # the node is down
    assert offline.returncode == 0, offline.stderr
    assert f"caBundle: {bundle}" in offline.stdout
