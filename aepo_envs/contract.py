"""The env contract the agent relies on (design.md section 3), reached through any gym wrapper chain.

A rollout holds an ``AgentEnv``: ``reset``/``step``/``close`` are called on the outermost wrapper, so every
wrapper a user adds (``RecordEpisodeStatistics``, ``TransformReward``, ``TimeLimit``) sees the episode. The other
parts of the contract (stop strings, ending an episode from outside, cloning, the task rows) are reached with the
helpers below, which look the name up with ``env.get_wrapper_attr`` (a wrapper may override it) and never with
``.unwrapped``. A non-gym object with the same methods (a remote env proxy) works through plain attributes.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from aepo_envs.tasks.base import TaskRow

__all__ = ["AgentEnv", "clone_env", "end_episode", "end_episode_reward", "env_stop_strings", "env_tasks"]


@runtime_checkable
class AgentEnv(Protocol):
    """What a rollout calls on an env: a ``gym.Env[str, str]`` (wrapped or not) or anything shaped like one.

    Also part of the contract, reached through the wrapper chain with the helpers of this module, not as
    attributes of the outermost wrapper (gym wrappers do not forward attributes):

    - ``stop_strings: tuple[str, ...]``, closing tags an engine stops on (``env_stop_strings``);
    - ``end_episode(reason: str) -> tuple[float, dict[str, float]]``, the raw terminal reward (``end_episode``);
    - ``clone() -> env``, an independent env in the same state (``clone_env`` also copies the wrappers);
    - ``tasks: Sequence[TaskRow]``, the task rows the env draws from (``env_tasks``).
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        """Start an episode: the rendered prompt and an info dict (``messages``, ``tools``, ``task_id``)."""
        ...

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        """Apply the model's text: (new env text, reward, terminated, truncated, info)."""
        ...

    def close(self) -> None:
        """Release tools, servers and world references; idempotent."""
        ...


def _contract_attr(env: Any, name: str) -> Any:
    """``name`` from the first layer of the wrapper chain that has it (plain ``getattr`` for non-gym envs)."""
    try:
        return env.get_wrapper_attr(name) if isinstance(env, gym.Env) else getattr(env, name)
    except AttributeError as exc:
        raise AttributeError(
            f"{type(env).__name__} does not implement the aepo_envs contract attribute {name!r} (at any wrapper "
            "level); wrap an aepo_envs.ToolUseEnv or give your env that attribute"
        ) from exc


def env_stop_strings(env: Any) -> tuple[str, ...]:
    """The strings an engine should stop on, as the outermost layer that defines ``stop_strings`` says."""
    return tuple(_contract_attr(env, "stop_strings"))


def env_tasks(env: Any) -> Sequence[TaskRow]:
    """The task rows the env draws from (``reset(options={"task_id": ...})`` picks one)."""
    return _contract_attr(env, "tasks")


def end_episode(env: Any, reason: str) -> tuple[float, dict[str, float]]:
    """End the current episode from outside (token budget out, EOS without an answer): the RAW terminal reward
    and its components. It bypasses ``step``, so no wrapper sees it: apply ``end_episode_reward`` for reward
    wrappers; ``RecordEpisodeStatistics`` does not record such an episode."""
    return _contract_attr(env, "end_episode")(reason)


def end_episode_reward(env: Any, reward: float) -> float:
    """``reward`` passed through every ``gym.RewardWrapper`` of the chain, innermost first, as ``step`` would.

    Only stateless ``RewardWrapper.reward`` transforms (``TransformReward``, ``ClipReward``, user subclasses) are
    applied; wrappers that change rewards inside their own ``step`` (``NormalizeReward``) are not replayed.
    """
    layers: list[gym.Wrapper] = []
    while isinstance(env, gym.Wrapper):
        layers.append(env)
        env = env.env
    for layer in reversed(layers):
        if isinstance(layer, gym.RewardWrapper):
            reward = layer.reward(reward)
    return float(reward)


# Wrapper attributes that are configuration (shared by clones), never per-episode state.
_SHARED_ATTRS = frozenset({"env", "_saved_kwargs", "_cached_spec", "_metadata"})
_STATE_TYPES = (list, dict, set, deque, bytearray, np.ndarray, np.random.Generator, gym.Space)


def _copy_wrapper(wrapper: gym.Wrapper, inner: Any) -> gym.Wrapper:
    """A copy of one wrapper around ``inner``: scalars by value; containers, arrays, RNGs, spaces deep-copied.

    So ``TimeLimit``'s elapsed steps and ``RecordEpisodeStatistics``'s running episode return/length carry over,
    while its queues and episode count evolve independently in each clone. A wrapper class that defines its
    own ``__copy__`` is trusted to copy its state itself.
    """
    new = copy.copy(wrapper)
    if "__copy__" not in vars(type(wrapper)):
        memo: dict[int, Any] = {}
        for name, value in list(vars(new).items()):
            if name not in _SHARED_ATTRS and isinstance(value, _STATE_TYPES):
                setattr(new, name, copy.deepcopy(value, memo))
    new.env = inner
    return new


def clone_env(env: Any) -> Any:
    """An independent env in the same state, wrappers included: each wrapper is copied (``_copy_wrapper``)
    around a clone of the innermost env (its ``clone()``), so later steps of one never affect the other."""
    if isinstance(env, gym.Wrapper):
        return _copy_wrapper(env, clone_env(env.env))
    clone = getattr(env, "clone", None)
    if clone is None:
        raise TypeError(f"{type(env).__name__} has no clone(); only aepo_envs envs (or envs with clone()) can be cloned")
    return clone()
