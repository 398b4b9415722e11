"""Pre-started sandboxed workers: start-up (bwrap, namespaces, the interpreter) happens before a run needs it.

A spare is a worker that has started inside a fresh sandbox and waits on its request pipe; nothing ran in
it yet, so handing it one request keeps every run's isolation fresh. After a spare is taken, a background
thread starts its replacement. That thread lives as long as the process: bwrap's ``--die-with-parent``
(PR_SET_PDEATHSIG) fires when the *thread* that spawned the sandbox exits, so spares must not come from a
short-lived thread. Spares are per process: a forked child drops the ones it inherited (they belong to the
parent) and starts its own.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from aepo_envs.backends.sandbox.launch import WorkerProcess

MODES = ("once", "serve")
T = TypeVar("T")
_POOLS: weakref.WeakSet[SparePool] = weakref.WeakSet()
_spawner_lock = threading.Lock()
_spawner: tuple[threading.Thread, queue.SimpleQueue[Callable[[], None]]] | None = None


def _spawner_loop(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        jobs.get()()


def on_spawner(fn: Callable[[], T]) -> T:
    """Call ``fn`` on the spawner thread and return its result: a sandbox started there outlives the caller's
    thread (``--die-with-parent`` follows the spawning thread, not the process)."""
    if _spawner is not None and threading.current_thread() is _spawner[0]:
        return fn()
    future: Future[T] = Future()

    def job() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the caller, raised there
            future.set_exception(exc)

    _submit(job)
    return future.result()


def _submit(job: Callable[[], None]) -> None:
    """Run ``job`` on this process's one long-lived spawner thread (started on first use)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
            thread = threading.Thread(target=_spawner_loop, args=(jobs,), name="sandbox-spawner", daemon=True)
            thread.start()
            _spawner = (thread, jobs)
        _spawner[1].put(job)


def _after_fork_in_child() -> None:
    """The child has no spawner thread and does not own the parent's spares: start over (locks included, as a
    thread of the parent may have held one at the fork)."""
    global _spawner_lock, _spawner
    _spawner_lock = threading.Lock()
    _spawner = None
    for pool in list(_POOLS):
        pool._after_fork()


def _kill_all(spares: dict[str, list[WorkerProcess]]) -> None:
    for workers in spares.values():
        while workers:
            workers.pop().kill()


class SparePool:
    """Keeps up to ``size`` idle workers per mode; a mode's spares start after its first use."""

    def __init__(self, start: Callable[[str], WorkerProcess], size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"prestart must be an int >= 0 (0 disables pre-started sandboxes), got {size!r}")
        self._start = start
        self.size = size
        self._lock = threading.Lock()
        self._spares: dict[str, list[WorkerProcess]] = {mode: [] for mode in MODES}
        self._filling: set[str] = set()
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._spares)
        _POOLS.add(self)

    def take(self, mode: str) -> WorkerProcess | None:
        """A live spare for ``mode`` (or None), and a refill started in the background."""
        if self.size == 0:
            return None
        with self._lock:
            spare = None
            workers = self._spares[mode]
            while workers and spare is None:
                candidate = workers.pop(0)
                if candidate.alive:
                    spare = candidate
                else:
                    candidate.kill()
            self._refill_locked(mode)
        return spare

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for workers in self._spares.values():
            for worker in workers:
                worker.forget()
            workers.clear()
        self._filling.clear()

    def _refill_locked(self, mode: str) -> None:
        if self._closed or mode in self._filling or len(self._spares[mode]) >= self.size:
            return
        self._filling.add(mode)
        _submit(lambda: self._refill(mode))

    def _refill(self, mode: str) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed or len(self._spares[mode]) >= self.size:
                        return
                try:
                    worker = self._start(mode)
                except Exception:  # the next take() starts one in the foreground and reports the error
                    return
                with self._lock:
                    if self._closed:
                        worker.kill()
                        return
                    self._spares[mode].append(worker)
        finally:
            with self._lock:
                self._filling.discard(mode)

    def idle(self, mode: str) -> int:
        """How many spares of ``mode`` are waiting now."""
        with self._lock:
            return len(self._spares[mode])

    def close(self) -> None:
        """Kill the spares and start no more. Idempotent."""
        with self._lock:
            self._closed = True
        with contextlib.suppress(Exception):
            self._finalizer()


os.register_at_fork(after_in_child=_after_fork_in_child)
