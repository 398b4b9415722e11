"""Where a trainer's envs run: in this process (``env.workers.backend: local``, the default)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


def make_envs(env_section: Any, count: int) -> list[Any]:
    """``count`` envs of the config's ``env`` section (id, kwargs), each satisfying the env contract."""
    return [gym.make(env_section.id, **env_section.kwargs) for _ in range(count)]
