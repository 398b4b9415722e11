"""Stateful Python sessions: a persistent worker inside the sandbox, or replay for back-ends without one.

Cloning (for branched rollouts) REPLAYS the parent's completed cells in a fresh sandbox instead of forking
the worker: a fork would share the parent's sandbox (its /tmp, process budget and lifetime), so branches
could see each other's files. Replay gives each branch its own sandbox; the price is that replay costs
the cells' run time again (paid lazily, on the clone's first call) and that non-deterministic values
(unseeded random, time, network-free I/O races) may differ. Cells that timed out are not replayed.
"""

from __future__ import annotations

import abc
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aepo_envs.backends.base import BackendUnavailable, ExecResult
from aepo_envs.backends.sandbox.launch import Collected, WorkerProcess

if TYPE_CHECKING:
    from aepo_envs.backends.sandbox.core import ProcessSandbox, SandboxBase

GRACE_S = 1.0
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Cell:
    """One completed cell, kept so clones can replay it."""

    code: str
    timeout: float


class PythonSession(abc.ABC):
    """A persistent interpreter: variables survive between ``run`` calls. Never raises for user code."""

    backend: str = ""
    _closed: bool = False

    @abc.abstractmethod
    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run a cell. Raises ``BackendUnavailable`` only when the sandbox cannot start at all."""

    @abc.abstractmethod
    def restart(self) -> None:
        """Drop all state; the next call starts a fresh interpreter."""

    @abc.abstractmethod
    def clone(self) -> PythonSession:
        """An independent session with the same state (by replay; see the module docstring)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the interpreter. Idempotent."""

    def _refuse(self, code: object) -> ExecResult | None:
        """Reject a non-str cell (a programming error) and answer a closed session with a readable result."""
        if not isinstance(code, str):
            raise TypeError(f"PythonSession.run(code): code must be str, got {type(code).__name__}")
        if self._closed:
            return ExecResult("", "Error: this python session is closed.", 1, backend=self.backend)
        return None

    def __enter__(self) -> PythonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill(holder: list[WorkerProcess | None]) -> None:
    worker, holder[0] = holder[0], None
    if worker is not None:
        worker.kill()


class WorkerSession(PythonSession):
    """A session served by one long-lived worker inside the sandbox (JSON lines over pipes)."""

    def __init__(self, sandbox: ProcessSandbox, history: tuple[Cell, ...] = ()) -> None:
        self._sandbox = sandbox
        self.backend = sandbox.backend
        self._holder: list[WorkerProcess | None] = [None]
        self._history: list[Cell] = list(history)
        self._replay_pending = bool(history)
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill, self._holder)

    @property
    def started(self) -> bool:
        """Whether an interpreter is running now (sessions start lazily, on the first call)."""
        worker = self._holder[0]
        return worker is not None and worker.alive

    def _start(self) -> list[str]:
        worker = self._sandbox.worker("serve")
        ready = worker.wait_ready(time.monotonic() + STARTUP_TIMEOUT_S)
        if not (ready.reply and ready.reply.get("ready")):
            worker.kill()
            detail = (ready.stderr.strip() or ready.stdout.strip())[-800:] or "no output"
            raise BackendUnavailable(f"{self.backend}: the python session did not start: {detail}")
        self._holder[0] = worker
        notes: list[str] = []
        if self._replay_pending:
            self._replay_pending = False
            for i, cell in enumerate(list(self._history)):
                _, state, _ = self._exec(cell.code, cell.timeout)
                if state != "ok":
                    notes.append(
                        f"[note: replaying cell {i + 1} of the cloned session did not finish ({state}); "
                        "state from later cells may be missing]"
                    )
                    if self._holder[0] is None:
                        return notes
        return notes

    def _exec(self, code: str, timeout: float) -> tuple[Collected, str, int]:
        """Run one cell; returns output, state (ok|interrupted|killed|flooded|died) and the exit code."""
        worker = self._holder[0]
        assert worker is not None
        sent = worker.send(
            {"code": code, "timeout": timeout, "print_last_expr": self._sandbox.print_last_expr}
        )
        col = worker.collect(time.monotonic() + timeout + GRACE_S, until_reply=sent)
        if col.reply is not None:
            exit_code = int(col.reply.get("exit", 1)) if isinstance(col.reply.get("exit"), int) else 1
            return col, ("interrupted" if col.reply.get("timed_out") else "ok"), exit_code
        state = "flooded" if col.flooded else "killed" if col.deadline_hit else "died"
        rc = worker.returncode(0.5) if state == "died" else None
        _kill(self._holder)
        self._history.clear()
        return col, state, (rc if rc is not None else -9)

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        closed = self._refuse(code)
        if closed is not None:
            return closed
        timeout = self._sandbox.timeout_for(timeout)
        notes: list[str] = []
        if not self.started:
            if self._holder[0] is not None:
                _kill(self._holder)
            notes = self._start()
        col, state, exit_code = self._exec(code, timeout)
        if state == "ok":
            self._history.append(Cell(code, timeout))
        messages = {
            "interrupted": f"TimeoutError: the cell exceeded the {timeout:g} s time limit and was interrupted; "
            "the session state is kept (the cell may have run partly).",
            "killed": f"TimeoutError: the cell exceeded the {timeout:g} s time limit and did not stop; the "
            "interpreter was killed, all session state was lost, and a fresh one starts on the next call.",
            "flooded": "Output limit exceeded: the interpreter was killed and all session state was lost.",
            "died": f"The session's interpreter exited (code {exit_code}); all session state was lost and a "
            "fresh one starts on the next call.",
        }
        if state in messages:
            notes.append(messages[state])
        return self._sandbox.make_result(
            col, exit_code, timed_out=state in ("interrupted", "killed"), notes=notes
        )

    def restart(self) -> None:
        _kill(self._holder)
        self._history.clear()
        self._replay_pending = False
        self._closed = False

    def clone(self) -> WorkerSession:
        return WorkerSession(self._sandbox, tuple(self._history))

    def close(self) -> None:
        self._closed = True
        _kill(self._holder)


class ReplaySession(PythonSession):
    """State by re-execution: each call runs the earlier cells silently, then the new one, in a fresh sandbox.

    Used where no persistent worker exists (Docker). Costs grow with history; outputs are only the new cell's.
    """

    def __init__(self, sandbox: SandboxBase, history: tuple[Cell, ...] = ()) -> None:
        self._sandbox = sandbox
        self.backend = sandbox.backend
        self._history = list(history)
        self._closed = False

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        closed = self._refuse(code)
        if closed is not None:
            return closed
        timeout = self._sandbox.timeout_for(timeout)
        result = self._sandbox.run_once(code, timeout, replay=tuple(c.code for c in self._history))
        if not result.timed_out and result.exit_code == 0:
            self._history.append(Cell(code, timeout))
        return result

    def restart(self) -> None:
        self._history.clear()
        self._closed = False

    def clone(self) -> ReplaySession:
        return ReplaySession(self._sandbox, tuple(self._history))

    def close(self) -> None:
        self._closed = True
