"""Serve any registered env over the OpenEnv protocol, on the ``openenv`` package's own server.

One WebSocket ``/ws`` connection is one session with its own env (``gym.make(env_id, **env_kwargs)``), as
OpenEnv defines it; HTTP ``/reset`` and ``/step`` are OpenEnv's stateless calls; ``/health``, ``/schema`` and
``/metadata`` are OpenEnv's. The action is ``{"text": <the model's whole turn>}``; the observation declares what
the env's ``info`` carries (OpenEnv never sends ``Observation.metadata`` to clients).

Extension messages on ``/ws`` (answered on the same socket; OpenEnv clients never send them):

- ``{"type": "describe"}`` -> ``{"type": "describe", "data": {env_id, stop_strings, tasks, max_action_chars,
  max_observation_chars}}``: what the remote env client needs before its first reset.
- ``{"type": "end_episode", "data": {"reason": str}}`` -> ``{"type": "end_episode", "data": {reward,
  components}}``: the raw terminal reward of an episode ended from outside (``aepo_envs.end_episode``).
- ``{"type": "clone"}`` -> ``{"type": "clone", "data": {"token", "expires_in_s"}}``: an independent copy of this
  session's env in its current state; open ``/ws?clone=<token>`` within ``expires_in_s`` to play it as a new
  session (tree rollouts branch remote envs this way). An unclaimed copy is closed when it expires.

A session with no message for ``idle_timeout_s`` is closed (WebSocket close code 1001) together with its env,
sandbox processes and world servers, so a client that vanishes leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import gymnasium as gym
from fastapi import FastAPI
from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server.exceptions import SessionCapacityError
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field

import aepo_envs
from aepo_envs.contract import clone_env, end_episode, env_stop_strings, env_tasks

__all__ = [
    "AepoEnvClient", "AepoEnvironment", "AepoObservation", "AepoState", "TextAction", "app_from_environ", "build_app",
    "main", "serve",
]

# The keys of a ToolUseEnv info dict that the observation declares as fields; every other key goes to ``info``.
_DECLARED_INFO = ("messages", "new_messages", "tools", "stop_strings", "task_id", "tool_status", "reward_components")
EXTENSION_TYPES = ("describe", "end_episode", "clone")


class TextAction(Action):
    """The model's whole turn, as the env's ``step(text)`` takes it."""

    text: str = Field(description="The model's turn (tool call or final answer), stop string included")


class AepoObservation(Observation):
    """An env's text and ``info`` dict; ``done`` is ``terminated or truncated``, ``reward`` the step reward."""

    text: str = Field(default="", description="reset: the rendered prompt; step: only the new env text")
    terminated: bool = Field(default=False, description="The episode ended with a final answer")
    truncated: bool = Field(default=False, description="The episode ended on a turn, tool or context budget")
    messages: list[dict[str, str]] | None = Field(default=None, description="reset: the chat (system, user)")
    new_messages: list[dict[str, str]] | None = Field(default=None, description="step: messages the env added")
    tools: list[dict[str, Any]] | None = Field(default=None, description="reset: OpenAI-style tool schemas")
    stop_strings: list[str] | None = Field(default=None, description="reset: strings an engine stops on")
    task_id: str | None = Field(default=None, description="reset: the task of this episode")
    tool_status: str | None = Field(
        default=None, description="step: ok/parse_error/tool_error/timeout/budget_exceeded/backend_unavailable"
    )
    reward_components: dict[str, float] | None = Field(default=None, description="step: the parts of the reward")
    info: dict[str, Any] = Field(
        default_factory=dict, description="Every other key of the env's info dict (turn, tool_name, ...)"
    )


