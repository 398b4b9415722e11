"""The rollout's schedule: rounds (released loop) vs continuous (a trajectory goes on as soon as its segment ends)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import aepo_envs  # noqa: F401
from aepo_agent.engines.stream import Request
from aepo_agent.rollout import RolloutConfig, TreeRollout


class OneAtATime:
    """A continuous stream over a batch engine that ends exactly one request per collect, oldest first."""

    def __init__(self, engine, log: list[list[int]]) -> None:
        self.engine, self.log, self.queue = engine, log, []

    def submit(self, request_id, prefix, params) -> None:
        self.queue.append(Request(request_id, list(prefix), params))

    def collect(self):
        request = self.queue.pop(0)
        self.log.append(request.prefix)
        return [(request.request_id, self.engine.generate([request.prefix], request.params)[0][0])]


def _envs(count: int):
    return [gym.make("AEPO/CalcQA-v0", max_turns=2, world_kwargs={"n_questions": 5}) for _ in range(count)]


def test_continuous_schedule_fills_a_group_while_another_still_runs(answer_engine) -> None:
    log: list[list[int]] = []
    answer_engine.stream = lambda seed=None: OneAtATime(answer_engine, log)
    envs = _envs(2)
    try:
        rollout = TreeRollout(answer_engine, RolloutConfig(mode="arpo", n=4, initial_rollouts=2, seed=0,
                                                           schedule="continuous"))
        prompts = {}
        for gid, env in enumerate(envs):
            _, info = env.unwrapped.reset(options={"index": gid})
            prompts[tuple(answer_engine.tokenizer.apply_chat_template(info["messages"]))] = gid
        result = rollout.run(envs, [{"index": 0}, {"index": 1}])
    finally:
        for env in envs:
            env.close()
    assert result.stats["rollout/continuous"] == 1.0
    # Group 0's paths both ended at the 2nd event: its fill sample ran before group 1's initial paths had ended.
    assert [prompts[tuple(p)] for p in log] == [0, 0, 1, 1, 0, 1, 0, 1]
    assert [sum(r.group_id == g for r in result.rows) for g in (0, 1)] == [4, 4]
    assert result.stats["rollout/rounds"] == 8 and result.stats["rollout/fills_per_tree"] == 2


def test_rounds_schedule_is_the_default_and_runs_without_an_engine_stream(answer_engine) -> None:
    envs = _envs(2)
    try:
        result = TreeRollout(answer_engine, RolloutConfig(mode="arpo", n=4, initial_rollouts=2, seed=0)).run(envs)
        continuous = TreeRollout(answer_engine, RolloutConfig(mode="arpo", n=4, initial_rollouts=2, seed=0,
                                                              schedule="continuous")).run(envs)
    finally:
        for env in envs:
            env.close()
    assert result.stats["rollout/continuous"] == 0.0 and result.stats["rollout/rounds"] == 3
    assert continuous.stats["rollout/continuous"] == 0.0  # no engine stream: the round loop
    assert answer_engine.calls == [4, 2, 2, 4, 2, 2]


def test_schedule_is_validated() -> None:
    with pytest.raises(ValueError, match="schedule"):
        RolloutConfig(schedule="eager").validate()  # type: ignore[arg-type]
