"""A short run of bench/edge.py's parts, so the bench cannot rot: the Python fallback upstream
and a real `latchkey up` forwarding to it, every mode through the edge and direct for a fraction
of a second, the leaf-cache and idle-connection checks, and the report. The generator must
verify certificates and must count a wrong answer as an error, never as throughput."""

from __future__ import annotations

import importlib.util
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvloop

BENCH = Path(__file__).resolve().parents[3] / "bench"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("latchkey_bench_edge", BENCH / "edge.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        for name in ("edge_load", "edge_targets", "edge_upstream"):
            sys.modules.pop(name, None)
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def rig(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The Python upstream (the fallback where nginx is absent) and `latchkey up` before it."""
    targets, load, upstream_mod = (sys.modules[n] for n in ("edge_targets", "edge_load",
                                                            "edge_upstream"))  # fmt: skip
    work = tmp_path_factory.mktemp("edge-bench")
    pki = upstream_mod.make_bench_pki(work)
    upstream, port = targets.start_upstream(work, pki, None, python=True)
    try:
        node = targets.start_latchkey(work, pki, port, None, "info")
        try:
            direct = load.Target("direct", ("127.0.0.1", port), load.client_context(pki.ca),
                                 "127.0.0.1")  # fmt: skip
            edge = load.Target(
                "latchkey", ("127.0.0.1", node.edge_port), load.client_context(node.ca),
                targets.KMS_HOST, f"{targets.KMS_HOST}:443", node.proc.pid,
            )  # fmt: skip
            yield {"pki": pki, "upstream": upstream, "node": node, "direct": direct, "edge": edge}
        finally:
            node.proc.stop()
    finally:
        upstream.stop()


def test_every_mode_runs_without_errors(bench: ModuleType, rig: dict[str, Any]) -> None:
    watch = {"proxy": rig["node"].proc.pid, "upstream": rig["upstream"].pid}
    subjects = {
        "direct": bench.Subject(rig["direct"], bench.KMS_HOST, {"upstream": rig["upstream"].pid}),
        "latchkey": bench.Subject(rig["edge"], bench.KMS_HOST, watch),
    }
    modes = [("keep-alive", 1), ("keep-alive", 4), ("new-connection", 2)]
    plan = bench.Plan(["direct", "latchkey"], modes, duration=0.3, warmup=0.2, runs=1)
    cells = uvloop.run(bench.run_matrix(plan, subjects, lambda line: None))
    rows = [c.row() for c in cells]
    assert {(r["mode"], r["concurrency"], r["target"]) for r in rows} == {
        (m, c, t) for m, c in modes for t in ("direct", "latchkey")
    }
    for row in rows:
        assert row["errors"] == 0, row["first_error"]
        assert row["requests"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["upstream_cpu_us"] >= 0
    edge_row = next(r for r in rows if r["target"] == "latchkey" and r["concurrency"] == 4)
    assert edge_row["proxy_cpu_us"] > 0  # the edge did work, read from /proc/<pid>/stat

    load = sys.modules["edge_load"]
    hosts = [f"smoke-{i}.{bench.WILDCARD_DOMAIN}" for i in range(2)]
    leaf = uvloop.run(load.leaf_handshakes(rig["edge"], hosts, 443))
    assert len(leaf.miss) == len(leaf.hit) == 2
    idle = uvloop.run(
        load.idle_connections(rig["edge"], bench.signed_request(bench.KMS_HOST), bench.MARKER, 5,
                              settle=0.1)
    )  # fmt: skip
    assert (idle.connections, idle.errors) == (5, 0), idle.first_error
    assert idle.rss_after > 0

    report = "\n".join(bench.render(rows, leaf, idle))
    assert "| keep-alive | 4 | latchkey |" in report
    assert "- added p50 at c=1 <= 0.4 ms:" in report
    assert "- leaf-cache miss <= 1.5 ms:" in report
    assert "- 5 idle keep-alive connections, RSS <= 150 MiB:" in report


def test_a_wrong_answer_is_an_error(bench: ModuleType, rig: dict[str, Any]) -> None:
    load = sys.modules["edge_load"]
    window = uvloop.run(
        load.keepalive(rig["edge"], bench.signed_request(bench.KMS_HOST), b'"NoSuchMember"',
                       concurrency=2, duration=0.2)
    )  # fmt: skip
    assert window.latencies == []
    assert window.errors > 0
    assert window.first_error.startswith("200:")


def test_the_generator_verifies_certificates(bench: ModuleType, rig: dict[str, Any]) -> None:
    """Direct to the upstream while trusting only the latchkey CA: the handshake fails."""
    load = sys.modules["edge_load"]
    wrong = load.Target("direct", rig["direct"].address, load.client_context(rig["node"].ca),
                        "127.0.0.1")  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        uvloop.run(load.open_client(wrong))
