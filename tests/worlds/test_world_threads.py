"""The world registry and cache under threads: the first concurrent gym.make in a fresh process must not race."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

N_THREADS = 16
SMALL_SYNTHWIKI = {"n_entities": 150, "n_questions": 6, "seed": 21}


def _run_fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (empty world registry) and parse the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_first_concurrent_gym_make_of_world_envs_does_not_race(world_cache: Path) -> None:
    synthwiki_kwargs = {**SMALL_SYNTHWIKI, "cache_dir": str(world_cache)}
    result = _run_fresh(f"""
        import json, threading, traceback
        import gymnasium as gym
        import aepo_envs  # noqa: F401

        SPECS = [("AEPO/CalcQA-v0", {{"n_questions": 5}}), ("AEPO/SynthWiki-v0", {synthwiki_kwargs!r})]
        barrier = threading.Barrier({N_THREADS})
        errors, rewards = [], []

        def work(i):
            try:
                barrier.wait()
                for env_id, world_kwargs in SPECS[i % 2:] + SPECS[: i % 2]:
                    env = gym.make(env_id, world_kwargs=world_kwargs)
                    try:
                        env.reset(seed=i)
                        _, reward, terminated, _, _ = env.step("<answer>\\\\boxed{{1}}</answer>")
                        assert terminated
                        rewards.append(reward)
                    finally:
                        env.close()
            except BaseException:
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=work, args=(i,)) for i in range({N_THREADS})]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({{"errors": errors, "steps": len(rewards)}}))
    """)
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["steps"] == 2 * N_THREADS


def test_world_cache_builds_one_world_per_key_under_threads() -> None:
    result = _run_fresh(f"""
        import json, threading, time, traceback
        from aepo_envs.worlds import get_world, register_world, release_world, world_refcount
        from aepo_envs.worlds.calcqa import CalcQAWorld

        builds = []

        def slow_factory(**kwargs):
            builds.append(kwargs)
            time.sleep(0.05)  # widen the window in which a second build could start
            return CalcQAWorld(**kwargs)

        register_world("slowcalc", slow_factory)
        barrier = threading.Barrier({N_THREADS})
        errors, got = [], []

        def work(i):
            try:
                barrier.wait()
                got.append(get_world("calcqa", n_questions=3))  # first use: built-ins register here
                got.append(get_world("slowcalc", n_questions=3))
            except BaseException:
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=work, args=(i,)) for i in range({N_THREADS})]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        worlds = {{id(w): w for w in got}}
        counts = sorted(world_refcount(w) for w in worlds.values())
        for w in got:
            release_world(w)
        after = [world_refcount(w) for w in worlds.values()]
        try:
            register_world("slowcalc", slow_factory)
            duplicate_raises = False
        except ValueError:
            duplicate_raises = True
        print(json.dumps({{"errors": errors, "n_worlds": len(worlds), "builds": len(builds), "counts": counts,
                          "after": after, "duplicate_raises": duplicate_raises}}))
    """)
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["n_worlds"] == 2  # one calcqa world, one slowcalc world
    assert result["builds"] == 1
    assert result["counts"] == [N_THREADS, N_THREADS]
    assert result["after"] == [0, 0]
    assert result["duplicate_raises"]  # a genuine user duplicate still raises