class AepoState(State):
    """The session's env id, current task and whether its episode is over."""

    env_id: str = ""
    task_id: str | None = None
    done: bool = True


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (anything else becomes its ``str``)."""
    return json.loads(json.dumps(value, default=str))


def _observation(
    text: str, reward: float | None, terminated: bool, truncated: bool, info: Mapping[str, Any]
) -> AepoObservation:
    declared = {k: _json_safe(info[k]) for k in _DECLARED_INFO if k in info}
    rest = {k: v for k, v in info.items() if k not in _DECLARED_INFO}
    return AepoObservation(
        text=text, reward=reward, done=terminated or truncated, terminated=terminated, truncated=truncated,
        info=_json_safe(rest), **declared,
    )


class AepoEnvironment(Environment[TextAction, AepoObservation, AepoState]):
    """One session's env: ``gym.make(env_id, **env_kwargs)``, built on first use (``/metadata`` and ``/state``
    build an instance per request, which must stay cheap)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self._env: Any = None
        self._state = AepoState(env_id=env_id)

    @property
    def env(self) -> Any:
        """The gym env (made on first access)."""
        if self._env is None:
            # No passive checker: after a first reset that raised (a bad task id from a client), gymnasium's
            # checker fails every later step of the session with an unrelated TypeError.
            self._env = gym.make(self.env_id, disable_env_checker=True, **self.env_kwargs)
        return self._env

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        index: int | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> AepoObservation:
        """A new episode: the task by ``task_id`` > ``index`` > ``seed`` (the env's own rule)."""
        if kwargs:
            raise TypeError(f"unknown reset fields {sorted(kwargs)}; use seed, episode_id, task_id, index, options")
        opts = dict(options or {})
        if task_id is not None:
            opts["task_id"] = task_id
        if index is not None:
            opts["index"] = index
        prompt, info = self.env.reset(seed=seed, options=opts or None)
        self._state = AepoState(env_id=self.env_id, episode_id=episode_id, task_id=info.get("task_id"), done=False)
        return _observation(prompt, None, False, False, info)

    def step(self, action: TextAction, timeout_s: float | None = None, **kwargs: Any) -> AepoObservation:
        """The env's ``step(action.text)``; a finished episode or an un-reset env is an error frame."""
        if self._env is None:
            raise RuntimeError("step before reset: send a reset message first")
        obs, reward, terminated, truncated, info = self._env.step(action.text)
        self._state.step_count += 1
        self._state.done = bool(terminated or truncated)
        return _observation(obs, float(reward), bool(terminated), bool(truncated), info)

    @property
    def state(self) -> AepoState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        spec = gym.spec(self.env_id)
        base = (spec.kwargs or {}).get("base_config", {})
        tools = ", ".join(self.env_kwargs.get("tools", base.get("tools", []))) or "none"
        return EnvironmentMetadata(
            name=self.env_id,
            description=f"aepo_envs {self.env_id}: multi-turn LLM tool use (tools: {tools}); action {{'text': turn}}",
            version=aepo_envs.__version__,
            author="aepo",
        )

    def describe(self) -> dict[str, Any]:
        """What a remote client needs before its first reset: stop strings, task rows, text limits."""
        env = self.env
        rows = [
            {"task_id": r.task_id, "question": r.question, "answers": list(r.answers), "meta": r.meta}
            for r in env_tasks(env)
        ]
        return _json_safe({
            "env_id": self.env_id,
            "stop_strings": list(env_stop_strings(env)),
            "tasks": rows,
            "max_action_chars": env.action_space.max_length,
            "max_observation_chars": env.observation_space.max_length,
        })

    def end_episode(self, reason: str) -> dict[str, Any]:
        reward, components = end_episode(self.env, reason)
        self._state.done = True
        return {"reward": reward, "components": components}

    def clone_state(self) -> tuple[Any, AepoState]:
        """An independent copy of the gym env (wrappers included) and of the session state."""
        if self._env is None:
            raise RuntimeError("clone before reset: there is no episode to branch")
        return clone_env(self._env), self._state.model_copy(deep=True)

    def adopt(self, env: Any, state: AepoState) -> None:
        """Play ``env`` (a clone) from now on; the fresh env this session would have made is never built."""
        self._env, self._state = env, state

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


class AepoEnvClient(EnvClient[TextAction, AepoObservation, AepoState]):
    """OpenEnv's own client, typed for these servers: ``await AepoEnvClient(base_url=URL).reset(task_id=...)``,
    ``.step(TextAction(text=...))``; ``.sync()`` for blocking calls."""

    def _step_payload(self, action: TextAction) -> dict[str, Any]:
        return {"text": action.text}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[AepoObservation]:
        obs = AepoObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                              done=payload.get("done", False))
        return StepResult(observation=obs, reward=payload.get("reward"), done=bool(payload.get("done", False)))

    def _parse_state(self, payload: dict[str, Any]) -> AepoState:
        return AepoState(**payload)


@dataclass
class _Connection:
    """Per-WebSocket bookkeeping the extension layer and the session factory share (a contextvar)."""

    clone_token: str | None = None
    session_id: str | None = None
    env: AepoEnvironment | None = None
    idled_out: bool = False


_CONNECTION: contextvars.ContextVar[_Connection | None] = contextvars.ContextVar("aepo_openenv_conn", default=None)


