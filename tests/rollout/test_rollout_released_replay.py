"""Replay against the released loop: with default settings the ARPO and AEPO modes make the released decisions
(which paths branch, the budget split m, the counter l, when fills start) and produce the same token sequences.

``released_loop.py`` restates the released per-round loop of algorithms.md §1.2/§2.2; both sides draw from a
``random.Random(seed)`` in the released order and sample from the same scripted engine.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from released_loop import ReleasedConfig, ReleasedLoop, ScriptedEngine, tool_result

import aepo_envs
from aepo_agent.rollout import RolloutConfig, TreeRollout
from aepo_agent.rollout.trajectory import chat_prompt_ids
from aepo_envs import Tool, ToolResult, ToolUseEnv


class EchoTool(Tool):
    """A cheap python-tagged tool, so hundreds of rollouts run in seconds."""

    name = "echo"
    description = "echo"
    parameters = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
    tag = "python"
    primary_arg = "code"

    def call(self, args: Mapping[str, Any]) -> ToolResult:
        return ToolResult(tool_result(args["code"])[len(" <result>\n") : -len("\n</result>")])


aepo_envs.register_tool("echo", EchoTool, overwrite=True)


def _env(call_limit: int) -> ToolUseEnv:
    """The released tool rules: a total call limit, the overrun ends the path, an empty call ends it silently."""
    tasks = [{"task_id": f"t{i}", "question": f"question {i} ?", "answers": ["1"]} for i in range(3)]
    return ToolUseEnv(tasks=tasks, tools=["echo"], reward="f1", max_turns=10_000, max_tool_calls_total=call_limit,
                      on_tool_budget="truncate", on_empty_tool_call="end", system_prompt="sys")


def _case(seed: int) -> tuple[ReleasedConfig, int]:
    r = random.Random(seed)
    mode = "arpo" if seed % 2 == 0 else "aepo"
    n = r.randint(2, 8)
    cfg = ReleasedConfig(mode=mode, n=n, initial_rollouts=r.randint(1, n + 1), call_limit=r.randint(1, 4),
                         response_length=r.choice([120, 300, 600]), dynamic=mode == "aepo" and r.random() < 0.5,
                         seed=seed)
    return cfg, r.randint(1, 3)


def _ours(cfg: ReleasedConfig, prompts: int, **options: Any):
    envs = [_env(cfg.call_limit) for _ in range(prompts)]
    rcfg = RolloutConfig(mode=cfg.mode, n=cfg.n, initial_rollouts=cfg.initial_rollouts,
                         max_response_tokens=cfg.response_length, dynamic_rollouts=cfg.dynamic, seed=cfg.seed,
                         **options)
    rollout = TreeRollout(ScriptedEngine(), rcfg)
    result = rollout.run(envs, [{"task_id": f"t{q}"} for q in range(prompts)])
    trees = []
    for q in range(prompts):
        rows = [r for r in result.rows if r.group_id == q]
        local = {r.traj_id: i for i, r in enumerate(rows)}
        trees.append([(None if r.parent_id is None else local[r.parent_id], r.response_ids) for r in rows])
    return rollout.events, trees, result


def _released(cfg: ReleasedConfig, prompts: int):
    env = _env(cfg.call_limit)
    tok = ScriptedEngine().tokenizer
    ids = [chat_prompt_ids(tok, env.reset(options={"task_id": f"t{q}"})[1]["messages"]) for q in range(prompts)]
    loop = ReleasedLoop(ScriptedEngine(), cfg)
    paths = loop.run(ids)
    return loop.events, [[(p.parent, p.tokens) for p in group] for group in paths]


def test_released_replay_200_rollouts() -> None:
    seen = {"branch": 0, "fill": 0, "budget_not_N": 0, "run>1": 0, "eos_overrun": 0, "empty_end": 0, "dynamic": 0}
    for seed in range(200):
        cfg, prompts = _case(seed)
        ours_events, ours_trees, result = _ours(cfg, prompts)
        ref_events, ref_trees = _released(cfg, prompts)
        assert ours_events == ref_events, f"seed {seed}: decisions differ from the released loop ({cfg})"
        assert ours_trees == ref_trees, f"seed {seed}: trajectories differ from the released loop ({cfg})"
        kinds = [e[0] for e in ours_events]
        seen["branch"] += kinds.count("branch")
        seen["fill"] += kinds.count("fill")
        seen["budget_not_N"] += any(e[0] == "budget" and e[2] != min(cfg.initial_rollouts, cfg.n)
                                    for e in ours_events)
        seen["run>1"] += any(e[0] == "run" and e[2] > 1 for e in ours_events)
        seen["eos_overrun"] += sum(r.finish == "tool_overrun" for r in result.rows)
        seen["empty_end"] += sum(r.finish == "env_truncated" for r in result.rows)
        seen["dynamic"] += cfg.dynamic
        assert all(len([r for r in result.rows if r.group_id == q]) == cfg.n for q in range(prompts))
    # The replay covered every rule it claims to check.
    assert all(v > 5 for v in seen.values()), seen


def test_overrun_eos_is_trained_and_has_no_engine_logprob() -> None:
    cfg = ReleasedConfig(mode="arpo", n=4, initial_rollouts=4, call_limit=1, seed=3)
    for seed in range(40):
        cfg.seed = seed
        _, _, result = _ours(cfg, 1)
        for row in result.rows:
            if row.finish == "tool_overrun":
                assert row.response_ids[-1] == 0 and row.loss_mask[-1] == 1
                assert row.old_logprobs[-1] != row.old_logprobs[-1]  # NaN: not sampled by the engine
                return
    pytest.fail("no tool overrun in 40 seeded rollouts")


def test_today_rules_stay_available() -> None:
    """branch_from=tool_result and tool_overrun=env: no branch from a path that did not just run a tool, and no
    EOS appended at an overrun."""
    envs = [_env(1)]
    rcfg = RolloutConfig(mode="arpo", n=8, initial_rollouts=2, max_response_tokens=300, seed=5,
                         branch_from="tool_result", tool_overrun="env")
    result = TreeRollout(ScriptedEngine(), rcfg).run(envs, [{"task_id": "t0"}])
    assert all(not (r.finish == "tool_overrun" and r.response_ids[-1] == 0 and r.loss_mask[-1] == 1)
               for r in result.rows if r.response_ids)
