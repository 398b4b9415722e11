"""The ``python`` tool: run the model's code in a sandbox (stateful per episode by default), ARPO-style text out."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from aepo_envs.backends.base import BackendUnavailable, ExecResult
from aepo_envs.backends.sandbox import BACKENDS, PythonSession, SandboxBase, SandboxLimits, make_sandbox
from aepo_envs.tools.base import Tool, ToolResult, ToolStatus, register_tool

EMPTY_OUTPUT = "Tool(python) returned empty output."


class PythonTool(Tool):
    """Run Python in the configured sandbox; the sandbox and session start on the first call.

    Config: ``backend`` (auto|bwrap|rlimit|docker|unsafe), ``session`` (state kept across calls within an
    episode; ``reset()`` clears it, ``clone()`` copies it), ``timeout_s``, ``print_last_expr`` (ARPO: a bare
    final expression is printed), ``python`` (interpreter to sandbox), ``allow_unsafe``, ``image`` (docker),
    ``prestart`` (idle sandboxes kept started ahead of need; 0 disables), and ``SandboxLimits`` fields
    (``memory_mb``, ``cpu_s``, ``fsize_mb``, ``nofile``, ``nproc``, ``max_output_chars``, ``tmp_size_mb``).
    """

    name = "python"
    tag = "python"
    primary_arg = "code"
    description = "Run Python code and return what it prints. A bare expression on the last line is printed."
    parameters = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source code to execute."}},
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(
        self,
        backend: str = "auto",
        *,
        session: bool = True,
        timeout_s: float = 120.0,
        print_last_expr: bool = True,
        python: str | None = None,
        allow_unsafe: bool = False,
        image: str | None = None,
        prestart: int = 1,
        **limits: Any,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"PythonTool: unknown backend {backend!r}; choose one of {BACKENDS}")
        if backend == "unsafe" and not allow_unsafe:
            raise ValueError("PythonTool: backend='unsafe' needs allow_unsafe=True (trusted code only)")
        SandboxLimits.from_kwargs(timeout_s=timeout_s, **limits)  # fail fast on bad config
        self._config: dict[str, Any] = dict(
            backend=backend,
            session=bool(session),
            timeout_s=timeout_s,
            print_last_expr=print_last_expr,
            python=python,
            allow_unsafe=allow_unsafe,
            image=image,
            prestart=prestart,
            **limits,
        )
        self.use_session = bool(session)
        self._sandbox: SandboxBase | None = None
        self._session: PythonSession | None = None
        self._lock = threading.Lock()

    def _get_sandbox(self) -> SandboxBase:
        if self._sandbox is None:
            cfg = dict(self._config)
            cfg.pop("session")
            backend = cfg.pop("backend")
            self._sandbox = make_sandbox(backend, **cfg)
        return self._sandbox

    def _get_session(self) -> PythonSession:
        if self._session is None:
            self._session = self._get_sandbox().open_session()
        return self._session

    def call(self, args: Mapping[str, Any]) -> ToolResult:
        code = args["code"]
        with self._lock:
            try:
                result = self._get_session().run(code) if self.use_session else self._get_sandbox().run(code)
            except BackendUnavailable as exc:
                return ToolResult(
                    f"Error: Tool(python) is unavailable: {exc}",
                    ToolStatus.BACKEND_UNAVAILABLE,
                    {"backend": self._config["backend"]},
                )
        return format_result(result)

    def reset(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.restart()

    def clone(self) -> PythonTool:
        with self._lock:
            twin = PythonTool.__new__(PythonTool)
            twin._config = dict(self._config)
            twin.use_session = self.use_session
            twin._sandbox = self._sandbox
            twin._session = self._session.clone() if self._session is not None else None
            twin._lock = threading.Lock()
            return twin

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def format_result(result: ExecResult) -> ToolResult:
    """ARPO's rule: stdout (stripped) on success, else stderr, keeping both when both say something."""
    out, err = result.stdout.strip(), result.stderr.strip()
    if result.exit_code == 0 and not result.timed_out:
        text = out or err
    else:
        text = "\n".join(part for part in (out, err) if part)
    meta = {
        "backend": result.backend,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "truncated": result.truncated,
    }
    status = ToolStatus.TIMEOUT if result.timed_out else ToolStatus.OK
    return ToolResult(text or EMPTY_OUTPUT, status, meta)


register_tool("python", PythonTool)
