"""Envs in Ray actors behind the env contract (``env.workers.backend: ray``): the rollout does not know where they run.

A ``RayEnvPool`` starts ``num_workers`` threaded actors (``EnvWorker``), each holding many envs; a ``RayEnv`` is the
local proxy of one of them, a ``gym.Env[str, str]`` that forwards reset/step/clone/end_episode/close to its actor
and satisfies the contract helpers (stop strings, tasks, clone, end of episode) with plain attributes. Root envs are
placed round-robin over the actors; a clone is made on the actor that holds its source.

An actor that dies is restarted by Ray (``max_restarts``). A step pending on it returns a ``backend_unavailable``
observation instead of raising (the trajectory goes on); the env's state is gone with the actor, so the proxy
rebuilds it before its next call by resetting a new env with the same task and replaying the trajectory's earlier
actions (deterministic envs reach the same state; the reward stays the env's own, so an infrastructure failure is
not turned into a learning signal). An action whose step was lost is not replayed (it may be what killed the actor)
and does not count as a turn. If the replay cannot reproduce the episode (it ends earlier), the trajectory ends at
its next step with ``truncation_reason == "env_worker_lost"`` and reward 0. An actor out of restarts is given up:
its envs are rebuilt on the other actors.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from aepo_envs.contract import clone_env, end_episode, end_episode_reward, env_stop_strings, env_tasks
from aepo_envs.protocol import make_parser
from aepo_envs.tasks.base import TaskRow

__all__ = ["EnvLostError", "EnvWorker", "RayEnv", "RayEnvPool", "UNAVAILABLE_TEXT"]

UNAVAILABLE_TEXT = ("Error: the environment worker running this episode stopped before answering; "
                    "this action had no effect. Try again.")
LOST_REASON = "env_worker_lost"


class EnvLostError(LookupError):
    """The actor does not hold this env: it was restarted since the env was made (its state went with it)."""


class EnvWorker:
    """The body of one Ray actor: envs by handle, each called by one trajectory at a time (threads run several)."""

    def __init__(self, make_env: Callable[[], Any]) -> None:
        self._make_env = make_env
        self._envs: dict[int, Any] = {}

    def ping(self) -> int:
        """The actor's process id (tests and diagnostics tell a restarted actor by it)."""
        return os.getpid()

    def _env(self, handle: int) -> Any:
        try:
            return self._envs[handle]
        except KeyError:
            raise EnvLostError(f"env {handle} is not on this actor (pid {os.getpid()}): the actor was "
                               "restarted") from None

    def create(self, handle: int) -> dict[str, Any]:
        """Make a new env under ``handle``; what a proxy needs to know about it without asking again."""
        env = self._envs[handle] = self._make_env()
        inner = env.unwrapped if isinstance(env, gym.Env) else env
        config = getattr(inner, "config", None)
        return {
            "stop_strings": env_stop_strings(env),
            "observation_space": getattr(env, "observation_space", None),
            "action_space": getattr(env, "action_space", None),
            "metadata": dict(getattr(env, "metadata", {}) or {}),
            "render_mode": getattr(env, "render_mode", None),
            "action_format": getattr(config, "action_format", "tags"),
        }

    def reset(self, handle: int, seed: int | None, options: dict[str, Any] | None) -> tuple[str, dict]:
        """Reset ``handle``'s env; a reset starts afresh, so an env lost in a restart is made again first."""
        if handle not in self._envs:
            self.create(handle)
        return self._envs[handle].reset(seed=seed, options=options)

    def step(self, handle: int, action: str) -> tuple[str, float, bool, bool, dict]:
        return self._env(handle).step(action)

    def clone(self, source: int, handle: int) -> None:
        self._envs[handle] = clone_env(self._env(source))

    def end_episode(self, handle: int, reason: str) -> tuple[float, dict[str, float]]:
        """The terminal reward through the actor-side reward wrappers (the proxy is the innermost env locally)."""
        env = self._env(handle)
        raw, components = end_episode(env, reason)
        return end_episode_reward(env, raw), components

    def tasks(self, handle: int) -> list[TaskRow]:
        return list(env_tasks(self._env(handle)))

    def render(self, handle: int) -> Any:
        return self._env(handle).render()

    def rebuild(self, handle: int, reset: dict[str, Any] | None, actions: Sequence[str]) -> bool:
        """A new env under ``handle`` brought to a lost env's state: reset as it was, then its actions replayed.
        False when the replay cannot reproduce it (the episode ends before the last action)."""
        old = self._envs.pop(handle, None)
        if old is not None:
            old.close()
        self.create(handle)
        if reset is None:
            return True
        env = self._envs[handle]
        env.reset(**reset)
        for i, action in enumerate(actions):
            try:
                _, _, terminated, truncated, _ = env.step(action)
            except Exception:  # a replayed step that raises: the env did not come back to the same state
                return False
            if (terminated or truncated) and i < len(actions) - 1:
                return False
        return True

    def close(self, handle: int) -> None:
        env = self._envs.pop(handle, None)
        if env is not None:
            env.close()

    def close_all(self) -> None:
        for handle in list(self._envs):
            self.close(handle)


