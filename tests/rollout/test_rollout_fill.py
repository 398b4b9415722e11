"""The fill rule for groups whose paths all ended short of n: one global sample per round (released) or all."""

from __future__ import annotations

import gymnasium as gym
import pytest

import aepo_envs  # noqa: F401
from aepo_agent.rollout import RolloutConfig, TreeRollout


@pytest.mark.parametrize(("fill", "calls"), [("per_round", [2, 1, 1]), ("all", [2, 2])])
def test_fill_rule_rounds_and_exact_group_size(fill: str, calls: list[int], answer_engine) -> None:
    engine = answer_engine
    env = gym.make("AEPO/CalcQA-v0", max_turns=2, world_kwargs={"n_questions": 5})
    try:
        cfg = RolloutConfig(mode="arpo", n=4, initial_rollouts=2, fill=fill, seed=0)  # type: ignore[arg-type]
        result = TreeRollout(engine, cfg).run([env])
    finally:
        env.close()
    assert engine.calls == calls
    assert len(result.rows) == 4 and all(r.parent_id is None for r in result.rows)
    assert result.stats["rollout/fills_per_tree"] == 2  # the two samples beyond initial_rollouts


def test_fill_rule_is_validated() -> None:
    with pytest.raises(ValueError, match="fill"):
        RolloutConfig(fill="later").validate()  # type: ignore[arg-type]


def test_rollout_frees_the_engine_prefix_cache_when_it_ends(answer_engine) -> None:
    cleared: list[int] = []
    answer_engine.clear_prefix_cache = lambda: cleared.append(len(answer_engine.calls))
    env = gym.make("AEPO/CalcQA-v0", max_turns=2, world_kwargs={"n_questions": 5})
    try:
        TreeRollout(answer_engine, RolloutConfig(mode="flat", n=2, seed=0)).run([env])
    finally:
        env.close()
    assert cleared == [1]  # once, after the last round (KV kept between rounds is not held through the update)
