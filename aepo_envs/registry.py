"""Registers every env described by the YAML files in ``env_configs/`` as ``AEPO/<Name>-v<N>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

from aepo_envs.envs.config import deep_merge

NAMESPACE = "AEPO"
ENTRY_POINT = "aepo_envs.envs.tool_use_env:ToolUseEnv"
REMOTE_ID = f"{NAMESPACE}/Remote-v0"


def config_dir() -> Path:
    """Where the env YAMLs live: inside the installed wheel, or at the repository root in a checkout."""
    packaged = Path(__file__).resolve().parent / "_env_configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "env_configs"


def load_env_specs(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Read every ``*.yaml`` family file into ``{env_id: {"kwargs": ..., "nondeterministic": ...}}``."""
    directory = directory or config_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"env config directory {directory} is missing; reinstall the aepo package")
    specs: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        family = doc.get("family", path.stem)
        defaults = doc.get("defaults", {}) or {}
        for name, env_doc in (doc.get("envs") or {}).items():
            env_doc = dict(env_doc or {})
            version = int(env_doc.pop("version", doc.get("version", 0)))
            nondeterministic = bool(env_doc.pop("nondeterministic", doc.get("nondeterministic", False)))
            kwargs = deep_merge(dict(defaults), env_doc)
            kwargs.setdefault("name", name)
            env_id = f"{NAMESPACE}/{name}-v{version}"
            if env_id in specs:
                raise ValueError(f"{env_id} is defined twice (second time in {path.name})")
            specs[env_id] = {"kwargs": kwargs, "nondeterministic": nondeterministic, "family": family}
    return specs


def register_all() -> list[str]:
    """Register all YAML-described envs with gymnasium (idempotent). Returns their ids."""
    ids = []
    for env_id, spec in load_env_specs().items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=ENTRY_POINT,
                nondeterministic=spec["nondeterministic"],
                kwargs={"base_config": spec["kwargs"]},
            )
        ids.append(env_id)
    if REMOTE_ID not in gym.registry:  # an env served by `aepo-envs serve` (gym.make(REMOTE_ID, url=...))
        gym.register(id=REMOTE_ID, entry_point="aepo_envs.envs.remote:RemoteEnv", nondeterministic=True)
    return ids


def list_envs(family: str | None = None) -> list[str]:
    """Ids of the registered AEPO envs, optionally of one family (the YAML file's ``family``)."""
    specs = load_env_specs()
    return sorted(i for i, s in specs.items() if family is None or s["family"] == family)
