"""RemoteEnv: a ``gym.Env[str, str]`` whose env lives on an ``aepo-envs serve`` (OpenEnv) server.

It speaks OpenEnv's WebSocket protocol (``/ws``: reset, step, close) plus the server's extension messages
(describe, end_episode, clone), so the whole env contract works remotely: ``clone_env`` opens a new session on a
server-side copy, ``env_tasks``/``env_stop_strings`` come from the server, and our rollout and trainer use it
unchanged. Every wait has a timeout; a lost server is a ``RemoteEnvError`` saying so, never a hang.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gymnasium as gym

from aepo_envs.spaces import UnicodeText
from aepo_envs.tasks.base import TaskRow

__all__ = ["RemoteEnv", "RemoteEnvError", "SessionLost", "connect"]

# Keys the server's observation declares; the rest of a step's info arrives in its ``info`` field.
_INFO_FIELDS = ("messages", "new_messages", "tools", "stop_strings", "task_id", "tool_status", "reward_components")


class RemoteEnvError(RuntimeError):
    """The server refused a request, went away, or did not answer in time."""


class SessionLost(RemoteEnvError):
    """The server closed this session (idle timeout, restart, crash): its env and episode are gone."""


def ws_url(url: str) -> str:
    """``http(s)://host:port[/ws]`` or ``ws(s)://...`` -> the ``ws(s)://host:port/ws`` endpoint."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"url must look like http://HOST:PORT or ws://HOST:PORT/ws, got {url!r}")
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, path if path.endswith("/ws") else path + "/ws", "", ""))