@dataclass
class _PendingClones:
    """Cloned envs waiting for their ``/ws?clone=`` connection; each is closed if unclaimed at its deadline."""

    ttl_s: float
    items: MutableMapping[str, tuple[Any, AepoState, asyncio.TimerHandle]] = field(default_factory=dict)
    _expiring: set[asyncio.Task[None]] = field(default_factory=set)  # strong references until they finish

    def add(self, env: Any, state: AepoState) -> str:
        token = secrets.token_urlsafe(16)
        loop = asyncio.get_running_loop()

        def expire() -> None:
            task = loop.create_task(self._expire(token))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

        self.items[token] = (env, state, loop.call_later(self.ttl_s, expire))
        return token

    def claim(self, token: str) -> tuple[Any, AepoState]:
        if token not in self.items:
            raise KeyError(
                f"unknown or expired clone token {token!r}: send {{'type': 'clone'}} again and connect within "
                f"{self.ttl_s:g}s"
            )
        env, state, handle = self.items.pop(token)
        handle.cancel()
        return env, state

    async def _expire(self, token: str) -> None:
        item = self.items.pop(token, None)
        if item is not None:
            await asyncio.to_thread(item[0].close)

    async def close_all(self) -> None:
        for token in list(self.items):
            env, _, handle = self.items.pop(token)
            handle.cancel()
            await asyncio.to_thread(env.close)


class _AepoHTTPEnvServer(HTTPEnvServer):
    """OpenEnv's server; a session opened with ``?clone=TOKEN`` plays that clone, and the capacity error says
    how to raise the limit."""

    def __init__(self, *args: Any, pending: _PendingClones, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = pending

    async def _create_session(self) -> tuple[str, Environment]:
        conn = _CONNECTION.get()
        clone = self.pending.claim(conn.clone_token) if conn is not None and conn.clone_token else None
        try:
            session_id, env = await super()._create_session()
        except SessionCapacityError as exc:
            if clone is not None:
                await asyncio.to_thread(clone[0].close)
            raise SessionCapacityError(
                exc.active_sessions, exc.max_sessions,
                f"server at capacity: {exc.active_sessions}/{exc.max_sessions} sessions active; close a session "
                "or restart the server with a larger --max-sessions",
            ) from exc
        except BaseException:
            if clone is not None:
                await asyncio.to_thread(clone[0].close)
            raise
        assert isinstance(env, AepoEnvironment)
        if clone is not None:
            env.adopt(*clone)
        if conn is not None:
            conn.session_id, conn.env = session_id, env
        return session_id, env

    async def run_in_session(self, session_id: str, fn: Callable[[], Any]) -> Any:
        """``fn`` in the session's own executor thread (where its env was made and steps run)."""
        executor = self._session_executors.get(session_id, self._executor)
        self._update_session_activity(session_id)
        return await asyncio.get_running_loop().run_in_executor(executor, fn)


def _error(message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "data": {"message": message, "code": code}}


class _Extensions:
    """ASGI layer over ``/ws``: answers the extension messages, passes everything else to OpenEnv, and turns
    ``idle_timeout_s`` without a message into a disconnect (OpenEnv then closes the session's env)."""

    def __init__(self, app: Any, server: _AepoHTTPEnvServer, idle_timeout_s: float | None) -> None:
        self.app, self.server, self.idle_timeout_s = app, server, idle_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "websocket" or scope["path"] != "/ws":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        conn = _Connection(clone_token=(query.get("clone") or [None])[0])
        reset_token = _CONNECTION.set(conn)

        async def receive_wrapped() -> dict[str, Any]:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), self.idle_timeout_s)
                except TimeoutError:
                    conn.idled_out = True
                    return {"type": "websocket.disconnect", "code": 1001}
                if message["type"] != "websocket.receive" or conn.env is None:
                    return message
                reply = await self._answer(conn, message.get("text"))
                if reply is None:
                    return message
                await send({"type": "websocket.send", "text": json.dumps(reply)})

        async def send_wrapped(message: dict[str, Any]) -> None:
            if conn.idled_out and message["type"] == "websocket.close":
                message = {"type": "websocket.close", "code": 1001,
                           "reason": f"idle for {self.idle_timeout_s:g}s; the session and its env were closed"}
            await send(message)

        try:
            await self.app(scope, receive_wrapped, send_wrapped)
        finally:
            _CONNECTION.reset(reset_token)

    async def _answer(self, conn: _Connection, text: str | None) -> dict[str, Any] | None:
        """The reply to an extension message, or None for a message OpenEnv handles (malformed ones too)."""
        try:
            msg = json.loads(text) if text else None
        except json.JSONDecodeError:
            return None
        if not isinstance(msg, dict):  # OpenEnv would end the session on a non-object; answer it here instead
            return _error(f"a message must be a JSON object with a 'type', got {type(msg).__name__}",
                          "VALIDATION_ERROR")
        if msg.get("type") not in EXTENSION_TYPES:
            return None
        kind, data = msg["type"], msg.get("data", {})
        env, session_id = conn.env, conn.session_id
        assert env is not None and session_id is not None
        if not isinstance(data, dict) or (kind == "end_episode" and not isinstance(data.get("reason"), str)):
            return _error(f"{kind}: data must be an object" + (" with a str 'reason'" if kind == "end_episode"
                                                              else ""), "VALIDATION_ERROR")
        try:
            if kind == "describe":
                return {"type": kind, "data": await self.server.run_in_session(session_id, env.describe)}
            if kind == "end_episode":
                result = await self.server.run_in_session(session_id, lambda: env.end_episode(data["reason"]))
                return {"type": kind, "data": result}
            clone, state = await self.server.run_in_session(session_id, env.clone_state)
            token = self.server.pending.add(clone, state)
            return {"type": kind, "data": {"token": token, "expires_in_s": self.server.pending.ttl_s}}
        except Exception as exc:  # the env's own precise error, as an OpenEnv error frame
            return _error(f"{kind}: {type(exc).__name__}: {exc}", "EXECUTION_ERROR")


