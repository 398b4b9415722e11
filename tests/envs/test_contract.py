"""The env contract (aepo_envs.contract) through a user's wrapper chain: never through ``.unwrapped``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import gymnasium as gym
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit, TransformReward

from aepo_envs import AgentEnv, clone_env, end_episode, end_episode_reward, env_stop_strings, env_tasks

BAD = "no tags here"  # a parse error: feedback, format penalty, the episode goes on


def _make() -> gym.Env:
    """CalcQA from gym.make (OrderEnforcing, PassiveEnvChecker, TimeLimit), then a user's stats and scaling."""
    env = gym.make("AEPO/CalcQA-v0", world_kwargs={"n_questions": 5}, max_turns=4, format_penalty=0.5,
                   max_episode_steps=10)
    return TransformReward(RecordEpisodeStatistics(env), lambda r: 2 * r)


def _answer(env: gym.Env) -> str:
    task = env.get_wrapper_attr("current_task")
    return f"<answer>\\boxed{{{task.answers[0]}}}</answer>"


def _layer(env: gym.Env, kind: type) -> gym.Wrapper:
    while not isinstance(env, kind):
        env = env.env
    return env


@pytest.fixture
def env() -> Iterator[gym.Env]:
    env = _make()
    yield env
    env.close()


def test_wrapped_and_bare_envs_satisfy_the_protocol(env: gym.Env) -> None:
    assert isinstance(env, AgentEnv)
    assert isinstance(env.unwrapped, AgentEnv)
    assert not isinstance(object(), AgentEnv)


def test_stop_strings_and_tasks_through_the_chain(env: gym.Env) -> None:
    bare = env.unwrapped
    assert env_stop_strings(env) == tuple(bare.stop_strings) == env_stop_strings(bare)
    assert "</answer>" in env_stop_strings(env)
    assert list(env_tasks(env)) == list(bare.tasks) and len(env_tasks(env)) == 5


def test_a_wrapper_that_overrides_a_contract_attribute_is_honoured(env: gym.Env) -> None:
    class ExtraStop(gym.Wrapper):
        @property
        def stop_strings(self) -> tuple[str, ...]:
            return (*self.env.get_wrapper_attr("stop_strings"), "</extra>")

    wrapped = ExtraStop(env)
    assert env_stop_strings(wrapped)[-1] == "</extra>"
    assert env_stop_strings(clone_env(wrapped))[-1] == "</extra>"


def test_missing_contract_attribute_names_the_fix() -> None:
    with pytest.raises(AttributeError, match="stop_strings"):
        env_stop_strings(TimeLimit(gym.make("CartPole-v1"), 5))


def test_clone_keeps_wrappers_with_independent_state(env: gym.Env) -> None:
    env.reset(seed=0)
    _, reward, *_ = env.step(BAD)
    assert reward == pytest.approx(-1.0)  # format penalty 0.5, scaled by TransformReward
    twin = clone_env(env)
    try:
        chain_a, chain_b = [], []
        a, b = env, twin
        while isinstance(a, gym.Wrapper):
            assert type(a) is type(b) and a is not b
            chain_a.append(a)
            chain_b.append(b)
            a, b = a.env, b.env
        assert a is not b and type(a) is type(b)
        stats_a, stats_b = _layer(env, RecordEpisodeStatistics), _layer(twin, RecordEpisodeStatistics)
        assert stats_b.episode_lengths == 1 and stats_b.episode_returns == pytest.approx(-0.5)  # state of the moment
        assert stats_b.return_queue is not stats_a.return_queue and stats_b.length_queue is not stats_a.length_queue
        assert _layer(twin, TimeLimit)._elapsed_steps == 1

        # the clone finishes its episode: the reward is scaled and the episode recorded, in the clone only
        _, reward, terminated, _, info = twin.step(_answer(twin))
        assert terminated and reward == pytest.approx(2.0)
        assert info["episode"]["l"] == 2 and info["episode"]["r"] == pytest.approx(0.5)  # raw: -0.5 + 1
        assert stats_b.episode_count == 1 and list(stats_b.return_queue) == [pytest.approx(0.5)]
        assert stats_a.episode_count == 0 and len(stats_a.return_queue) == 0
        assert _layer(env, TimeLimit)._elapsed_steps == 1

        # the original goes on from the branching point by its own path
        _, reward, terminated, _, info = env.step(BAD)
        assert not terminated and reward == pytest.approx(-1.0)
        _, reward, terminated, _, info = env.step("<answer>\\boxed{-1}</answer>")
        assert terminated and reward == pytest.approx(0.0)
        assert info["episode"]["l"] == 3 and info["episode"]["r"] == pytest.approx(-1.0)
        assert list(stats_a.return_queue) == [pytest.approx(-1.0)]
        assert list(stats_b.return_queue) == [pytest.approx(0.5)]
    finally:
        twin.close()


def test_end_episode_through_wrappers_returns_the_raw_reward(env: gym.Env) -> None:
    env.reset(seed=1)
    env.step(BAD)
    reward, components = end_episode(env, "max_response_tokens")
    assert reward == pytest.approx(0.0) and isinstance(components, dict)
    assert env.get_wrapper_attr("done")
    with pytest.raises(RuntimeError, match="over"):
        end_episode(env, "eos")
    assert end_episode_reward(env, 1.0) == pytest.approx(2.0)  # TransformReward applied
    assert end_episode_reward(env.unwrapped, 1.0) == pytest.approx(1.0)


def test_end_episode_on_a_clone_leaves_the_original_running(env: gym.Env) -> None:
    env.reset(seed=2)
    twin = clone_env(env)
    try:
        end_episode(twin, "eos")
        assert twin.get_wrapper_attr("done") and not env.get_wrapper_attr("done")
        _, reward, terminated, _, _ = env.step(_answer(env))
        assert terminated and reward == pytest.approx(2.0)
    finally:
        twin.close()


def test_bare_env_helpers_and_old_import_path() -> None:
    import aepo_envs.utils

    assert aepo_envs.utils.clone_env is clone_env is aepo_envs.clone_env
    bare = gym.make("AEPO/CalcQA-v0", world_kwargs={"n_questions": 5}).unwrapped
    try:
        bare.reset(seed=0)
        twin = clone_env(bare)
        assert type(twin) is type(bare) and twin is not bare
        assert end_episode(twin, "eos")[0] == pytest.approx(0.0)
        assert not bare.done
        twin.close()
    finally:
        bare.close()


def test_contract_imports_no_torch() -> None:
    code = "import sys, aepo_envs.contract, aepo_envs; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
