"""A short run of bench/kms.py's load generator against a real node, so the bench cannot rot:
every operation at two concurrencies, a fraction of a second each, no errors; and a refused
request counts as an error, never as throughput."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

from latchkey_testing import NodeHandle

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # kms.py imports its load generator, kms_load.py
    spec = importlib.util.spec_from_file_location("latchkey_bench_kms", BENCH / "kms.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.modules.pop("kms_load", None)
        sys.path.remove(str(BENCH))


def https_target(bench: ModuleType, node: NodeHandle, key: str, secret: str) -> object:
    port = urlsplit(node.info.cloud).port
    tls = ssl.create_default_context(cafile=node.info.ca_bundle)
    return bench.Target("latchkey-https", port, key, secret, tls=tls, store="latchkey")


def test_every_operation_runs_without_errors(bench: ModuleType, node: NodeHandle) -> None:
    admin = node.admin()
    target = https_target(bench, node, admin["AccessKeyId"], admin["SecretAccessKey"])
    plan = bench.Plan(
        targets=["latchkey-https"],
        ops=list(bench.OPS),
        concurrency=[1, 4],
        keys=[3],
        duration=0.25,
        warmup=0.0,
        runs=1,
    )
    results = asyncio.run(bench.run_matrix(plan, {3: [target]}, lambda line: None))
    rows = [r.row() for r in results]
    assert {(r["op"], r["concurrency"]) for r in rows} == {
        (op, c) for op in bench.OPS for c in (1, 4)
    }
    for row in rows:
        assert row["errors"] == 0, row["first_error"]
        assert row["requests"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    report = bench.render(rows, plan)
    assert "| 3 | latchkey-https | Encrypt | 4 |" in report
    assert "Encrypt c=1 latchkey-https p50 <= 2 ms" in report


def test_refused_requests_count_as_errors(bench: ModuleType, node: NodeHandle) -> None:
    target = https_target(bench, node, "AKIANOTAKEYWEKNOW000", "x" * 40)
    plaintext = base64.b64encode(b"x" * 16).decode()
    pool = [bench.sign(target, "Encrypt", bench.op_params("Encrypt", "alias/none", plaintext))]
    window = asyncio.run(
        bench.drive(target, pool, bench.OUTPUT_MEMBER["Encrypt"], concurrency=2, duration=0.2)
    )
    assert window.latencies == []
    assert window.errors > 0
    assert window.first_error.startswith("400:")
    assert "UnrecognizedClientException" in window.first_error


def test_key_counts_interleave(bench: ModuleType, node: NodeHandle) -> None:
    """Several key counts: keys made first, then run 1 of every count, then run 2, so that no
    count meets a different machine than another (here one store serves both counts)."""
    admin = node.admin()
    target = https_target(bench, node, admin["AccessKeyId"], admin["SecretAccessKey"])
    plan = bench.Plan(
        targets=["latchkey-https"],
        ops=["Encrypt"],
        concurrency=[1],
        keys=[2, 5],
        duration=0.1,
        warmup=0.0,
        runs=2,
    )
    lines: list[str] = []
    results = asyncio.run(bench.run_matrix(plan, {2: [target], 5: [target]}, lines.append))
    windows = [line.split()[:3] for line in lines if "req/s" in line]
    assert windows == [
        ["keys=2", "run", "1/2"],
        ["keys=5", "run", "1/2"],
        ["keys=2", "run", "2/2"],
        ["keys=5", "run", "2/2"],
    ]
    creating = [i for i, line in enumerate(lines) if line.startswith("creating")]
    first_window = next(i for i, line in enumerate(lines) if "req/s" in line)
    assert creating
    assert max(creating) < first_window  # every count's keys before any window
    rows = {r.row()["keys"]: r.row() for r in results}
    assert sorted(rows) == [2, 5]
    for row in rows.values():
        assert row["errors"] == 0, row["first_error"]
        assert len(row["runs_req_per_s"]) == 2
