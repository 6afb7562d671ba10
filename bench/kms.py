"""KMS throughput and latency: latchkey's local cloud against moto's server, one load generator.

    .venv/bin/python bench/kms.py                 # the full matrix (about 15 minutes)
    .venv/bin/python bench/kms.py --quick         # a short run to see that everything works
    .venv/bin/python bench/kms.py --keys 10,1000,100000 --targets latchkey-http \\
        --ops Encrypt --concurrency 16            # flat throughput over the number of keys

What runs: ``latchkey up`` (on a temporary data directory, plain-HTTP listener on) and
``moto_server``, both on loopback, both pinned to CPU 0 when ``taskset`` exists; this process,
the only load generator, pinned to CPU 1. The generator is asyncio (uvloop when installed) on
raw keep-alive sockets, closed loop: each of ``c`` connections sends a request, waits for the
whole answer, sends the next. Every answer must be a 200 whose body holds the operation's output
member, else it counts as an error.

Signing: requests are SigV4-signed with botocore's ``SigV4Auth`` ahead of time, one request per
key (Encrypt, GenerateDataKey) or per ciphertext (Decrypt), outside the timed windows; a signed
pool is reused while it is younger than four minutes (KMS accepts a signature for five), so
signing cost never counts. latchkey has no replay protection inside that window, like AWS.

Each (target, operation, concurrency) is measured ``--runs`` times, interleaved, for
``--duration`` seconds after a short warm-up; the report gives the median of the runs' req/s,
p50 and p99, and the ratios latchkey/moto. With several ``--keys`` counts, each count gets
servers of its own (keys made up front), and the runs interleave across the counts too: the
10-key and the 100,000-key windows of a run meet the same machine minutes apart at most.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_load import (  # this directory's load generator (``sys.path[0]`` when run)
    LOOPBACK,
    OUTPUT_MEMBER,
    Target,
    Window,
    call_many,
    drive,
    op_params,
    sign,
)

OPS = ("Encrypt", "Decrypt", "GenerateDataKey")
TARGETS = ("latchkey-http", "latchkey-https", "moto")
PLAINTEXT_BYTES = 1024
POOL_MAX_AGE = 240.0  # seconds a signed pool is reused (KMS allows 5 minutes of skew)
SETUP_CONCURRENCY = 16


# -- the servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{tail}")


def _clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()
    }


def start_latchkey(
    work: Path, cpu: int | None, name: str = "latchkey"
) -> tuple[Server, list[Target]]:
    data = work / name
    log = work / f"{name}.log"
    exe = Path(sys.executable).parent / "latchkey"
    cmd = [str(exe), "up", "--data-dir", str(data), "--edge", "0", "--cloud", "0"]
    cmd += ["--idp", "0", "--cloud-http", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, env=_clean_env()
        )
    server = Server("latchkey", proc, log)
    deadline = time.monotonic() + 60
    while not (data / "run.json").exists():
        server.check()
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("latchkey up did not start in 60 s")
        time.sleep(0.05)
    time.sleep(0.1)  # run.json is written in one go, but let the writer finish
    info = json.loads((data / "run.json").read_text())
    admin = json.loads((data / "cloud-admin.json").read_text())
    if not info.get("cloud_http"):
        server.stop()
        raise RuntimeError("this latchkey has no plain-HTTP cloud listener (--cloud-http)")
    tls = ssl.create_default_context(cafile=info["ca_bundle"])
    creds = (admin["AccessKeyId"], admin["SecretAccessKey"])
    http_port = int(info["cloud_http"].rsplit(":", 1)[1])
    https_port = int(info["cloud"].rsplit(":", 1)[1])
    return server, [
        Target("latchkey-http", http_port, *creds, store=name),
        Target("latchkey-https", https_port, *creds, tls=tls, store=name),
    ]


def moto_executable() -> Path:
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        print("moto_server is missing: installing moto[server] into this venv", flush=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "moto[server]>=5"]
        subprocess.run(pip, check=True)
    return exe


def start_moto(work: Path, cpu: int | None, name: str = "moto") -> tuple[Server, list[Target]]:
    port = free_port()
    log = work / f"{name}.log"
    cmd = [str(moto_executable()), "-H", LOOPBACK, "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, env=_clean_env()
        )
    server = Server("moto", proc, log)
    deadline = time.monotonic() + 60
    while True:
        server.check()
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            break
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("moto_server did not start in 60 s")
        time.sleep(0.1)
    return server, [Target("moto", port, "testing", "testing", store=name)]


# -- the bench --------------------------------------------------------------------------------


@dataclass
class KeySet:
    """The keys of one store, with one ciphertext per key when Decrypt is measured."""

    key_ids: list[str] = field(default_factory=list)
    ciphertexts: list[str] = field(default_factory=list)


async def grow_keys(
    target: Target, keys: KeySet, count: int, plaintext: str, *, ciphertexts: bool
) -> float:
    """Create keys until there are ``count`` (and, with ``ciphertexts``, one ciphertext per key)
    through the API; returns the seconds it took."""
    start = time.perf_counter()
    while len(keys.key_ids) < count:
        batch = min(10_000, count - len(keys.key_ids))
        made = await call_many(target, [("CreateKey", {})] * batch, concurrency=SETUP_CONCURRENCY)
        keys.key_ids += [m["KeyMetadata"]["KeyId"] for m in made]
    while ciphertexts and len(keys.ciphertexts) < len(keys.key_ids):
        todo = keys.key_ids[len(keys.ciphertexts) : len(keys.ciphertexts) + 10_000]
        calls = [("Encrypt", op_params("Encrypt", k, plaintext)) for k in todo]
        encrypted = await call_many(target, calls, concurrency=SETUP_CONCURRENCY)
        keys.ciphertexts += [e["CiphertextBlob"] for e in encrypted]
    return time.perf_counter() - start


class Pools:
    """Signed request pools per (target, operation), re-signed when older than POOL_MAX_AGE."""

    def __init__(self, plaintext: str, seed: int) -> None:
        self._plaintext = plaintext
        self._rng = random.Random(seed)
        self._made: dict[tuple[str, str, str], tuple[float, int, list[bytes]]] = {}

    def get(self, target: Target, operation: str, keys: KeySet, budget: float) -> list[bytes]:
        """A pool whose signatures stay valid for ``budget`` more seconds."""
        made = self._made.get((target.store, target.name, operation))
        now = time.monotonic()
        if made and made[1] == len(keys.key_ids) and now - made[0] + budget < POOL_MAX_AGE:
            return made[2]
        subjects = keys.ciphertexts if operation == "Decrypt" else keys.key_ids
        pool = [sign(target, operation, op_params(operation, s, self._plaintext)) for s in subjects]
        self._rng.shuffle(pool)
        self._made[(target.store, target.name, operation)] = (
            time.monotonic(),
            len(keys.key_ids),
            pool,
        )
        return pool


@dataclass(slots=True)
class Result:
    keys: int
    target: str
    op: str
    concurrency: int
    runs: list[Window] = field(default_factory=list)

    def median(self, pick: Callable[[Window], float]) -> float:
        return statistics.median(pick(w) for w in self.runs)

    def row(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "target": self.target,
            "op": self.op,
            "concurrency": self.concurrency,
            "req_per_s": round(self.median(lambda w: w.rate), 1),
            "p50_ms": round(self.median(lambda w: w.percentile(0.50)) * 1000, 3),
            "p99_ms": round(self.median(lambda w: w.percentile(0.99)) * 1000, 3),
            "errors": sum(w.errors for w in self.runs),
            "generator_cpu": round(max(w.cpu for w in self.runs), 2),
            "reconnects": sum(w.reconnects for w in self.runs),
            "requests": sum(len(w.latencies) for w in self.runs),
            "runs_req_per_s": [round(w.rate, 1) for w in self.runs],
            "first_error": next((w.first_error for w in self.runs if w.first_error), ""),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    targets: list[str]
    ops: list[str]
    concurrency: list[int]
    keys: list[int]
    duration: float
    warmup: float
    runs: int


async def run_matrix(
    plan: Plan, fleets: Mapping[int, Sequence[Target]], log: Callable[[str], None]
) -> list[Result]:
    """``fleets``: the targets measured at each key count (servers of its own per count when
    there are several). Keys are made first, for every count; then run 1 of every cell, run 2..."""
    plaintext = base64.b64encode(os.urandom(PLAINTEXT_BYTES)).decode()
    pools = Pools(plaintext, seed=1)
    stores: dict[str, KeySet] = {}
    budget = plan.warmup + plan.duration + 5
    need_ct = "Decrypt" in plan.ops
    for count in plan.keys:
        for target in fleets[count]:
            keys = stores.setdefault(target.store, KeySet())
            if len(keys.key_ids) < count or (need_ct and len(keys.ciphertexts) < count):
                log(f"creating keys in {target.store} up to {count} (through the API) ...")
                took = await grow_keys(target, keys, count, plaintext, ciphertexts=need_ct)
                log(f"  {count} keys in {target.store}: {took:.1f} s")
    table = {
        (count, t.name, op, c): Result(count, t.name, op, c)
        for count in plan.keys
        for t in fleets[count]
        for op in plan.ops
        for c in plan.concurrency
    }
    for run in range(plan.runs):
        for count in plan.keys:
            for target in fleets[count]:
                keys = stores[target.store]
                for op in plan.ops:
                    pool = pools.get(target, op, keys, budget * len(plan.concurrency))
                    for c in plan.concurrency:
                        if plan.warmup > 0:
                            await drive(
                                target, pool, OUTPUT_MEMBER[op], concurrency=c,
                                duration=plan.warmup,
                            )  # fmt: skip
                        window = await drive(
                            target, pool, OUTPUT_MEMBER[op], concurrency=c, duration=plan.duration
                        )
                        table[(count, target.name, op, c)].runs.append(window)
                        log(
                            f"  keys={count} run {run + 1}/{plan.runs} {target.name:<15}"
                            f" {op:<16} c={c:<3} {window.rate:9.1f} req/s"
                            f"  p50 {window.percentile(0.5) * 1000:7.3f} ms"
                            f"  p99 {window.percentile(0.99) * 1000:7.3f} ms"
                            f"  errors {window.errors}  generator CPU {window.cpu:.0%}"
                        )
    return list(table.values())


# -- report -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("latchkey", "moto", "botocore", "uvloop", "cryptography"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def render(rows: list[dict[str, Any]], plan: Plan) -> str:
    out = ["| keys | target | operation | c | req/s | p50 ms | p99 ms | errors | generator CPU |"]
    out.append("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(
            f"| {r['keys']} | {r['target']} | {r['op']} | {r['concurrency']} | "
            f"{r['req_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
            f"{r['generator_cpu']:.0%} |"
        )
    by = {(r["keys"], r["target"], r["op"], r["concurrency"]): r for r in rows}
    ratios = []
    for (keys, target, op, c), r in by.items():
        moto = by.get((keys, "moto", op, c))
        if target != "moto" and moto and moto["req_per_s"]:
            ratios.append(
                f"| {keys} | {target} / moto | {op} | {c} | "
                f"{r['req_per_s'] / moto['req_per_s']:.1f}x |"
            )
    if ratios:
        out += ["", "| keys | ratio | operation | c | throughput |", "|---:|---|---|---:|---:|"]
        out += ratios
    out += ["", *targets_check(by, plan)]
    return "\n".join(out)


def targets_check(by: dict[tuple[int, str, str, int], dict[str, Any]], plan: Plan) -> list[str]:
    lines = ["Targets:"]
    least = min(plan.keys)
    for target in ("latchkey-http", "latchkey-https"):
        ours, moto = by.get((least, target, "Encrypt", 16)), by.get((least, "moto", "Encrypt", 16))
        if ours and moto and moto["req_per_s"]:
            ratio = ours["req_per_s"] / moto["req_per_s"]
            verdict = "met" if ratio >= 20 else "MISSED"
            lines.append(f"- Encrypt c=16 {target} >= 20x moto: {ratio:.1f}x ({verdict})")
        for op in plan.ops:
            one = by.get((least, target, op, 1))
            if one:
                verdict = "met" if one["p50_ms"] <= 2.0 else "MISSED"
                lines.append(f"- {op} c=1 {target} p50 <= 2 ms: {one['p50_ms']:.2f} ms ({verdict})")
    if len(plan.keys) > 1:
        for (keys, target, op, c), r in sorted(by.items()):
            base = by.get((least, target, op, c))
            if keys != least and base and base["req_per_s"] and target != "moto":
                share = r["req_per_s"] / base["req_per_s"]
                verdict = "flat" if share >= 0.9 else "NOT flat"
                lines.append(
                    f"- {op} c={c} {target} with {keys} keys vs {least}: {share:.2f} ({verdict})"
                )
    return lines


# -- main -------------------------------------------------------------------------------------


def _csv(
    kind: Callable[[str], Any], choices: Sequence[Any] | None = None
) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma list of {choices or kind.__name__}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per window (15)")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each (1)")
    p.add_argument("--runs", type=int, default=3, help="windows per cell; the median is kept (3)")
    p.add_argument("--concurrency", type=_csv(int), default=[1, 16], help="e.g. 1,16")
    p.add_argument("--keys", type=_csv(int), default=[10], help="key counts, e.g. 10,100000")
    p.add_argument("--ops", type=_csv(str, OPS), default=list(OPS))
    p.add_argument("--targets", type=_csv(str, TARGETS), default=list(TARGETS))
    p.add_argument("--quick", action="store_true", help="2 s windows, 1 run, short warm-up")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument(
        "--work-dir",
        type=Path,
        help="where the servers' temporary data directory is made (default: the system's temp "
        "directory; /dev/shm shows the CPU-bound numbers, without the disk's sync latency)",
    )
    return p


def make_plan(args: argparse.Namespace) -> Plan:
    duration, warmup, runs = args.duration, args.warmup, args.runs
    if args.quick:
        duration, warmup, runs = 2.0, 0.3, 1
    if not 0 < duration <= 600 or not 1 <= runs <= 9 or not 0 <= warmup <= 60:
        raise SystemExit("bench: --duration 0..600, --runs 1..9, --warmup 0..60")
    if any(not 1 <= c <= 256 for c in args.concurrency):
        raise SystemExit("bench: concurrency 1..256")
    if any(not 1 <= k <= 1_000_000 for k in args.keys):
        raise SystemExit("bench: --keys 1..1,000,000")
    return Plan(
        args.targets, args.ops, args.concurrency, sorted(set(args.keys)), duration, warmup, runs
    )


def _event_loop_runner() -> Callable[[Any], Any]:
    try:
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover
        return asyncio.run


@contextlib.contextmanager
def servers(plan: Plan, work: Path, cpu: int | None) -> Iterator[dict[int, list[Target]]]:
    """The targets for each key count: one set of servers, or one per count when there are
    several (so that every count's windows can interleave)."""
    started: list[Server] = []
    fleets: dict[int, list[Target]] = {}
    try:
        for count in plan.keys:
            suffix = f"-{count}" if len(plan.keys) > 1 else ""
            targets = fleets[count] = []
            if any(t.startswith("latchkey") for t in plan.targets):
                server, made = start_latchkey(work, cpu, f"latchkey{suffix}")
                started.append(server)
                targets += [t for t in made if t.name in plan.targets]
            if "moto" in plan.targets:
                server, made = start_moto(work, cpu, f"moto{suffix}")
                started.append(server)
                targets += made
        yield fleets
    finally:
        for server in started:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = make_plan(args)
    info = machine()
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    server_cpu = 0 if pin else None
    if pin:
        os.sched_setaffinity(0, {1})
    command = " ".join(["python", "bench/kms.py", *(argv if argv is not None else sys.argv[1:])])

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    log(f"machine: {info}")
    log(f"pinning: {'servers on CPU 0, generator on CPU 1' if pin else 'none'}")
    load_before = os.getloadavg()[0]
    log(f"load average before: {load_before:.2f} (other work on this machine skews the results)")
    with (
        tempfile.TemporaryDirectory(prefix="latchkey-bench-", dir=args.work_dir) as tmp,
        servers(plan, Path(tmp), server_cpu) as fleets,
    ):
        results = _event_loop_runner()(run_matrix(plan, fleets, log))
    load_after = os.getloadavg()[0]
    rows = [r.row() for r in results]
    print(f"command: {command}")
    print(f"machine: nproc {info['nproc']}, {info['cpu']}, Python {info['python']}")
    print(f"versions: {info['versions']}")
    print(f"pinning: {'servers on CPU 0, generator on CPU 1 (taskset)' if pin else 'none'}")
    print(f"windows: {plan.duration:g} s after {plan.warmup:g} s warm-up, median of {plan.runs}")
    print(f"data directories under: {args.work_dir or tempfile.gettempdir()}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print()
    print(render(rows, plan))
    errors = [r for r in rows if r["errors"]]
    for r in errors:
        print(f"errors in {r['target']} {r['op']} c={r['concurrency']}: {r['first_error']}")
    if args.json:
        doc = {"command": command, "machine": info, "load": [load_before, load_after]}
        args.json.write_text(json.dumps(doc | {"rows": rows}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
