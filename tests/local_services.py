"""Test helpers for local services: a free port, the python sandbox probe, the vLLM interpreter and its OpenAI
server on 127.0.0.1 (started once, stopped with its engine process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_SKIP = "no interpreter with vLLM: create .venv-vllm (AEPO_SETUP_VLLM=1 bash scripts/setup.sh) or set AEPO_VLLM_PYTHON"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_python_sandbox() -> None:
    """Skip the test when the env's python sandbox cannot run code on this machine."""
    import gymnasium as gym

    import aepo_envs  # noqa: F401

    env = gym.make("AEPO/CalcQA-v0", world_kwargs={"n_questions": 1})
    try:
        out = env.unwrapped.tools["python"]({"code": "print(1)"})
    finally:
        env.close()
    if out.text != "1":
        pytest.skip(f"the python sandbox is unavailable here: {out.text[:200]}")


def vllm_python(modules: Sequence[str] = ("vllm",)) -> str | None:
    """An interpreter that has ``modules``: $AEPO_VLLM_PYTHON, the repository's .venv-vllm, or this one."""
    probe = f"import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in {list(modules)!r}))"
    for candidate in (os.environ.get("AEPO_VLLM_PYTHON"), str(REPO / ".venv-vllm" / "bin" / "python"), sys.executable):
        if candidate and Path(candidate).is_file() and subprocess.run(
                [candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


@contextmanager
def vllm_openai_server(python: str, model: Path, log_path: Path, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """vLLM's OpenAI server on ``model`` (CPU, fp32, eager, served as "smollm"); yields its base URL (no /v1)."""
    port = free_port()
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
           "smollm", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--enforce-eager", *extra_args]
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:  # its own process group: the API server spawns an engine-core process
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        start, deadline = time.monotonic(), time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the vLLM server was not up after 600 s:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(1.0)
        print(f"vLLM OpenAI server up in {time.monotonic() - start:.0f} s")
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
