"""An env step in-process vs over the OpenEnv WebSocket (``aepo-envs serve`` on 127.0.0.1), and steps/s with
32 concurrent sessions; both sides printed side by side from one run.

    python bench/bench_remote.py [--steps 400] [--sessions 32] [--env AEPO/CalcQA-v0]

The server runs in an interpreter with openenv (``$AEPO_OPENENV_PYTHON``, ``.venv-openenv`` or this one). A
"no-op" step is a turn without a tool call (the env parses it and answers with feedback): what remains is the
protocol's cost. A ``<python>pass</python>`` step adds the same sandbox call on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import gymnasium as gym

import aepo_envs

REPO = Path(__file__).resolve().parents[1]
NOOP = "I will think about it first."
PYTHON_PASS = "<python>pass</python>"


def _server_python() -> str:
    probe = "import importlib.util as u; assert u.find_spec('openenv.core')"
    for candidate in (os.environ.get("AEPO_OPENENV_PYTHON"), str(REPO / ".venv-openenv/bin/python"), sys.executable):
        if candidate and Path(candidate).exists() and subprocess.run([candidate, "-c", probe]).returncode == 0:
            return candidate
    sys.exit("no interpreter with openenv: set AEPO_OPENENV_PYTHON or build .venv-openenv")


def _start(env_id: str, kwargs: dict, sessions: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [_server_python(), "-m", "aepo_envs.cli", "serve", env_id, "--port", str(port),
           "--max-sessions", str(sessions + 2), "--idle-timeout", "600"]
    cmd += [a for k, v in kwargs.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start")


def _step_times(env: gym.Env, action: str, steps: int, status: str) -> list[float]:
    """Seconds per ``step(action)`` (each must end with tool status ``status``), resetting (untimed) whenever
    an episode ends."""
    times: list[float] = []
    env.reset(seed=0)
    while len(times) < steps:
        t0 = time.perf_counter()
        _, _, terminated, truncated, info = env.step(action)
        times.append(time.perf_counter() - t0)
        if info["tool_status"] != status:
            sys.exit(f"{action!r} gave tool status {info['tool_status']!r}, not {status!r}: the bench is off")
        if terminated or truncated:
            env.reset()
    return times


def _throughput(make, sessions: int, steps_each: int) -> float:
    """Steps/s of ``sessions`` envs stepped concurrently, one thread each."""
    envs = [make() for _ in range(sessions)]
    for env in envs:
        env.reset(seed=0)
    barrier = threading.Barrier(sessions + 1)

    def run(env: gym.Env) -> None:
        barrier.wait()
        for _ in range(steps_each):
            _, _, terminated, truncated, _ = env.step(NOOP)
            if terminated or truncated:
                env.reset()

    threads = [threading.Thread(target=run, args=(env,)) for env in envs]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for env in envs:
        env.close()
    return sessions * steps_each / elapsed


def _ms(times: list[float], q: float) -> float:
    return 1000 * statistics.quantiles(times, n=100)[int(q) - 1] if q != 50 else 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="AEPO/CalcQA-v0")
    parser.add_argument("--steps", type=int, default=400, help="timed steps per latency measurement")
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--steps-per-session", type=int, default=50)
    args = parser.parse_args()
    kwargs = {"max_turns": 1000, "max_tool_calls": 10**6, "max_context_chars": 10**8,
              "world_kwargs": {"n_questions": 8}}
    proc, url = _start(args.env, kwargs, args.sessions)
    try:
        local = gym.make(args.env, **kwargs)
        remote = aepo_envs.connect(url)
        rows = []
        cases = (("no-op step (feedback, no tool)", NOOP, "parse_error"), ("python `pass` step", PYTHON_PASS, "ok"))
        for name, action, status in cases:
            steps = args.steps if action == NOOP else max(50, args.steps // 4)
            _step_times(local, action, 20, status), _step_times(remote, action, 20, status)  # warm up both
            lt, rt = _step_times(local, action, steps, status), _step_times(remote, action, steps, status)
            rows.append((name, _ms(lt, 50), _ms(rt, 50), _ms(lt, 95), _ms(rt, 95)))
        local.close()
        remote.close()
        print(f"{args.env}, server on 127.0.0.1 (uvicorn, OpenEnv /ws); {os.cpu_count()} CPUs")
        print(f"{'step':32} {'in-process p50':>15} {'WebSocket p50':>14} {'added p50':>10} {'p95 in/ws':>16}")
        for name, lp50, rp50, lp95, rp95 in rows:
            print(f"{name:32} {lp50:12.3f} ms {rp50:11.3f} ms {rp50 - lp50:7.3f} ms {lp95:7.2f}/{rp95:.2f} ms")
        local_tp = _throughput(lambda: gym.make(args.env, **kwargs), args.sessions, args.steps_per_session)
        one_tp = _throughput(lambda: aepo_envs.connect(url), 1, args.steps_per_session * 4)
        remote_tp = _throughput(lambda: aepo_envs.connect(url), args.sessions, args.steps_per_session)
        print(f"no-op steps/s: in-process {args.sessions} envs (threads) {local_tp:,.0f}; "
              f"WebSocket 1 session {one_tp:,.0f}; WebSocket {args.sessions} concurrent sessions {remote_tp:,.0f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
