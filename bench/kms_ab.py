"""Two versions of the local cloud side by side: is a change faster or slower?

Starts ``latchkey up`` twice on CPU 0: A with ``PYTHONPATH=<--a-src>`` (a copy of another
tree's ``src``, e.g. ``git archive REV src | tar -x -C /tmp/a``), B from this checkout (or
from ``--b-src``). Both get the same number of keys (``--keys``, 16 by default) and signed
Encrypt requests over all of them (1 KiB, c=16, plain HTTP); windows alternate A, B, B, A, ...
so a machine that speeds up or slows down meets both alike. Prints each side's windows, their
medians and B/A.

    .venv/bin/python bench/kms_ab.py --a-src /tmp/a/src --rounds 8 --duration 5
    .venv/bin/python bench/kms_ab.py --a-src /tmp/a/src --b-src /tmp/b/src --keys 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kms
from kms_load import Target, drive, op_params, sign

MARKER = b"CiphertextBlob"


async def requests_for(target: Target, count: int) -> list[bytes]:
    keys = kms.KeySet()
    await kms.grow_keys(target, keys, count, "", ciphertexts=False)
    ids = keys.key_ids * max(1, 128 // count)  # a few keys: each named several times
    random.shuffle(ids)
    return [sign(target, "Encrypt", op_params("Encrypt", k, "A" * 1024)) for k in ids]


async def compare(
    targets: dict[str, Target], rounds: int, seconds: float, keys: int = 16
) -> dict[str, list[float]]:
    signed = {name: await requests_for(t, keys) for name, t in targets.items()}
    for name, target in targets.items():  # warm both
        await drive(target, signed[name], MARKER, concurrency=16, duration=2)
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for r in range(rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            window = await drive(targets[name], signed[name], MARKER, concurrency=16,
                                 duration=seconds)  # fmt: skip
            if window.errors:
                raise RuntimeError(f"{name}: {window.errors} failed: {window.first_error}")
            rates[name].append(window.rate)
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-src", required=True, help="the other tree's src directory (A)")
    parser.add_argument("--rounds", type=int, default=8, help="windows per side (default 8)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per window")
    parser.add_argument("--b-src", help="B's src directory (default: this checkout)")
    parser.add_argument("--keys", type=int, default=16, help="keys per side (default 16)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="latchkey-kms-ab-"))
    servers = []
    try:
        os.environ["PYTHONPATH"] = str(Path(args.a_src).resolve())
        server_a, targets_a = kms.start_latchkey(work, 0, "A")
        servers.append(server_a)
        del os.environ["PYTHONPATH"]
        if args.b_src:
            os.environ["PYTHONPATH"] = str(Path(args.b_src).resolve())
        server_b, targets_b = kms.start_latchkey(work, 0, "B")
        os.environ.pop("PYTHONPATH", None)
        servers.append(server_b)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        targets = {"A": targets_a[0], "B": targets_b[0]}  # the plain-HTTP listeners
        rates = asyncio.run(compare(targets, args.rounds, args.duration, args.keys))
    finally:
        for server in servers:
            server.stop()
    for name in ("A", "B"):
        shown = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"{name}: {shown} req/s; median {statistics.median(rates[name]):,.0f}")
    ratio = statistics.median(rates["B"]) / statistics.median(rates["A"])
    print(f"B/A {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
