"""Sandbox latency, measured side by side in one run: cold exec vs a bare ``subprocess.run([python, "-c",
code])`` (target <= 1.5x at p50), and warm session exec p50 for ``x+1`` (target <= 5 ms).

Cold exec is a fresh sandboxed interpreter per run. It is measured twice: with the default pre-started spare
(``prestart=1``: the sandbox came up before the run, in the background) and with ``prestart=0`` (the run waits
for bwrap, the namespaces and the interpreter). Calls are spaced by ``--gap-ms`` of idle time (default 20 ms,
well under the time a model takes to write its next tool call), the same for every variant.

Usage: ``python bench/bench_sandbox.py [--backend auto] [--runs 40] [--warm-runs 300]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from aepo_envs.backends.sandbox import make_sandbox

CODE = "print(sum(range(1000)))"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warm-runs", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--allow-unsafe", action="store_true")
    args = ap.parse_args()
    box = make_sandbox(args.backend, allow_unsafe=args.allow_unsafe)
    nopool = make_sandbox(args.backend, allow_unsafe=args.allow_unsafe, prestart=0)
    python = box.interpreter().executable if hasattr(box, "interpreter") else sys.executable
    box.run(CODE, 30)  # warm the interpreter probe and the page cache
    nopool.run(CODE, 30)
    gap = args.gap_ms / 1000

    def timed(fn: object) -> float:
        time.sleep(gap)
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        return (time.perf_counter() - t0) * 1000

    def check(result: object) -> None:
        assert result.stdout.strip() == "499500", result  # type: ignore[attr-defined]

    bare, cold, cold0 = [], [], []
    for _ in range(args.runs):  # interleaved, so machine load hits all alike
        bare.append(
            timed(lambda: subprocess.run([python, "-c", CODE], capture_output=True, timeout=60, check=True))
        )
        cold.append(timed(lambda: check(box.run(CODE, 60))))
        cold0.append(timed(lambda: check(nopool.run(CODE, 60))))
    burst = []  # back to back, no gap: the spare cannot be ready each time, the worst case for prestart
    for _ in range(args.runs):
        t0 = time.perf_counter()
        check(box.run(CODE, 60))
        burst.append((time.perf_counter() - t0) * 1000)
    session = box.open_session()
    session.run("x = 1", 60)
    warm = []
    for _ in range(args.warm_runs):
        t0 = time.perf_counter()
        result = session.run("x+1", 10)
        warm.append((time.perf_counter() - t0) * 1000)
        assert result.stdout == "2\n", result
    session.close()
    box.close()
    b50, c50, z50 = statistics.median(bare), statistics.median(cold), statistics.median(cold0)
    print(f"backend: {box.backend}   python: {python}   cold runs: {args.runs}   warm runs: {args.warm_runs}")
    print(f"{'':28s}{'p50 ms':>10s}{'p95 ms':>10s}")
    print(f"{'bare subprocess.run':28s}{b50:10.2f}{pct(bare, 0.95):10.2f}")
    print(f"{'sandbox cold exec':28s}{c50:10.2f}{pct(cold, 0.95):10.2f}")
    print(f"{'  same, prestart=0':28s}{z50:10.2f}{pct(cold0, 0.95):10.2f}")
    print(f"{'  same, back to back':28s}{statistics.median(burst):10.2f}{pct(burst, 0.95):10.2f}")
    print(f"{'sandbox warm session exec':28s}{statistics.median(warm):10.3f}{pct(warm, 0.95):10.3f}")
    print(
        f"cold/bare ratio: p50 {c50 / b50:.2f}x  p95 {pct(cold, 0.95) / pct(bare, 0.95):.2f}x  (target <= 1.5x)"
    )
    print(f"prestart=0 cold/bare ratio: p50 {z50 / b50:.2f}x  p95 {pct(cold0, 0.95) / pct(bare, 0.95):.2f}x")
    print(f"warm session p50: {statistics.median(warm):.3f} ms  (target <= 5 ms)")


if __name__ == "__main__":
    main()
