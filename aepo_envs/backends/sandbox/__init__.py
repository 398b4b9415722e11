"""Sandboxed Python execution: ``make_sandbox(backend, **limits) -> Sandbox`` with cold runs and sessions.

Back-ends: ``bwrap`` (default; namespaces + rlimits + unprivileged uid), ``rlimit`` (no network or
filesystem isolation), ``docker`` (needs an engine), ``unsafe`` (opt-in, trusted code only) and
``auto`` (bwrap if a runtime probe passes, else rlimit with a warning). See README.md for the table of
what each one blocks.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from aepo_envs.backends.base import BackendUnavailable, ExecResult
from aepo_envs.backends.sandbox.bwrap import BwrapLauncher, find_bwrap
from aepo_envs.backends.sandbox.core import ProcessSandbox, SandboxBase
from aepo_envs.backends.sandbox.limits import SandboxLimits
from aepo_envs.backends.sandbox.rlimit import RlimitLauncher, UnsafeLauncher
from aepo_envs.backends.sandbox.session import PythonSession, ReplaySession, WorkerSession

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "ExecResult",
    "ProcessSandbox",
    "PythonSession",
    "ReplaySession",
    "SandboxBase",
    "SandboxLimits",
    "WorkerSession",
    "bwrap_probe",
    "make_sandbox",
]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "bwrap", "rlimit", "docker", "unsafe")


@functools.lru_cache(maxsize=8)
def bwrap_probe(python: str | None = None) -> str | None:
    """None if bwrap can run the worker here (a real sandboxed ``print(6*7)``), else why not. Cached."""
    if find_bwrap() is None:
        return "the bwrap binary is not installed (apt-get install bubblewrap)"
    box = ProcessSandbox(BwrapLauncher(), SandboxLimits(timeout_s=30.0), python=python, prestart=0)
    try:
        result = box.run("print(6*7)")
    except BackendUnavailable as exc:
        return str(exc)
    if result.stdout.strip() != "42":
        return (
            f"bwrap probe failed (exit {result.exit_code}): {(result.stderr or result.stdout).strip()[-300:]}"
        )
    return None


def make_sandbox(
    backend: str = "auto",
    *,
    print_last_expr: bool = True,
    python: str | None = None,
    allow_unsafe: bool = False,
    image: str | None = None,
    prestart: int = 1,
    **limits: Any,
) -> SandboxBase:
    """Build a sandbox. ``limits`` are ``SandboxLimits`` fields; ``python`` is the interpreter to sandbox;
    ``prestart`` idle workers per mode are kept started ahead of need (0: start each one on demand).

    Raises ``BackendUnavailable`` when the requested back-end cannot run here, ``ValueError``/``TypeError``
    for bad config.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {BACKENDS}")
    lim = SandboxLimits.from_kwargs(**limits)
    if backend == "docker":
        from aepo_envs.backends.sandbox.docker_backend import DockerSandbox

        return DockerSandbox(lim, print_last_expr=print_last_expr, **({"image": image} if image else {}))
    if backend == "unsafe":
        if not allow_unsafe:
            raise ValueError(
                "backend='unsafe' runs code without isolation; pass allow_unsafe=True to confirm "
                "(trusted code only), or use backend='bwrap'"
            )
        log.warning(
            "python sandbox: backend 'unsafe' isolates nothing: %s", ", ".join(UnsafeLauncher.not_isolated)
        )
        return ProcessSandbox(UnsafeLauncher(), lim, print_last_expr, python, prestart)
    if backend in ("auto", "bwrap"):
        problem = bwrap_probe(python)
        if problem is None:
            return ProcessSandbox(BwrapLauncher(), lim, print_last_expr, python, prestart)
        if backend == "bwrap":
            raise BackendUnavailable(f"bwrap sandbox unavailable: {problem}")
        log.warning(
            "python sandbox: bwrap unavailable (%s); falling back to 'rlimit', which does NOT isolate: %s",
            problem,
            ", ".join(RlimitLauncher.not_isolated),
        )
    return ProcessSandbox(RlimitLauncher(), lim, print_last_expr, python, prestart)
