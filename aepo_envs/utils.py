"""Helpers for users of the envs; ``clone_env`` now lives with the rest of the contract in ``aepo_envs.contract``."""

from __future__ import annotations

from aepo_envs.contract import clone_env

__all__ = ["clone_env"]
