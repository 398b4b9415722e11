"""Start the worker under a launcher (bwrap, rlimit, unsafe) and pump its pipes with caps and deadlines."""

from __future__ import annotations

import binascii
import contextlib
import functools
import importlib.util
import json
import marshal
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aepo_envs.backends.base import BackendUnavailable
from aepo_envs.backends.sandbox.interpreter import Interpreter
from aepo_envs.backends.sandbox.limits import SandboxLimits

# Compiles the worker under a name that does not start with "<", so tracebacks can skip worker frames.
BOOTSTRAP = "import sys;exec(compile(sys.argv.pop(1),'aepo-sandbox-worker','exec'))"
# Same, from bytecode marshalled by the host: skips compiling the worker on every cold start.
BOOTSTRAP_MARSHAL = "import sys,marshal,binascii;exec(marshal.loads(binascii.a2b_base64(sys.argv.pop(1))))"
PYTHON_FLAGS = ("-I", "-S", "-B", "-X", "utf8")
NOBODY = 65534
MAX_CODE_CHARS = 1_000_000


@functools.cache
def worker_source() -> str:
    """Source of the in-sandbox worker, passed on the command line so no host file must be visible."""
    return (Path(__file__).with_name("_worker.py")).read_text(encoding="utf-8")


@functools.cache
def _worker_marshalled() -> str:
    code = compile(worker_source(), "aepo-sandbox-worker", "exec")
    return binascii.b2a_base64(marshal.dumps(code), newline=False).decode()


def worker_args(interp: Interpreter) -> list[str]:
    """``-c BOOTSTRAP PAYLOAD``: marshalled bytecode when the interpreter's magic number is ours, else source."""
    if interp.magic and interp.magic == importlib.util.MAGIC_NUMBER.hex():
        return ["-c", BOOTSTRAP_MARSHAL, _worker_marshalled()]
    return ["-c", BOOTSTRAP, worker_source()]


def base_env(home: str, extra_path: str = "") -> dict[str, str]:
    """The scrubbed environment every sandboxed process gets: nothing from the host's environment."""
    path = "/usr/local/bin:/usr/bin:/bin" + (f":{extra_path}" if extra_path else "")
    return {
        "PATH": path,
        "HOME": home,
        "TMPDIR": home,
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


@dataclass
class LaunchPlan:
    """How to start one worker: argv, environment, fds, optional uid switch and a post-spawn handshake."""

    argv: list[str]
    env: dict[str, str] | None = None
    cwd: str | None = None
    pass_fds: tuple[int, ...] = ()
    user: int | None = None
    group: int | None = None
    # Returns the pid of the sandbox's init (killed directly on timeout), or None.
    after_spawn: Callable[[subprocess.Popen[bytes]], int | None] | None = None
    close_after_spawn: tuple[int, ...] = ()
    cleanup: Callable[[], None] | None = None


class Launcher(Protocol):
    """Builds the command that runs the worker inside one kind of isolation."""

    label: str
    not_isolated: tuple[str, ...]

    def plan(
        self, interp: Interpreter, worker_cfg: dict[str, Any], limits: SandboxLimits, mode: str
    ) -> LaunchPlan:
        """Return the launch plan; ``worker_cfg`` still needs the sandbox-side fields the launcher owns."""
        ...


@dataclass
class Collected:
    """Output of one run: capped text, whether it was cut, and whether a flood forced a kill."""

    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    flooded: bool = False
    reply: dict[str, Any] | None = None
    deadline_hit: bool = False


@dataclass
class _Stream:
    cap_bytes: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap_bytes - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self, cap_chars: int) -> tuple[str, bool]:
        text = self.data.decode("utf-8", errors="replace")
        cut = self.dropped > 0 or len(text) > cap_chars
        return text[:cap_chars], cut


