"""Where a trainer's envs run: in this process (``env.workers.backend: local``, the default) or in Ray actors."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym


def make_envs(env_section: Any, count: int) -> list[Any]:
    """``count`` envs of the config's ``env`` section (id, kwargs, workers), each satisfying the env contract."""
    workers = getattr(env_section, "workers", None)
    if workers is None or workers.backend == "local":
        return [gym.make(env_section.id, **env_section.kwargs) for _ in range(count)]
    if workers.backend != "ray":
        raise ValueError(f"env.workers.backend must be local or ray, got {workers.backend!r}")
    try:
        from aepo_agent.rollout.ray_envs import RayEnvPool
    except ImportError as exc:
        raise ImportError("env.workers.backend: ray needs Ray: pip install 'aepo[distributed]'") from exc
    pool = RayEnvPool(functools.partial(make_registered, env_section.id, dict(env_section.kwargs)),
                      num_workers=workers.num_workers, address=workers.address,
                      max_concurrency=workers.max_concurrency, max_restarts=workers.max_restarts,
                      num_cpus=workers.num_cpus)
    return pool.envs(count)  # the pool stops its actors when the trainer has closed all of them


def make_registered(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` with the AEPO ids registered (in a worker process nothing imported them)."""
    import aepo_envs  # noqa: F401  (registers the AEPO/* ids)

    return gym.make(env_id, **kwargs)


def worker_metrics(envs: list[Any]) -> dict[str, float]:
    """``envs/<counter>``: cumulative Ray-pool events (lost steps, rebuilds, failovers); empty for local envs."""
    counters = getattr(envs[0], "worker_counters", None) if envs else None
    return {f"envs/{name}": float(value) for name, value in (counters or {}).items()}
