"""Scale-out figures side by side, in one run: the update time of 1 rank vs 2 ranks at equal global batch on CPU
(bench/_dist_update.py) and SynthWiki rollout env steps per second through a Ray env pool vs in-process envs, each
tool call given a simulated latency.

The rollout half drives ``TreeRollout`` (flat, so every variant runs the same steps) with a scripted engine that
searches ``--calls`` times and then answers, so the engine costs nothing and the figure is the envs' own. Variants:
in-process with today's default (``rollout.env_threads: 1``, steps one after another), in-process with
``--threads`` env threads, and the Ray pool (``--workers`` actors; the rollout's env threads follow the pool).
Waiting (``--latency``) overlaps in threads as well as in actors; Python work (``--cpu-ms``) holds the GIL, so only
separate processes (actors, up to the cores Ray has) overlap it.
Usage: python bench/bench_distributed.py [--workers 8 --latency 0.2 --cpu-ms 0 --prompts 8 --n 4 --calls 3]
                                         [--reps 2 --skip update,rollout]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the scripted engine's tokenizer (characters as token ids)

from char_tokenizer import CharTokenizer  # noqa: E402

from aepo_agent.engines.base import SamplingParams, Segment  # noqa: E402

WORLD = {"n_entities": 300, "n_questions": 64, "seed": 0, "min_hops": 1, "max_hops": 2}


class ToolLatency(gym.Wrapper):
    """Adds ``latency`` seconds of waiting (a remote API) and ``cpu`` seconds of pure-Python work (parsing, scoring;
    it holds the GIL) to every step that called a tool."""

    def __init__(self, env: gym.Env, latency: float, cpu: float) -> None:
        super().__init__(env)
        self.latency, self.cpu = latency, cpu

    def step(self, action: str) -> tuple[Any, ...]:
        result = self.env.step(action)
        if result[4].get("tool_name") is not None:
            time.sleep(self.latency)
            end = time.thread_time() + self.cpu  # this thread's CPU time: a fixed amount of work, not of waiting
            while time.thread_time() < end:
                pass
        return result


def make_env(latency: float, cpu: float) -> gym.Env:
    """A SynthWiki env with tool latency (pickled by value into the Ray actors: this module is ``__main__``)."""
    import aepo_envs  # noqa: F401  (registers AEPO/*)

    return ToolLatency(gym.make("AEPO/SynthWiki-v0", world_kwargs=WORLD, max_turns=12), latency, cpu)


class SearchThenAnswer:
    """A scripted engine: ``calls`` searches (the k-th for a word of the prompt), then an answer."""

    entropy_estimator = "exact"

    def __init__(self, calls: int) -> None:
        self.tokenizer = CharTokenizer()
        self.calls = calls
        self.segments = 0

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        out = []
        for prefix in prefixes:
            text = self.tokenizer.decode(prefix)
            done = text.count("<result>")
            if done < self.calls:
                action, stop = f"<search>{text.split()[done % len(text.split())]} {done}</search>", "</search>"
            else:
                action, stop = "<answer>\\boxed{1900}</answer>", "</answer>"
            ids = self.tokenizer.encode(action)
            out.append([Segment(ids, [-0.5] * len(ids), [1.0] * len(ids), action, "stop", stop)])
            self.segments += 1
        return out

    def update_weights(self, named_tensors) -> None:
        pass

    def close(self) -> None:
        pass


def _rollout_once(envs: list[Any], args: argparse.Namespace, threads: int, seed: int) -> tuple[float, int]:
    """Wall seconds and env steps of one flat rollout over ``envs`` (every segment ends on a stop: one step)."""
    from aepo_agent.rollout import RolloutConfig, TreeRollout

    engine = SearchThenAnswer(args.calls)
    cfg = RolloutConfig(mode="flat", n=args.n, max_response_tokens=args.max_response_tokens, seed=seed,
                        env_threads=threads)
    started = time.perf_counter()
    result = TreeRollout(engine, cfg).run(envs, [{"index": i} for i in range(len(envs))])
    wall = time.perf_counter() - started
    short = [r for r in result.rows if r.num_tool_calls != args.calls]
    if short:
        raise RuntimeError(f"{len(short)} trajectories did not make {args.calls} tool calls ({short[0].finish}); "
                           "raise --max-response-tokens")
    return wall, engine.segments


def rollout_half(args: argparse.Namespace) -> list[dict[str, Any]]:
    """SynthWiki env steps per second: in-process (serial, threaded) and through the Ray pool."""
    import os

    import ray

    from aepo_agent.rollout.ray_envs import RayEnvPool

    factory = functools.partial(make_env, args.latency, args.cpu_ms / 1000)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    pool = RayEnvPool(factory, num_workers=args.workers, address=args.address, max_concurrency=args.concurrency)
    print(f"Ray pool of {args.workers} actors up in {time.perf_counter() - started:.1f} s "
          f"({int(ray.cluster_resources().get('CPU', 0))} CPUs in the cluster)")
    variants = {
        "in-process, env_threads=1 (default)": ([factory() for _ in range(args.prompts)], 1),
        f"in-process, env_threads={args.threads}": ([factory() for _ in range(args.prompts)], args.threads),
        f"ray pool, {args.workers} workers": (pool.envs(args.prompts), 1),
    }
    print(f"SynthWiki, {args.prompts} prompts x n={args.n}, {args.calls} searches + 1 answer per trajectory, "
          f"{args.latency * 1000:.0f} ms of waiting and {args.cpu_ms:.0f} ms of Python work per tool call")
    walls: dict[str, list[float]] = {name: [] for name in variants}
    steps: dict[str, int] = {}
    for rep in range(args.reps + 1):  # rep 0 warms up (worlds, indexes, actor imports)
        for name, (envs, threads) in variants.items():
            wall, count = _rollout_once(envs, args, threads, seed=rep)
            steps[name] = count
            if rep:
                walls[name].append(wall)
                print(f"  rep {rep} {name:<36} {wall:6.2f} s  {count / wall:7.1f} steps/s")
    for envs, _ in variants.values():
        for env in envs:
            env.close()
    base = "in-process, env_threads=1 (default)"
    rows = []
    for name in variants:
        wall = statistics.median(walls[name])
        rate = steps[name] / wall
        rows.append({"part": "rollout", "variant": name, "wall_s": wall, "rate": f"{rate:.1f} steps/s",
                     "ratio": rate / (steps[base] / statistics.median(walls[base]))})
    return rows


def update_half(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The update time of 1 rank vs 2 ranks at equal global batch on CPU (bench/_dist_update.py's variants)."""
    sys.path.insert(0, str(REPO / "bench"))
    import _dist_update

    update_args = _dist_update._parser().parse_args(["--model", args.update_model, "--reps", str(args.update_reps)])
    return _dist_update.measure(update_args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8, help="Ray env actors")
    parser.add_argument("--concurrency", type=int, default=32, help="env calls one actor runs at once")
    parser.add_argument("--address", default="local", help="local, auto or ray://host:port")
    parser.add_argument("--threads", type=int, default=32, help="env threads of the threaded in-process variant")
    parser.add_argument("--latency", type=float, default=0.2, help="simulated waiting seconds per tool call")
    parser.add_argument("--cpu-ms", type=float, default=0.0, help="simulated Python work per tool call (GIL-bound)")
    parser.add_argument("--prompts", type=int, default=8, help="prompt groups (root envs, spread over the actors)")
    parser.add_argument("--n", type=int, default=4, help="trajectories per prompt")
    parser.add_argument("--calls", type=int, default=3, help="searches per trajectory before its answer")
    parser.add_argument("--max-response-tokens", type=int, default=8192)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--update-model", default="smollm2-135m-instruct", help="the update half's model")
    parser.add_argument("--update-reps", type=int, default=2, help="timed updates per variant (median)")
    parser.add_argument("--skip", default="", help="comma-separated halves not to run: update, rollout")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    rows = []
    if "update" not in skip:
        rows += update_half(args)
    if "rollout" not in skip:
        rows += rollout_half(args)
    print(f"\n{'part':<9}{'variant':<38}{'wall s':>9}{'rate':>16}{'x baseline':>12}")
    for row in rows:
        print(f"{row['part']:<9}{row['variant']:<38}{row['wall_s']:>9.2f}{row['rate']:>16}{row['ratio']:>11.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