def build_app(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    max_sessions: int = 32,
    idle_timeout_s: float | None = 300.0,
) -> Any:
    """The ASGI app serving ``env_id``: OpenEnv's ``HTTPEnvServer`` routes (what ``create_app`` registers, built
    here so that a session can start from a clone) plus ``/sessions`` and the extension layer over ``/ws``."""
    if env_id not in gym.registry:
        raise KeyError(f"unknown env id {env_id!r}; `aepo-envs list` shows the registered ids")
    if idle_timeout_s is not None and idle_timeout_s <= 0:
        idle_timeout_s = None
    pending = _PendingClones(ttl_s=idle_timeout_s or 300.0)
    factory = functools.partial(AepoEnvironment, env_id, dict(env_kwargs or {}))
    app = FastAPI(title=f"aepo_envs {env_id} (OpenEnv)", version=aepo_envs.__version__)
    server = _AepoHTTPEnvServer(
        factory, TextAction, AepoObservation, max_concurrent_envs=max_sessions, env_name=env_id,
        state_cls=AepoState, pending=pending,
    )
    server.register_routes(app)

    @app.get("/sessions", tags=["Health"], summary="Active sessions, the limit and unclaimed clones")
    def sessions() -> dict[str, int]:
        return {"active": server.active_sessions, "max": server.max_concurrent_envs,
                "pending_clones": len(pending.items)}

    app.router.on_shutdown.append(pending.close_all)
    return _Extensions(app, server, idle_timeout_s)


def app_from_environ() -> Any:
    """The app for ``uvicorn aepo_envs.integrations.openenv:app`` (Dockerfile, openenv.yaml): env id and options
    from ``AEPO_ENV_ID``, ``AEPO_ENV_KWARGS`` (JSON), ``AEPO_MAX_SESSIONS``, ``AEPO_IDLE_TIMEOUT``."""
    import os

    env_id = os.environ.get("AEPO_ENV_ID")
    if not env_id:
        raise RuntimeError("set AEPO_ENV_ID (e.g. AEPO/CalcQA-v0) to serve an env with uvicorn, or run "
                           "`aepo-envs serve ID`")
    kwargs = json.loads(os.environ.get("AEPO_ENV_KWARGS") or "{}")
    if not isinstance(kwargs, dict):
        raise RuntimeError("AEPO_ENV_KWARGS must be a JSON object of gym.make kwargs")
    return build_app(env_id, kwargs, int(os.environ.get("AEPO_MAX_SESSIONS", "32")),
                     float(os.environ.get("AEPO_IDLE_TIMEOUT", "300")))


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first access, so importing this module needs no env id
        return app_from_environ()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def serve(app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=64 * 2**20)
    await uvicorn.Server(config).serve()


def main(argv: list[str]) -> int:
    """``aepo-envs serve ID [--host H --port N --max-sessions N --idle-timeout S --config YAML --set k=v]``."""
    import argparse
    from pathlib import Path

    import yaml

    from aepo_envs.envs.config import apply_overrides

    parser = argparse.ArgumentParser(prog="aepo-envs serve", description=__doc__.splitlines()[0])
    parser.add_argument("env_id", help="registered env id, e.g. AEPO/CalcQA-v0")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-sessions", type=int, default=32, help="concurrent WebSocket sessions (envs)")
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="seconds without a message before a session and its env are closed (0: never)")
    parser.add_argument("--config", type=Path, help="YAML mapping of env kwargs (gym.make keyword arguments)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an env kwarg (dotted keys nest, values are YAML), e.g. world_kwargs.seed=3")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {}
    if args.config is not None:
        loaded = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            parser.error(f"--config {args.config} must hold a YAML mapping of env kwargs")
        kwargs = loaded
    try:
        kwargs = apply_overrides(kwargs, args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if args.max_sessions < 1:
        parser.error("--max-sessions must be >= 1")
    app = build_app(args.env_id, kwargs, args.max_sessions, args.idle_timeout)
    print(f"aepo-envs serve: {args.env_id} on ws://{args.host}:{args.port}/ws", file=sys.stderr, flush=True)
    asyncio.run(serve(app, args.host, args.port))
    return 0