class RemoteEnv(gym.Env[str, str]):
    """One session on an ``aepo-envs serve`` server; ``reset``/``step`` return what the local env would.

    ``timeout_s`` bounds every answer (a python tool call runs within it: keep it above the tool's timeout);
    ``connect_timeout_s`` bounds opening a session. After the server drops a session (restart, idle timeout),
    the next ``reset`` opens a new one; a ``step`` in the lost episode raises ``RemoteEnvError``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        url: str,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        render_mode: str | None = None,
        _clone_token: str | None = None,
    ) -> None:
        try:
            from websockets.sync.client import connect as ws_connect
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("RemoteEnv needs the websockets package: pip install 'websockets>=17'") from exc
        self._ws_connect = ws_connect
        self.url = ws_url(url)
        self.timeout_s, self.connect_timeout_s = float(timeout_s), float(connect_timeout_s)
        self.render_mode = render_mode
        self._ws: Any = None
        self._in_episode = False
        self._transcript: list[dict[str, str]] = []
        self._task_id: str | None = None
        self._open(_clone_token)
        desc = self._request({"type": "describe"}, "describe")
        self._describe(desc)

    # ------------------------------------------------------------------------------------------- wire
    def _open(self, clone_token: str | None = None) -> None:
        url = self.url + (f"?clone={clone_token}" if clone_token else "")
        try:
            self._ws = self._ws_connect(url, open_timeout=self.connect_timeout_s, close_timeout=2,
                                        max_size=64 * 2**20, ping_interval=20, ping_timeout=20, legacy=True)
        except (OSError, TimeoutError) as exc:
            raise RemoteEnvError(f"cannot reach the env server at {self.url}: {exc}; is `aepo-envs serve` "
                                 "running there?") from exc
        except Exception as exc:  # a handshake refused by the server (HTTP error status, bad path)
            raise RemoteEnvError(f"the env server at {self.url} refused the WebSocket handshake: {exc}") from exc

    def _request(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        """Send ``message``; the ``data`` of the ``expect``-typed answer, or a ``RemoteEnvError``."""
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            self._open()
        try:
            self._ws.send(json.dumps(message))
            raw = self._ws.recv(timeout=self.timeout_s)
        except TimeoutError as exc:
            self._drop()
            raise RemoteEnvError(f"the env server at {self.url} did not answer {message['type']!r} within "
                                 f"{self.timeout_s:g}s; the session was dropped") from exc
        except ConnectionClosed as exc:
            self._drop()
            why = f"{exc.rcvd.code} {exc.rcvd.reason}".strip() if exc.rcvd else "no close frame: the server went away"
            raise SessionLost(f"the connection to {self.url} was lost ({why}); its server-side env is gone, "
                                 "reset() to start a new episode on a new session") from exc
        except OSError as exc:
            self._drop()
            raise RemoteEnvError(f"the connection to {self.url} failed: {exc}") from exc
        reply = json.loads(raw)
        if reply.get("type") == "error":
            data = reply.get("data", {})
            raise RemoteEnvError(f"{self.url}: {data.get('message', 'error')} (code: {data.get('code', '?')})")
        if reply.get("type") != expect:
            raise RemoteEnvError(f"{self.url} answered {reply.get('type')!r} to {message['type']!r}")
        return reply.get("data", {})

    def _drop(self) -> None:
        ws, self._ws, self._in_episode = self._ws, None, False
        if ws is not None:
            with contextlib.suppress(Exception):  # best effort: the server may be gone
                ws.close()

    def _describe(self, desc: dict[str, Any]) -> None:
        self.env_id = desc["env_id"]
        self._stop_strings = tuple(desc["stop_strings"])
        self._tasks = tuple(
            TaskRow(task_id=t["task_id"], question=t["question"], answers=tuple(t["answers"]), meta=t["meta"])
            for t in desc["tasks"]
        )
        self._task_by_id = {row.task_id: row for row in self._tasks}
        self.action_space = UnicodeText(int(desc["max_action_chars"]))
        self.observation_space = UnicodeText(int(desc["max_observation_chars"]))

    # ------------------------------------------------------------------------------------------- contract
    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Strings an engine should stop on (the server env's)."""
        return self._stop_strings

    @property
    def tasks(self) -> Sequence[TaskRow]:
        """The server env's task rows."""
        return self._tasks

    @property
    def current_task(self) -> TaskRow | None:
        """The task of the current episode (scripted agents and oracle demos read it)."""
        return self._task_by_id.get(self._task_id) if self._task_id is not None else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        message = {"type": "reset", "data": {"seed": seed, "options": options}}
        try:
            data = self._request(message, "observation")
        except SessionLost:  # the server closed the old session (idle timeout, restart): a reset loses nothing
            data = self._request(message, "observation")
        obs = data["observation"]
        info = _info(obs)
        self._task_id = info.get("task_id")
        self._in_episode = True
        self._transcript = list(info.get("messages", []))
        return obs["text"], info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(f"action must be a str (the model's text), got {type(action).__name__}")
        if not self._in_episode and self._ws is None:
            raise RemoteEnvError(f"no episode in progress on {self.url} (the session was lost); call reset()")
        data = self._request({"type": "step", "data": {"text": action}}, "observation")
        obs = data["observation"]
        info = _info(obs)
        self._transcript.append({"role": "assistant", "content": action})
        self._transcript.extend(info.get("new_messages", []))
        return obs["text"], float(data.get("reward") or 0.0), bool(obs["terminated"]), bool(obs["truncated"]), info

    def end_episode(self, reason: str) -> tuple[float, dict[str, float]]:
        """End the episode from outside; the server env's raw terminal reward and its components."""
        data = self._request({"type": "end_episode", "data": {"reason": reason}}, "end_episode")
        return float(data["reward"]), {k: float(v) for k, v in data["components"].items()}

    def clone(self) -> RemoteEnv:
        """An independent env in the same state: a new session on a server-side copy of this one."""
        token = self._request({"type": "clone"}, "clone")["token"]
        new = RemoteEnv(self.url, self.timeout_s, self.connect_timeout_s, self.render_mode, _clone_token=token)
        new._in_episode, new._task_id = self._in_episode, self._task_id
        new._transcript = [dict(m) for m in self._transcript]
        return new

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{m['role']}]\n{m['content']}" for m in self._transcript) + "\n"

    def close(self) -> None:
        """End the session (the server closes its env); idempotent."""
        ws, self._ws, self._in_episode = self._ws, None, False
        if ws is not None:
            with contextlib.suppress(Exception):  # best effort: the server may be gone
                ws.send(json.dumps({"type": "close"}))
                ws.close()
        super().close()


def _info(obs: dict[str, Any]) -> dict[str, Any]:
    """The local env's info dict, rebuilt from the observation's declared fields and its ``info``."""
    info = {k: obs[k] for k in _INFO_FIELDS if obs.get(k) is not None}
    info.update(obs.get("info") or {})
    return info


def connect(url: str, **kwargs: Any) -> gym.Env:
    """``gym.make("AEPO/Remote-v0", url=url, **kwargs)``: a session on the env served at ``url``."""
    return gym.make("AEPO/Remote-v0", url=url, **kwargs)
