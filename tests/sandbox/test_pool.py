"""Pre-started sandboxes: a spare serves exactly one run, survives its spawning thread, is per process."""

from __future__ import annotations

import os
import threading
import time

import pytest

from aepo_envs.backends.sandbox import ProcessSandbox, make_sandbox
from aepo_envs.backends.sandbox.pool import SparePool


def _wait_idle(box: ProcessSandbox, mode: str, n: int = 1, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while box._spares.idle(mode) < n:
        assert time.monotonic() < deadline, f"no {mode} spare started within {timeout} s"
        time.sleep(0.02)


@pytest.fixture()
def pooled(box_factory) -> ProcessSandbox:
    box = box_factory("bwrap")
    assert isinstance(box, ProcessSandbox)
    yield box
    box.close()


def test_spare_serves_the_next_run_with_fresh_state(pooled: ProcessSandbox) -> None:
    first = pooled.run("open('/tmp/mark', 'w').write('x'); import os; print(os.getpid())", 15)
    assert first.exit_code == 0, first
    _wait_idle(pooled, "once")
    spare = pooled._spares._spares["once"][0]
    second = pooled.run("import os; print(os.path.exists('/tmp/mark'))", 15)
    assert second.stdout == "False\n"  # a spare is a fresh sandbox: nothing of the earlier run is visible
    assert not spare.alive  # ...and it was the one used: it ran once and exited


def test_spare_outlives_the_thread_that_asked_for_it(pooled: ProcessSandbox) -> None:
    # bwrap's --die-with-parent fires when the spawning *thread* exits; spares come from a long-lived one.
    worker = threading.Thread(target=pooled.run, args=("1", 15))
    worker.start()
    worker.join()
    _wait_idle(pooled, "once")
    time.sleep(0.3)
    assert all(w.alive for w in pooled._spares._spares["once"])
    assert pooled.run("print(6 * 7)", 15).stdout == "42\n"


def test_sessions_use_serve_spares(pooled: ProcessSandbox) -> None:
    session = pooled.open_session()
    try:
        assert session.run("x = 41", 15).exit_code == 0
        _wait_idle(pooled, "serve")
        session.restart()
        assert "NameError" in session.run("x", 15).stderr  # the spare starts empty
        assert session.run("x = 1\nx + 1", 15).stdout == "2\n"
    finally:
        session.close()


def test_close_kills_spares_and_runs_still_work(pooled: ProcessSandbox) -> None:
    pooled.run("1", 15)
    _wait_idle(pooled, "once")
    spares = list(pooled._spares._spares["once"])
    pooled.close()
    assert all(not w.alive for w in spares)
    assert pooled.run("print(2)", 15).stdout == "2\n"  # without spares: started on demand
    time.sleep(0.2)
    assert pooled._spares.idle("once") == 0


def test_prestart_zero_keeps_no_spare(box_factory) -> None:
    box = box_factory("bwrap", prestart=0)
    assert box.run("print(1)", 15).stdout == "1\n"
    time.sleep(0.3)
    assert box._spares.idle("once") == 0


def test_forked_child_drops_inherited_spares(pooled: ProcessSandbox) -> None:
    pooled.run("1", 15)
    _wait_idle(pooled, "once")
    parent_spare = pooled._spares._spares["once"][0]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not take the parent's spare, and must still run code
        try:
            out = pooled.run("print(6 * 7)", 15).stdout
            os.write(write_end, out.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100) == b"42\n"
    os.close(read_end)
    assert parent_spare.alive and pooled._spares._spares["once"][0] is parent_spare
    assert pooled.run("print(7)", 15).stdout == "7\n"


@pytest.mark.parametrize("size", [-1, 1.5, True, "2"])
def test_bad_prestart_names_the_fix(size: object) -> None:
    with pytest.raises(ValueError, match="prestart must be an int >= 0"):
        SparePool(lambda mode: None, size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prestart"):
        make_sandbox("rlimit", prestart=size)  # type: ignore[arg-type]


def test_session_started_on_a_thread_that_ends_keeps_its_state(box_factory) -> None:
    # Also without spares: every worker starts on the long-lived spawner thread, never on the caller's.
    box = box_factory("bwrap", prestart=0)
    session = box.open_session()
    try:
        starter = threading.Thread(target=session.run, args=("x = 41", 15))
        starter.start()
        starter.join()
        time.sleep(0.5)
        result = session.run("x + 1", 15)
        assert result.stdout == "42\n", result
    finally:
        session.close()