class WorkerProcess:
    """One running worker: its Popen, request pipe, optional reply pipe, and output pipes."""

    def __init__(self, launcher: Launcher, interp: Interpreter, limits: SandboxLimits, mode: str) -> None:
        self.mode = mode
        self.limits = limits
        req_r, self._req_w = os.pipe()
        rep_w = -1
        self._rep_r = -1
        if mode == "serve":
            self._rep_r, rep_w = os.pipe()
        cfg: dict[str, Any] = {
            "mode": mode,
            "req_fd": req_r,
            "rep_fd": rep_w if mode == "serve" else None,
            "sys_path": list(interp.sys_path),
            "limits": limits.for_worker(),
        }
        plan = launcher.plan(interp, cfg, limits, mode)
        self._cleanup = plan.cleanup
        fds = (req_r, *((rep_w,) if rep_w >= 0 else ()), *plan.pass_fds)
        try:
            self.proc = subprocess.Popen(
                plan.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                env=plan.env,
                cwd=plan.cwd,
                start_new_session=True,
                user=plan.user,
                group=plan.group,
                extra_groups=[] if plan.user is not None else None,
            )
        except OSError as exc:
            self._close_fds((req_r, rep_w, self._req_w, self._rep_r, *plan.close_after_spawn))
            self._run_cleanup()
            raise BackendUnavailable(f"{launcher.label}: cannot start {plan.argv[0]!r}: {exc}") from exc
        self._close_fds((req_r, rep_w, *plan.close_after_spawn))
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._out = self.proc.stdout.fileno()
        self._err = self.proc.stderr.fileno()
        self._rep_buf = bytearray()
        self._inner_pid: int | None = None
        if plan.after_spawn is not None:
            try:
                self._inner_pid = plan.after_spawn(self.proc)
            except Exception as exc:
                self.kill()
                raise BackendUnavailable(f"{launcher.label}: sandbox setup failed: {exc}") from exc

    @staticmethod
    def _close_fds(fds: tuple[int, ...]) -> None:
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _run_cleanup(self) -> None:
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            with contextlib.suppress(Exception):
                cleanup()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> bool:
        """Write one request line; False if the worker is gone."""
        data = (json.dumps(message) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._req_w, view)
                view = view[n:]
            return True
        except OSError:
            return False

    def close_requests(self) -> None:
        self._close_fds((self._req_w,))
        self._req_w = -1

    def collect(self, deadline: float, until_reply: bool) -> Collected:
        """Read stdout/stderr until EOF (once) or a reply line (serve), a deadline, or an output flood."""
        cap = self.limits.max_output_chars
        streams = {self._out: _Stream(cap * 4), self._err: _Stream(cap * 4)}
        flood_limit = max(64 * cap * 4, 16 * 1024 * 1024)
        total = 0
        open_fds = set(streams)
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        if until_reply:
            poller.register(self._rep_r, select.POLLIN)
        result = Collected()
        exited_at: float | None = None
        while True:
            if until_reply and (reply := self._take_reply()) is not None:
                result.reply = reply
                self._drain(streams, open_fds)
                break
            if not until_reply and not open_fds:
                break
            now = time.monotonic()
            if now >= deadline:
                result.deadline_hit = True
                break
            if exited_at is None and self.proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.2:
                break  # the worker is gone; something else (a setsid grandchild) holds the pipes
            wait = min(deadline - now, 0.05 if exited_at is None else 0.01, 0.25)
            for fd, _ev in poller.poll(max(wait, 0.0) * 1000):
                if fd == self._rep_r:
                    if not self._read_reply():
                        poller.unregister(fd)
                        until_reply = False  # the reply pipe closed: the worker died
                    continue
                chunk = self._read(fd)
                if chunk:
                    streams[fd].add(chunk)
                    total += len(chunk)
                else:
                    open_fds.discard(fd)
                    poller.unregister(fd)
            if total > flood_limit:
                result.flooded = True
                break
        result.stdout, cut_out = streams[self._out].text(cap)
        result.stderr, cut_err = streams[self._err].text(cap)
        result.truncated = cut_out or cut_err or result.flooded
        return result

    def _drain(self, streams: dict[int, _Stream], open_fds: set[int]) -> None:
        """After a reply, everything the worker wrote before replying is already in the pipes."""
        for fd in list(open_fds):
            while True:
                ready, _, _ = select.select([fd], [], [], 0)
                if not ready:
                    break
                chunk = self._read(fd)
                if not chunk:
                    open_fds.discard(fd)
                    break
                streams[fd].add(chunk)

    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, 65536)
        except OSError:
            return b""

    def _read_reply(self) -> bool:
        chunk = self._read(self._rep_r)
        if not chunk:
            return False
        self._rep_buf += chunk
        if len(self._rep_buf) > 1 << 20:  # a hostile cell can write to the reply pipe; bound it
            self._rep_buf = self._rep_buf[-4096:]
        return True

    def _take_reply(self) -> dict[str, Any] | None:
        nl = self._rep_buf.find(b"\n")
        if nl < 0:
            return None
        line, self._rep_buf = bytes(self._rep_buf[:nl]), self._rep_buf[nl + 1 :]
        try:
            reply = json.loads(line)
        except ValueError:
            return {"exit": 1, "timed_out": False, "bad_reply": True}
        return reply if isinstance(reply, dict) else {"exit": 1, "timed_out": False, "bad_reply": True}

    def wait_ready(self, deadline: float) -> Collected:
        """Serve mode: wait for the worker's ready line."""
        return self.collect(deadline, until_reply=True)

    def kill(self) -> None:
        """Kill the worker's whole process group and release its pipes. Idempotent."""
        if self._inner_pid is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self._inner_pid, signal.SIGKILL)  # a namespace's init: its death kills the namespace
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        self.close_requests()
        self._close_fds((self._rep_r,))
        self._rep_r = -1
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._run_cleanup()

    def forget(self) -> None:
        """In a forked child: drop this process's copies of the parent's worker pipes, killing nothing."""
        self._inner_pid = None
        self._cleanup = None
        self._close_fds((self._req_w, self._rep_r))
        self._req_w = self._rep_r = -1
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def returncode(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