class RayEnvPool:
    """``num_workers`` Ray actors running envs made by ``make_env`` (a picklable zero-argument callable).

    ``address``: ``local`` starts Ray on this machine, ``auto`` joins the running cluster, ``ray://host:port`` a
    remote one; a Ray already initialised in this process is used as is. ``max_concurrency`` env calls run at once
    in each actor (threads), so a slow tool delays only its own trajectory.
    """

    def __init__(self, make_env: Callable[[], Any], *, num_workers: int = 2, address: str = "local",
                 max_concurrency: int = 32, max_restarts: int = 3, num_cpus: float | None = None,
                 rebuild_timeout_s: float = 120.0) -> None:
        if not callable(make_env):
            raise TypeError(f"RayEnvPool(make_env): make_env must be a picklable callable returning an env, got "
                            f"{type(make_env).__name__}")
        if num_workers < 1 or max_concurrency < 1 or max_restarts < 0:
            raise ValueError("RayEnvPool needs num_workers >= 1, max_concurrency >= 1 and max_restarts >= 0")
        _init_ray(address)
        options: dict[str, Any] = {"max_restarts": max_restarts, "max_task_retries": 0,
                                   "max_concurrency": max_concurrency}
        if num_cpus is not None:
            options["num_cpus"] = num_cpus
        actor_class = ray.remote(EnvWorker).options(**options)
        self._actors = [actor_class.remote(make_env) for _ in range(num_workers)]
        ray.get([a.ping.remote() for a in self._actors])  # fail here, not in the first rollout
        self.max_concurrency = max_concurrency
        self.max_restarts = max_restarts
        self.rebuild_timeout_s = rebuild_timeout_s
        self._lock = threading.Lock()
        self._handles = itertools.count()
        self._next_slot = 0
        self._dead: set[int] = set()
        self._owners = 0
        self._closed = False
        self._tasks: tuple[TaskRow, ...] | None = None
        self.counters = {"lost_steps": 0, "rebuilds": 0, "failovers": 0}

    # ------------------------------------------------------------------------------------------ envs
    @property
    def num_workers(self) -> int:
        return len(self._actors)

    @property
    def step_concurrency(self) -> int:
        """Env steps the pool runs at once; the rollout sizes its env thread pool to it."""
        return self.num_workers * self.max_concurrency

    def envs(self, count: int, *, owned: bool = True) -> list[RayEnv]:
        """``count`` new envs, round-robin over the live actors. With ``owned`` the pool shuts its actors down
        once all of them are closed (the trainer closes its envs at the end of a run)."""
        envs = [self._new_env() for _ in range(count)]
        if owned:
            with self._lock:
                self._owners += count
            for env in envs:
                env._owner = True
        return envs

    def _new_env(self) -> RayEnv:
        self._check_open()
        handle = self._new_handle()
        slot, described = self.call_live(self._pick_slot(), "create", handle)
        return RayEnv(self, slot, handle, described)

    def _new_handle(self) -> int:
        with self._lock:
            return next(self._handles)

    def _pick_slot(self) -> int:
        with self._lock:
            live = [i for i in range(self.num_workers) if i not in self._dead]
            if not live:
                raise RuntimeError(f"every Ray env actor of the pool is dead (each used its max_restarts="
                                   f"{self.max_restarts} restarts); raise env.workers.max_restarts or read the "
                                   "actors' logs (ray logs) for why they die")
            slot = live[self._next_slot % len(live)]
            self._next_slot += 1
            return slot

    def failover(self, slot: int) -> int:
        """Give up the actor of ``slot`` (out of restarts): another live slot."""
        with self._lock:
            self._dead.add(slot)
            self.counters["failovers"] += 1
        return self._pick_slot()

    def call(self, slot: int, method: str, *args: Any) -> Any:
        """``method(*args)`` on the actor of ``slot``, waited for."""
        return ray.get(getattr(self._actors[slot], method).remote(*args))

    def call_live(self, slot: int, method: str, *args: Any) -> tuple[int, Any]:
        """``call``, waiting while Ray restarts the actor and moving to another live actor once it is out of
        restarts: the slot that answered and the result. ``EnvLostError`` and the env's own errors propagate."""
        deadline = time.monotonic() + self.rebuild_timeout_s
        while True:
            try:
                return slot, self.call(slot, method, *args)
            except ActorDiedError:
                slot = self.failover(slot)
            except RayActorError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray env actor {slot} did not come back within rebuild_timeout_s="
                                       f"{self.rebuild_timeout_s} s; read its logs (ray logs)") from exc
                time.sleep(0.2)

    def submit(self, slot: int, method: str, *args: Any) -> ray.ObjectRef:
        """``method(*args)`` on the actor of ``slot``, not waited for."""
        return getattr(self._actors[slot], method).remote(*args)

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    # ------------------------------------------------------------------------------------------ lifetime
    def actor_pids(self) -> list[int]:
        """The current process id of each live actor (it changes when Ray restarts one)."""
        return [self.call(i, "ping") for i in range(self.num_workers) if i not in self._dead]

    def kill_actor(self, slot: int, *, restart: bool = True) -> None:
        """Kill the actor of ``slot`` as a crash would (for tests and fault drills); Ray restarts it if allowed."""
        ray.kill(self._actors[slot], no_restart=not restart)

    def _release_owner(self) -> None:
        with self._lock:
            self._owners -= 1
            last = self._owners == 0
        if last:
            self.close()

    def close(self) -> None:
        """Close every env and stop the actors; idempotent."""
        if self._closed:
            return
        self._closed = True
        for i, actor in enumerate(self._actors):
            if i in self._dead:
                continue
            with contextlib.suppress(RayActorError, GetTimeoutError):  # a dead actor's envs went with it
                ray.get(actor.close_all.remote(), timeout=30)
            ray.kill(actor, no_restart=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RayEnvPool is closed (all its envs were closed); build a new one")


class RayEnv(gym.Env[str, str]):
    """The local proxy of an env held by a pool actor. Same contract as a local env; a lost actor becomes a
    ``backend_unavailable`` observation, and the env is rebuilt by replay before its next call."""

    def __init__(self, pool: RayEnvPool, slot: int, handle: int, described: dict[str, Any]) -> None:
        self._pool = pool
        self._slot = slot
        self._handle = handle
        self._described = described
        self.stop_strings: tuple[str, ...] = tuple(described["stop_strings"])
        if described["observation_space"] is not None:
            self.observation_space = described["observation_space"]
            self.action_space = described["action_space"]
        self.metadata = described["metadata"]
        self.render_mode = described["render_mode"]
        self._reset_args: dict[str, Any] | None = None  # how the episode began, for a rebuild
        self._actions: list[str] = []  # the actions stepped since, in order
        self._state = "live"  # live | lost (its actor died; rebuild before use) | broken (cannot be rebuilt)
        self._owner = False

    @property
    def worker_counters(self) -> dict[str, int]:
        """The pool's cumulative lost steps, rebuilds and failovers (the trainer logs them as ``envs/*``)."""
        return dict(self._pool.counters)

    # ------------------------------------------------------------------------------------------ contract
    @property
    def step_concurrency(self) -> int:
        """How many steps the pool runs at once (``TreeRollout`` sizes its env threads to it)."""
        return self._pool.step_concurrency

    @property
    def tasks(self) -> Sequence[TaskRow]:
        if self._pool._tasks is None:
            self._pool._tasks = tuple(self._retrying("tasks"))
        return self._pool._tasks

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self._check_open()
        self._slot, (obs, info) = self._pool.call_live(self._slot, "reset", self._handle, seed, options)
        pinned = dict(options or {})
        if "task_id" in info:  # a rebuild draws the same row even when this reset drew it from a seed or cursor
            pinned["task_id"] = info["task_id"]
        self._reset_args = {"seed": seed, "options": pinned}
        self._actions = []
        self._state = "live"
        return obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        self._check_open()
        if self._state == "lost":
            self._rebuild()
        if self._state == "broken":
            return self._unavailable(truncated=True)
        try:
            try:
                result = self._pool.call(self._slot, "step", self._handle, action)
            except EnvLostError:  # the actor restarted while this env was idle: rebuild it, then step
                self._rebuild()
                if self._state == "broken":
                    return self._unavailable(truncated=True)
                result = self._pool.call(self._slot, "step", self._handle, action)
        except RayActorError:
            self._state = "lost"
            self._pool.count("lost_steps")
            return self._unavailable(truncated=False)
        self._actions.append(action)
        return result

    def end_episode(self, reason: str) -> tuple[float, dict[str, float]]:
        """End the episode from outside: the reward after the actor-side reward wrappers (see EnvWorker)."""
        self._check_open()
        if self._state == "broken":
            self._state = "ended"
            return 0.0, {}
        return self._retrying("end_episode", reason)

    def clone(self) -> RayEnv:
        """An independent env in the same state, made on this env's actor."""
        self._check_open()
        handle = self._pool._new_handle()
        self._retrying("clone", handle)
        twin = RayEnv(self._pool, self._slot, handle, self._described)
        twin._reset_args = self._reset_args
        twin._actions = list(self._actions)
        if self._state == "broken":
            twin._state = "broken"
        return twin

    def render(self) -> Any:
        return self._retrying("render")

    def close(self) -> None:
        if self._state == "closed":
            return
        was_live = self._state in ("live", "broken", "ended")
        self._state = "closed"
        if was_live and not self._pool._closed:
            self._pool.submit(self._slot, "close", self._handle)  # lost envs went with their actor
        if self._owner:
            self._pool._release_owner()

    # ------------------------------------------------------------------------------------------ failures
    def _retrying(self, method: str, *args: Any) -> Any:
        """``method(handle, *args)`` on this env's actor; an env lost with its actor is rebuilt first."""
        while True:
            if self._state == "lost":
                self._rebuild()
            try:
                self._slot, result = self._pool.call_live(self._slot, method, self._handle, *args)
                return result
            except EnvLostError:
                self._state = "lost"

    def _rebuild(self) -> None:
        """Bring this env back on a live actor: reset as its episode began, replay its actions."""
        self._slot, ok = self._pool.call_live(self._slot, "rebuild", self._handle, self._reset_args, self._actions)
        self._pool.count("rebuilds")
        self._state = "live" if ok else "broken"

    def _unavailable(self, *, truncated: bool) -> tuple[str, float, bool, bool, dict]:
        """The observation of a step whose actor died: ``backend_unavailable``, in the env's own result format."""
        obs = make_parser(self._described["action_format"], {}).format_result("", UNAVAILABLE_TEXT)
        info: dict[str, Any] = {"tool_name": None, "tool_args": None, "tool_status": "backend_unavailable",
                                "new_messages": [{"role": "user", "content": obs}], "reward_components": {}}
        if truncated:
            info["truncation_reason"] = LOST_REASON
            self._state = "ended"
        return obs, 0.0, False, truncated, info

    def _check_open(self) -> None:
        if self._state == "closed":
            raise RuntimeError("this env is closed; make a new one from the pool")

    def __repr__(self) -> str:
        return f"RayEnv(actor={self._slot}, handle={self._handle}, state={self._state})"


def _init_ray(address: str) -> None:
    """Connect to Ray as ``address`` says, unless this process already did (then that Ray is used)."""
    if address not in ("local", "auto") and not address.startswith("ray://"):
        raise ValueError(f"env.workers.address must be local, auto or ray://host:port, got {address!r}")
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    if address == "local":  # a new Ray on this machine, even where `ray start` left one running
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
