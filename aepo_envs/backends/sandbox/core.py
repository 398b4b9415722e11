"""Sandboxes built on a launcher: cold runs (one fresh sandboxed interpreter per call) and sessions."""

from __future__ import annotations

import threading
import time
from typing import Any

from aepo_envs.backends.base import BackendUnavailable, ExecResult
from aepo_envs.backends.sandbox.interpreter import Interpreter, describe
from aepo_envs.backends.sandbox.launch import MAX_CODE_CHARS, Collected, Launcher, WorkerProcess
from aepo_envs.backends.sandbox.limits import SandboxLimits
from aepo_envs.backends.sandbox.pool import SparePool, on_spawner
from aepo_envs.backends.sandbox.session import PythonSession, WorkerSession


class SandboxBase:
    """Shared config and result formatting. Subclasses implement ``run_once`` and ``open_session``."""

    backend: str = ""
    not_isolated: tuple[str, ...] = ()

    def __init__(self, limits: SandboxLimits, print_last_expr: bool = True) -> None:
        if not isinstance(limits, SandboxLimits):
            raise TypeError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
        self.limits = limits
        self.print_last_expr = bool(print_last_expr)

    def timeout_for(self, timeout: float | None) -> float:
        if timeout is None:
            return float(self.limits.timeout_s)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return float(timeout)

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run ``code`` in a fresh sandboxed interpreter. Raises ``BackendUnavailable`` only if it cannot start."""
        if not isinstance(code, str):
            raise TypeError(f"Sandbox.run(code): code must be str, got {type(code).__name__}")
        return self.run_once(code, self.timeout_for(timeout))

    def run_once(self, code: str, timeout: float, replay: tuple[str, ...] = ()) -> ExecResult:
        raise NotImplementedError

    def open_session(self) -> PythonSession:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sandbox holds between runs (pre-started workers). Idempotent."""

    def make_result(self, col: Collected, exit_code: int, timed_out: bool, notes: list[str]) -> ExecResult:
        """Assemble an ExecResult: capped streams, truncation markers, and readable notes in stderr."""
        cap = self.limits.max_output_chars
        stdout, stderr = col.stdout, col.stderr
        if col.truncated:
            marker = f"\n... [output truncated to {cap} characters]"
            if len(stdout) >= cap or col.flooded:
                stdout += marker
            else:
                stderr += marker
        if notes:
            stderr = (stderr.rstrip("\n") + "\n" if stderr.strip() else "") + "\n".join(notes)
        return ExecResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=exit_code,
            timed_out=timed_out,
            truncated=col.truncated,
            backend=self.backend,
        )


class ProcessSandbox(SandboxBase):
    """A sandbox whose worker is a local process started by a launcher (bwrap, rlimit, unsafe).

    ``prestart`` workers per mode (cold run, session) are started ahead of need in a background thread, so a
    run does not wait for the sandbox to come up; each still serves exactly one run or one session.
    """

    def __init__(
        self,
        launcher: Launcher,
        limits: SandboxLimits,
        print_last_expr: bool = True,
        python: str | None = None,
        prestart: int = 1,
    ) -> None:
        super().__init__(limits, print_last_expr)
        self.launcher = launcher
        self.backend = launcher.label
        self.not_isolated = launcher.not_isolated
        self.python = python
        self._interp: Interpreter | None = None
        self._lock = threading.Lock()
        self._spares = SparePool(self._start_worker, prestart)

    def _start_worker(self, mode: str) -> WorkerProcess:
        return WorkerProcess(self.launcher, self.interpreter(), self.limits, mode)

    def worker(self, mode: str) -> WorkerProcess:
        """A fresh worker for one cold run (``once``) or one session (``serve``): a spare if one is waiting,
        else one started now on the long-lived spawner thread (so a caller's short-lived thread can end)."""
        return self._spares.take(mode) or on_spawner(lambda: self._start_worker(mode))

    def close(self) -> None:
        self._spares.close()

    def interpreter(self) -> Interpreter:
        with self._lock:
            if self._interp is None:
                self._interp = describe(self.python)
            return self._interp

    def run_once(self, code: str, timeout: float, replay: tuple[str, ...] = ()) -> ExecResult:
        if len(code) > MAX_CODE_CHARS:
            return ExecResult(
                "",
                f"Error: the code is {len(code)} characters; the limit is {MAX_CODE_CHARS}.",
                1,
                backend=self.backend,
            )
        start = time.monotonic()
        worker = self.worker("once")
        try:
            worker.send({"code": code, "print_last_expr": self.print_last_expr, "replay": list(replay)})
            worker.close_requests()
            col = worker.collect(start + timeout, until_reply=False)
            rc = None
            if not (col.deadline_hit or col.flooded):
                rc = worker.returncode(max(start + timeout - time.monotonic(), 0.05))
                col.deadline_hit = rc is None
        finally:
            worker.kill()
        if rc is not None and rc != 0 and col.stderr.startswith(f"{self.backend}: ") and not col.stdout:
            raise BackendUnavailable(
                col.stderr.strip()
            )  # the launcher itself failed (e.g. no user namespaces)
        notes: list[str] = []
        if col.deadline_hit:
            notes.append(
                f"TimeoutError: execution exceeded the {timeout:g} s time limit; the process and all "
                "its children were killed."
            )
        elif col.flooded:
            notes.append("Output limit exceeded: the process was killed.")
        exit_code = rc if rc is not None else -9
        return self.make_result(col, exit_code, timed_out=col.deadline_hit, notes=notes)

    def open_session(self) -> WorkerSession:
        """A stateful session; its interpreter runs inside this back-end's sandbox and starts on first use."""
        return WorkerSession(self)

    def describe(self) -> dict[str, Any]:
        """Back-end label and what it does not isolate (for logs and ``info``)."""
        return {"backend": self.backend, "not_isolated": list(self.not_isolated)}
