"""The rollout plays envs through the user's gym wrappers (design.md §3): a reward wrapper and
RecordEpisodeStatistics both act on every trajectory, branch clones included."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, TransformReward

import aepo_envs  # noqa: F401
from aepo_agent.rollout import RolloutConfig, TreeRollout


def _envs(wrapped: bool) -> list[gym.Env]:
    envs = []
    for _ in range(2):
        env = gym.make("AEPO/CalcQA-v0", max_turns=2, world_kwargs={"n_questions": 5})
        if wrapped:
            env = RecordEpisodeStatistics(TransformReward(env, lambda r: 2.0 * r + 1.0))
        envs.append(env)
    return envs


@pytest.mark.parametrize("mode", ["flat", "arpo"])
def test_a_rollout_shows_the_effect_of_the_users_wrappers(mode: str, answer_engine) -> None:
    cfg = RolloutConfig(mode=mode, n=3, initial_rollouts=2, seed=0)
    results = {}
    for wrapped in (False, True):
        envs = _envs(wrapped)
        try:
            results[wrapped] = TreeRollout(type(answer_engine)(), cfg).run(envs, [{"index": 0}, {"index": 1}])
        finally:
            for env in envs:
                env.close()
    plain, wrapped_rows = results[False].rows, results[True].rows
    assert len(plain) == len(wrapped_rows) == 6
    for raw, row in zip(plain, wrapped_rows, strict=True):
        assert row.reward == pytest.approx(2.0 * raw.reward + 1.0)  # the reward wrapper ran
        assert raw.episode is None
        assert row.episode is not None and row.episode["r"] == pytest.approx(row.reward)  # statistics recorded
        assert row.episode["l"] == 1


def test_an_episode_the_rollout_ends_itself_goes_through_the_reward_wrapper(answer_engine) -> None:
    """EOS without an answer: the env is ended from outside (no step), yet the reward wrapper still applies."""
    from aepo_agent.engines.base import Segment

    engine = type(answer_engine)()

    def eos_only(prefixes, params, n=1):
        ids = engine.tokenizer.encode("no answer") + [0]
        return [[Segment(ids, [-0.1] * len(ids), [0.5] * len(ids), "no answer", "eos")] for _ in prefixes]

    engine.generate = eos_only
    cfg = RolloutConfig(mode="flat", n=2, seed=0)
    rewards = {}
    for wrapped in (False, True):
        envs = _envs(wrapped)
        try:
            rows = TreeRollout(engine, cfg).run(envs, [{"index": 0}, {"index": 1}]).rows
        finally:
            for env in envs:
                env.close()
        assert all(r.finish == "eos_without_answer" for r in rows)
        rewards[wrapped] = [r.reward for r in rows]
    # Two wrapped rewards per trajectory: the step with the EOS text (a parse error, raw 0) and the terminal one.
    assert rewards[True] == pytest.approx([2.0 * r + 2.0 for r in rewards[False]])
