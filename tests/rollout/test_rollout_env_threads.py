"""Env steps of one collect run concurrently with ``rollout.env_threads``: the tools overlap, and the rollout's
decisions and trajectories are the same as with serial steps."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from released_loop import ScriptedEngine
from test_rollout_released_replay import EchoTool, _case, _ours

import aepo_envs
from aepo_agent.rollout import RolloutConfig, TreeRollout
from aepo_envs import ToolResult, ToolUseEnv


class _Overlap:
    lock = threading.Lock()
    running = 0
    peak = 0


class SlowTool(EchoTool):
    """Sleeps briefly and records how many calls ran at once."""

    name = "slow"

    def call(self, args: Mapping[str, Any]) -> ToolResult:
        with _Overlap.lock:
            _Overlap.running += 1
            _Overlap.peak = max(_Overlap.peak, _Overlap.running)
        time.sleep(0.05)
        with _Overlap.lock:
            _Overlap.running -= 1
        return ToolResult("ok")


aepo_envs.register_tool("slow", SlowTool, overwrite=True)


def _rollout(threads: int):
    _Overlap.peak = 0
    env = ToolUseEnv(tasks=[{"task_id": "t0", "question": "q0", "answers": ["1"]}], tools=["slow"], reward="f1",
                     max_turns=50, system_prompt="sys")
    cfg = RolloutConfig(mode="flat", n=8, initial_rollouts=8, max_response_tokens=300, seed=4, env_threads=threads)
    rows = TreeRollout(ScriptedEngine(weights=(0.8, 0.0, 0.1, 0.1, 0.0, 0.0)), cfg).run([env], [{"task_id": "t0"}]).rows
    return [(r.response_ids, r.reward, r.finish) for r in rows], _Overlap.peak


def test_env_steps_overlap_and_give_the_serial_result() -> None:
    serial, serial_peak = _rollout(1)
    threaded, threaded_peak = _rollout(8)
    assert serial_peak == 1 and threaded_peak > 1
    assert threaded == serial


def test_threaded_env_steps_keep_the_released_decisions() -> None:
    for seed in range(20):
        cfg, prompts = _case(seed)
        events, trees, _ = _ours(cfg, prompts)
        threaded_events, threaded_trees, _ = _ours(cfg, prompts, env_threads=4)
        assert (threaded_events, threaded_trees) == (events, trees)
