"""The edge against a direct connection and against mitmproxy, one load generator, interleaved.

    .venv/bin/python bench/edge.py              # the full run: 15 s windows, median of 3
    .venv/bin/python bench/edge.py --quick      # every cell once, 2 s windows (about 2 minutes)
    .venv/bin/python bench/edge.py --targets direct,latchkey --runs 5   # only the ratio to direct

What runs, all on 127.0.0.1: a TLS upstream answering every request with a ~200-byte KMS-like
JSON body (nginx when /usr/sbin/nginx exists, else bench/edge_upstream.py on uvloop), whose
certificate comes from a bench CA; ``latchkey up`` on a fresh data directory, whose Server
Workload ``kms.us-east-1.amazonaws.com`` forwards to that upstream (SigV4 re-signing with
credentials federated from the node's own local cloud, the upstream's certificate verified);
``mitmdump`` (installed into bench/.venv-mitm on first use) as a plain explicit proxy with no
re-signing. The proxies are pinned to CPU 0, the generator (this process) and the upstream to
CPU 1, when ``taskset`` exists and there are two CPUs.

Targets: ``direct`` (the generator's TLS straight to the upstream), ``latchkey`` and
``mitmproxy`` (``CONNECT``, then TLS verified against the proxy's CA). Modes: keep-alive at c=1
and c=32, and new connections at c=32 (TCP + CONNECT + a full handshake for every request).
Every (mode, target) cell gets a warm-up and a timed window, ``--runs`` times, interleaved
(targets innermost); the report gives the median of the runs. Requests are SigV4-signed with
placeholder keys once per window. Then two checks on latchkey alone: a leaf-cache miss (CONNECT
+ handshake to fresh names under a ``*.`` Server Workload, against a cached name) and 1,000 idle
keep-alive client connections (the edge's RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from edge_load import (
    Handshakes,
    IdleResult,
    Target,
    Window,
    client_context,
    idle_connections,
    keepalive,
    leaf_handshakes,
    new_connections,
)
from edge_targets import (
    KMS_HOST,
    LOOPBACK,
    WILDCARD_DOMAIN,
    Proc,
    have_taskset,
    mitm_version,
    mitmdump_executable,
    start_latchkey,
    start_mitmdump,
    start_upstream,
)
from edge_upstream import BODY, MARKER, NGINX, make_bench_pki

TARGETS = ("direct", "latchkey", "mitmproxy")
MODES: tuple[tuple[str, int], ...] = (("keep-alive", 1), ("keep-alive", 32), ("new-connection", 32))
PROXY_CPU, GENERATOR_CPU = 0, 1
# Placeholders: the edge replaces the signature; direct and mitmproxy pass it to an upstream
# that does not check it.
PLACEHOLDER_KEY_ID, PLACEHOLDER_SECRET = "latchkey-bench", "placeholder"

# The issue's targets.
MITM_FACTOR, DIRECT_SHARE, STRETCH_RPS = 12.0, 0.4, 15_000.0
CPU_PER_REQUEST_US, ADDED_P50_MS, ADDED_P99_MS, P99_C32_MS = 120.0, 0.4, 1.0, 10.0
NEW_CONN_RPS, NEW_CONN_CPU_MS, LEAF_MISS_MS, IDLE_RSS_MIB = 1_000.0, 1.0, 1.5, 150.0


def signed_request(host: str) -> bytes:
    """A KMS Encrypt request for ``host``, SigV4-signed with the placeholder keys."""
    plaintext = base64.b64encode(secrets.token_bytes(32)).decode()
    body = json.dumps({"KeyId": "alias/bench", "Plaintext": plaintext}).encode()
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "TrentService.Encrypt",
        },
    )
    SigV4Auth(Credentials(PLACEHOLDER_KEY_ID, PLACEHOLDER_SECRET), "kms", "us-east-1").add_auth(
        request
    )
    head = [f"POST / HTTP/1.1\r\nHost: {host}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in request.headers.items()]
    head.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + body


# -- the matrix -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    targets: list[str]
    modes: list[tuple[str, int]]
    duration: float
    warmup: float
    runs: int


@dataclass(frozen=True, slots=True)
class Subject:
    """A target and the processes whose CPU its windows read (``proxy``, ``upstream``)."""

    target: Target
    host: str  # the Host header (and what the request is signed for)
    watch: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Cell:
    mode: str
    concurrency: int
    target: str
    runs: list[Window] = field(default_factory=list)

    def median(self, pick: Callable[[Window], float]) -> float:
        values = [v for v in (pick(w) for w in self.runs) if not math.isnan(v)]
        return statistics.median(values) if values else float("nan")

    def row(self) -> dict[str, Any]:
        def us(name: str) -> float:
            return round(self.median(lambda w: w.cpu_per_request(name)) * 1e6, 1)

        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "target": self.target,
            "req_per_s": round(self.median(lambda w: w.rate), 1),
            "p50_ms": round(self.median(lambda w: w.percentile(0.50)) * 1000, 3),
            "p99_ms": round(self.median(lambda w: w.percentile(0.99)) * 1000, 3),
            "proxy_cpu_us": us("proxy"),
            "upstream_cpu_us": us("upstream"),
            "generator_cpu_us": round(
                self.median(lambda w: w.generator_cpu / w.requests if w.requests else math.nan)
                * 1e6,
                1,
            ),
            "proxy_core_busy": round(
                self.median(lambda w: w.cpu.get("proxy", math.nan) / w.seconds), 3
            ),
            "generator_core_busy": round(
                max(
                    (w.generator_cpu + w.cpu.get("upstream", 0.0)) / w.seconds
                    for w in self.runs
                    if w.seconds
                ),
                3,
            ),
            "errors": sum(w.errors for w in self.runs),
            "requests": sum(w.requests for w in self.runs),
            "runs_req_per_s": [round(w.rate, 1) for w in self.runs],
            "first_error": next((w.first_error for w in self.runs if w.first_error), ""),
        }


async def run_matrix(
    plan: Plan, subjects: dict[str, Subject], log: Callable[[str], None]
) -> list[Cell]:
    cells = {
        (mode, c, name): Cell(mode, c, name)
        for mode, c in plan.modes
        for name in plan.targets
        if name in subjects
    }
    for run in range(plan.runs):
        for mode, c in plan.modes:
            for name in plan.targets:
                if name not in subjects:
                    continue
                subject = subjects[name]
                drive = keepalive if mode == "keep-alive" else new_connections
                window = await drive(
                    subject.target,
                    signed_request(subject.host),
                    MARKER,
                    concurrency=c,
                    duration=plan.duration,
                    warmup=plan.warmup,
                    watch=subject.watch,
                )
                cells[(mode, c, name)].runs.append(window)
                proxy = window.cpu_per_request("proxy")
                log(
                    f"  run {run + 1}/{plan.runs} {mode:<14} c={c:<3} {name:<9}"
                    f" {window.rate:9.1f} req/s  p50 {window.percentile(0.5) * 1000:7.3f} ms"
                    f"  p99 {window.percentile(0.99) * 1000:7.3f} ms  errors {window.errors}"
                    + ("" if math.isnan(proxy) else f"  proxy CPU {proxy * 1e6:.0f} us/req")
                    + f"  load {os.getloadavg()[0]:.1f}"
                )
                if window.first_error:
                    log(f"    first error: {window.first_error}")
    return list(cells.values())


# -- report -----------------------------------------------------------------------------------


def _ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000 if seconds else float("nan")


def render(
    rows: list[dict[str, Any]], leaf: Handshakes | None, idle: IdleResult | None
) -> list[str]:
    out = [
        "| mode | c | target | req/s | p50 ms | p99 ms | proxy CPU µs/req | proxy core busy "
        "| generator µs/req | upstream µs/req | generator core busy | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def num(value: float, fmt: str) -> str:
        return "-" if math.isnan(value) else format(value, fmt)

    for r in rows:
        out.append(
            f"| {r['mode']} | {r['concurrency']} | {r['target']} | {r['req_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {num(r['proxy_cpu_us'], ',.0f')} | "
            f"{num(r['proxy_core_busy'], '.0%')} | "
            f"{num(r['generator_cpu_us'], '.0f')} | {num(r['upstream_cpu_us'], '.0f')} | "
            f"{r['generator_core_busy']:.0%} | {r['errors']} |"
        )
    by = {(r["mode"], r["concurrency"], r["target"]): r for r in rows}
    out += ["", *targets_check(by, leaf, idle)]
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets_check(
    by: dict[tuple[str, int, str], dict[str, Any]],
    leaf: Handshakes | None,
    idle: IdleResult | None,
) -> list[str]:
    lines = ["Targets:"]
    ours = by.get(("keep-alive", 32, "latchkey"))
    mitm = by.get(("keep-alive", 32, "mitmproxy"))
    direct = by.get(("keep-alive", 32, "direct"))
    if ours and mitm and mitm["req_per_s"]:
        ratio = ours["req_per_s"] / mitm["req_per_s"]
        lines.append(
            f"- keep-alive c=32 latchkey >= {MITM_FACTOR:g}x mitmproxy: {ratio:.1f}x "
            f"({_verdict(ratio >= MITM_FACTOR)})"
        )
    if ours and direct and direct["req_per_s"]:
        share = ours["req_per_s"] / direct["req_per_s"]
        lines.append(
            f"- keep-alive c=32 latchkey >= {DIRECT_SHARE:g}x direct: {share:.2f}x "
            f"({_verdict(share >= DIRECT_SHARE)}); stretch {STRETCH_RPS:,.0f} req/s: "
            f"{ours['req_per_s']:,.0f} ({_verdict(ours['req_per_s'] >= STRETCH_RPS)})"
        )
    if ours:
        cpu = ours["proxy_cpu_us"]
        lines.append(
            f"- proxy CPU <= {CPU_PER_REQUEST_US:g} µs/request (keep-alive c=32): {cpu:.0f} µs "
            f"({_verdict(cpu <= CPU_PER_REQUEST_US)})"
        )
        lines.append(
            f"- p99 at c=32 <= {P99_C32_MS:g} ms: {ours['p99_ms']:.2f} ms "
            f"({_verdict(ours['p99_ms'] <= P99_C32_MS)})"
        )
    one, one_direct = by.get(("keep-alive", 1, "latchkey")), by.get(("keep-alive", 1, "direct"))
    if one and one_direct:
        p50 = one["p50_ms"] - one_direct["p50_ms"]
        p99 = one["p99_ms"] - one_direct["p99_ms"]
        lines.append(
            f"- added p50 at c=1 <= {ADDED_P50_MS:g} ms: +{p50:.2f} ms "
            f"({one['p50_ms']:.2f} vs {one_direct['p50_ms']:.2f}) ({_verdict(p50 <= ADDED_P50_MS)})"
        )
        lines.append(
            f"- added p99 at c=1 <= {ADDED_P99_MS:g} ms: +{p99:.2f} ms "
            f"({one['p99_ms']:.2f} vs {one_direct['p99_ms']:.2f}) ({_verdict(p99 <= ADDED_P99_MS)})"
        )
    fresh = by.get(("new-connection", 32, "latchkey"))
    if fresh:
        cpu_ms = fresh["proxy_cpu_us"] / 1000
        lines.append(
            f"- new connections at c=32 >= {NEW_CONN_RPS:,.0f}/s: {fresh['req_per_s']:,.0f}/s "
            f"({_verdict(fresh['req_per_s'] >= NEW_CONN_RPS)}); proxy CPU <= "
            f"{NEW_CONN_CPU_MS:g} ms each: {cpu_ms:.2f} ms ({_verdict(cpu_ms <= NEW_CONN_CPU_MS)})"
        )
    if leaf and leaf.miss and leaf.hit:
        miss, hit = _ms(leaf.miss), _ms(leaf.hit)
        lines.append(
            f"- leaf-cache miss <= {LEAF_MISS_MS:g} ms: CONNECT + handshake {miss:.2f} ms to a "
            f"fresh name vs {hit:.2f} ms cached (median of {len(leaf.miss)}): the miss adds "
            f"{miss - hit:.2f} ms ({_verdict(miss - hit <= LEAF_MISS_MS)})"
        )
    if idle:
        mib = idle.rss_after / 2**20
        per = (idle.rss_after - idle.rss_before) / max(1, idle.connections) / 1024
        lines.append(
            f"- {idle.connections:,} idle keep-alive connections, RSS <= {IDLE_RSS_MIB:g} MiB: "
            f"{mib:.0f} MiB (before {idle.rss_before / 2**20:.0f} MiB, {per:.0f} KiB each; "
            f"{idle.errors} errors) ({_verdict(mib <= IDLE_RSS_MIB)})"
        )
    return lines


# -- main -------------------------------------------------------------------------------------


def machine(nginx: bool, mitm: str) -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("latchkey", "uvloop", "cryptography", "botocore"):
        with contextlib.suppress(Exception):
            versions[dist] = version(dist)
    versions["OpenSSL"] = ssl.OPENSSL_VERSION.split()[1]
    if nginx:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([str(NGINX), "-v"], capture_output=True, text=True, timeout=10)
            versions["nginx"] = out.stderr.strip().rsplit("/", 1)[-1]
    if mitm:
        versions["mitmproxy"] = mitm
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(f"a comma list of {', '.join(choices)}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per window (15)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before each window (1)")
    p.add_argument("--runs", type=int, default=3, help="windows per cell; median kept (3)")
    p.add_argument("--quick", action="store_true", help="2 s windows, one run")
    p.add_argument("--targets", type=_csv(TARGETS), default=list(TARGETS))
    p.add_argument("--leaf-hosts", type=int, default=30, help="fresh names for the leaf check")
    p.add_argument("--idle", type=int, default=1000, help="idle connections (0: skip)")
    p.add_argument("--python-upstream", action="store_true", help="not nginx, even if installed")
    p.add_argument("--log-level", default="info", help="latchkey up's --log-level (info)")
    p.add_argument("--no-pin", action="store_true", help="do not pin proxy and generator")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    return p


def make_plan(args: argparse.Namespace) -> Plan:
    duration, warmup, runs = args.duration, args.warmup, args.runs
    if args.quick:
        duration, warmup, runs = 2.0, 0.5, 1
    if not 0 < duration <= 600 or not 1 <= runs <= 9 or not 0 <= warmup <= 60:
        raise SystemExit("bench: --duration 0..600, --runs 1..9, --warmup 0..60")
    if not 0 <= args.idle <= 5000 or not 0 <= args.leaf_hosts <= 500:
        raise SystemExit("bench: --idle 0..5000, --leaf-hosts 0..500")
    return Plan(args.targets, list(MODES), duration, warmup, runs)


def _raise_fd_limit(need: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


@contextlib.contextmanager
def stopping(procs: list[Proc]) -> Iterator[list[Proc]]:
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()


def _runner() -> Callable[[Any], Any]:
    try:
        import uvloop

        return uvloop.run
    except ImportError:  # pragma: no cover
        return asyncio.run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = make_plan(args)
    pin = not args.no_pin and have_taskset()
    proxy_cpu, gen_cpu = (PROXY_CPU, GENERATOR_CPU) if pin else (None, None)
    if pin:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    _raise_fd_limit(args.idle * 2 + 1024)
    command = " ".join(["python", "bench/edge.py", *(argv if argv is not None else sys.argv[1:])])

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    notes: list[str] = []
    mitm_exe = mitmdump_executable(notes) if "mitmproxy" in plan.targets else None
    if "mitmproxy" in plan.targets and mitm_exe is None:
        notes.append("mitmproxy skipped: it could not be installed")
    use_nginx = NGINX.exists() and not args.python_upstream
    info = machine(use_nginx, mitm_version(mitm_exe) if mitm_exe else "")
    log(f"machine: {info}")
    load_before = os.getloadavg()
    leaf: Handshakes | None = None
    idle: IdleResult | None = None
    with tempfile.TemporaryDirectory(prefix="latchkey-edge-bench-") as tmp, stopping([]) as procs:
        work = Path(tmp)
        pki = make_bench_pki(work)
        upstream, upstream_port = start_upstream(work, pki, gen_cpu, python=not use_nginx)
        procs.append(upstream)
        subjects: dict[str, Subject] = {}
        if "direct" in plan.targets:
            direct = Target("direct", (LOOPBACK, upstream_port), client_context(pki.ca), LOOPBACK)
            subjects["direct"] = Subject(direct, KMS_HOST, {"upstream": upstream.pid})
        node = None
        if "latchkey" in plan.targets or args.idle or args.leaf_hosts:
            node = start_latchkey(work, pki, upstream_port, proxy_cpu, args.log_level)
            procs.append(node.proc)
            edge = Target(
                "latchkey", (LOOPBACK, node.edge_port), client_context(node.ca), KMS_HOST,
                f"{KMS_HOST}:443", node.proc.pid,
            )  # fmt: skip
            if "latchkey" in plan.targets:
                watch = {"proxy": node.proc.pid, "upstream": upstream.pid}
                subjects["latchkey"] = Subject(edge, KMS_HOST, watch)
        if mitm_exe is not None:
            try:
                mitm = start_mitmdump(mitm_exe, work, pki, proxy_cpu)
            except RuntimeError as exc:
                notes.append(f"mitmproxy skipped: {exc}")
            else:
                procs.append(mitm.proc)
                upstream_at = f"{LOOPBACK}:{upstream_port}"
                target = Target(
                    "mitmproxy", (LOOPBACK, mitm.port), client_context(mitm.ca), LOOPBACK,
                    upstream_at, mitm.proc.pid,
                )  # fmt: skip
                watch = {"proxy": mitm.proc.pid, "upstream": upstream.pid}
                subjects["mitmproxy"] = Subject(target, KMS_HOST, watch)
        log(f"upstream: {upstream.name} on {upstream_port}; pinning: {pin}; targets: {subjects}")
        cells = _runner()(run_matrix(plan, subjects, log))
        if node is not None and args.leaf_hosts:
            suffix = secrets.token_hex(3)
            hosts = [f"b{suffix}-{i}.{WILDCARD_DOMAIN}" for i in range(args.leaf_hosts)]
            leaf = _runner()(leaf_handshakes(edge, hosts, 443))
        if node is not None and args.idle:
            request = signed_request(KMS_HOST)
            idle = _runner()(idle_connections(edge, request, MARKER, args.idle))
    load_after = os.getloadavg()
    rows = [c.row() for c in cells]
    print(f"command: {command}")
    print(f"machine: nproc {info['nproc']}, {info['cpu']}, Python {info['python']},", end=" ")
    print(info["platform"])
    print(f"versions: {info['versions']}")
    print(f"upstream: {'nginx' if use_nginx else 'bench/edge_upstream.py (uvloop)'}, "
          f"{len(BODY)}-byte JSON answers")  # fmt: skip
    print(
        "pinning: "
        + ("proxies on CPU 0, generator + upstream on CPU 1 (taskset)" if pin else "none")
    )
    print(f"windows: {plan.duration:g} s after {plan.warmup:g} s warm-up, median of {plan.runs}")
    print(
        "load average (1/5/15 min): "
        f"{'/'.join(f'{x:.2f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.2f}' for x in load_after)} after"
    )
    for note in notes:
        print(f"note: {note}")
    print()
    print("\n".join(render(rows, leaf, idle)))
    failed = [r for r in rows if r["errors"]]
    for r in failed:
        print(f"errors in {r['mode']} c={r['concurrency']} {r['target']}: {r['first_error']}")
    if idle and idle.errors:
        print(f"errors in the idle check: {idle.first_error}")
    if args.json:
        doc: dict[str, Any] = {"command": command, "machine": info, "notes": notes}
        doc |= {"load": [load_before, load_after], "rows": rows}
        if leaf:
            doc["leaf"] = {"miss_s": leaf.miss, "hit_s": leaf.hit}
        if idle:
            doc["idle"] = {
                "connections": idle.connections,
                "rss_before": idle.rss_before,
                "rss_after": idle.rss_after,
                "errors": idle.errors,
            }
        args.json.write_text(json.dumps(doc, indent=2))
    return 1 if failed or (idle and idle.errors) else 0


if __name__ == "__main__":
    raise SystemExit(main())
