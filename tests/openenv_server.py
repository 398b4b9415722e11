"""Start an ``aepo-envs serve`` (OpenEnv) server on 127.0.0.1 in a subprocess, for the OpenEnv and remote-env tests.

The server needs the ``openenv`` package, which pins ``mcp<2`` (through fastmcp) while the MCP server needs
``mcp>=2``: it lives in its own interpreter, ``$AEPO_OPENENV_PYTHON`` or the repository's ``.venv-openenv``.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_services import free_port

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def openenv_python() -> str | None:
    """An interpreter that has openenv and aepo_envs installed, or None."""
    candidates = [os.environ.get("AEPO_OPENENV_PYTHON"), str(REPO / ".venv-openenv" / "bin" / "python"), sys.executable]
    probe = "import importlib.util as u; assert u.find_spec('openenv.core') and u.find_spec('aepo_envs')"
    for candidate in candidates:
        if candidate and Path(candidate).exists() and subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


def require_openenv_python() -> str:
    python = openenv_python()
    if python is None:
        pytest.skip("no interpreter with openenv==0.10.0: set AEPO_OPENENV_PYTHON or build .venv-openenv "
                    "(python -m venv .venv-openenv && .venv-openenv/bin/pip install -e '.[envs,openenv]')")
    return python


@dataclass
class Server:
    """A running server: its URL, port and process."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def sessions(self) -> dict[str, int]:
        return self.get("/sessions")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_server(python: str, env_id: str, kwargs: dict[str, Any], *, max_sessions: int = 4,
                 idle_timeout: float = 60.0, port: int | None = None) -> Server:
    port = port or free_port()
    cmd = [python, "-m", "aepo_envs.cli", "serve", env_id, "--port", str(port), "--max-sessions", str(max_sessions),
           "--idle-timeout", str(idle_timeout)]
    cmd += [arg for key, value in kwargs.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(f"http://127.0.0.1:{port}", port, proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if server.get("/health")["status"] == "healthy":
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the server did not become healthy within 60 s")
        time.sleep(0.2)


@contextmanager
def served(python: str, env_id: str, kwargs: dict[str, Any], **options: Any) -> Iterator[Server]:
    server = start_server(python, env_id, kwargs, **options)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.terminate()
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def descendants(pid: int) -> list[int]:
    """Every live process under ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
