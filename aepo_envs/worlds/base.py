"""The World interface (generated tasks plus the tool back-ends they need) and a per-process shared cache."""

from __future__ import annotations

import abc
import importlib
import json
import threading
from collections.abc import Callable
from typing import Any

from aepo_envs.tasks.base import TaskRow


class World(abc.ABC):
    """Offline generated tasks plus whatever serves them (a site, an index); envs read ``tasks``.

    ``tool_overrides()`` returns per-tool config kwargs the env merges into its tool configs.
    """

    name: str = ""
    tasks: list[TaskRow]

    @abc.abstractmethod
    def tool_overrides(self) -> dict[str, dict[str, Any]]:
        """Per tool name, config kwargs that point the tool at this world's back-ends."""

    def close(self) -> None:
        """Release servers and temporary files. Idempotent."""
        return None

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WorldFactory = Callable[..., World]
_FACTORIES: dict[str, WorldFactory] = {}
_LOCK = threading.Lock()  # guards _FACTORIES, _CACHE, _REFS and _builtins_loaded
_CACHE: dict[tuple[str, str], World] = {}
_REFS: dict[int, tuple[tuple[str, str], int]] = {}
# Built-in worlds by name: (module, class). Imported on first use so ``import aepo_envs`` stays light.
_BUILTIN: dict[str, tuple[str, str]] = {
    "synthwiki": ("aepo_envs.worlds.synthwiki.world", "SynthWikiWorld"),
    "calcqa": ("aepo_envs.worlds.calcqa", "CalcQAWorld"),
}
_builtins_loaded = False


def register_world(name: str, factory: WorldFactory, *, overwrite: bool = False) -> None:
    """Make a world available to ``get_world(name, **kwargs)`` (names are case-insensitive)."""
    key = name.lower()
    with _LOCK:
        if key in _FACTORIES and not overwrite:
            raise ValueError(f"world {name!r} is already registered; pass overwrite=True to replace it")
        _FACTORIES[key] = factory


def registered_worlds() -> list[str]:
    """Names of all registered worlds."""
    _ensure_builtin()
    with _LOCK:
        return sorted(_FACTORIES)


def _ensure_builtin() -> None:
    """Register the built-in worlds once per process, safely from many threads; a user's earlier
    ``register_world`` of a built-in name wins (it is not a duplicate, the built-in just steps aside)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    # Import outside _LOCK (the import system has its own per-module locks), then register under it.
    factories = {name: getattr(importlib.import_module(module), attr) for name, (module, attr) in _BUILTIN.items()}
    with _LOCK:
        for name, factory in factories.items():
            _FACTORIES.setdefault(name, factory)
        _builtins_loaded = True


def _cache_key(name: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    try:
        frozen = json.dumps(kwargs, sort_keys=True, default=str)
    except TypeError as exc:
        raise TypeError(f"get_world({name!r}, ...): kwargs must be JSON-like values: {exc}") from exc
    return name.lower(), frozen


def get_world(name: str, **kwargs: Any) -> World:
    """The process-wide world for ``(name, kwargs)``, built on first use; pair each call with ``release_world``."""
    _ensure_builtin()
    key = _cache_key(name, kwargs)
    with _LOCK:
        world = _CACHE.get(key)
        if world is None:
            if key[0] not in _FACTORIES:
                raise KeyError(f"unknown world {name!r}; registered worlds: {sorted(_FACTORIES)}")
            world = _FACTORIES[key[0]](**kwargs)
            _CACHE[key] = world
        _, count = _REFS.get(id(world), (key, 0))
        _REFS[id(world)] = (key, count + 1)
        return world


def release_world(world: World) -> None:
    """Drop one reference taken by ``get_world``; the last release closes the world."""
    with _LOCK:
        entry = _REFS.get(id(world))
        if entry is None:
            return
        key, count = entry
        if count > 1:
            _REFS[id(world)] = (key, count - 1)
            return
        del _REFS[id(world)]
        _CACHE.pop(key, None)
    world.close()


def world_refcount(world: World) -> int:
    """How many ``get_world`` references to ``world`` are outstanding (0 if it is not cached)."""
    with _LOCK:
        return _REFS.get(id(world), (None, 0))[1]
