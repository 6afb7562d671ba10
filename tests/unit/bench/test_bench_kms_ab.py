"""bench/kms_ab.py runs: two real servers (A from a copy of this tree's src, B from the
checkout), one short window each, medians and the ratio printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_kms_ab_compares_two_trees(tmp_path: Path) -> None:
    a_src = tmp_path / "a" / "src"
    shutil.copytree(ROOT / "src", a_src)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "kms_ab.py"), "--a-src", str(a_src),
         "--rounds", "1", "--duration", "0.5"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^A: [\d,]+ req/s; median [\d,]+$", done.stdout, re.MULTILINE)
    assert re.search(r"^B: [\d,]+ req/s; median [\d,]+$", done.stdout, re.MULTILINE)
    assert re.search(r"^B/A \d+\.\d{3}$", done.stdout, re.MULTILINE)
