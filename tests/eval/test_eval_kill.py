"""kill -9 in the middle of an evaluation, then rerun: no sample scored twice, none lost but those in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
from eval_toys import TOY_ID, ScriptedEngine, register_toys

from aepo_agent.eval import BenchmarkSpec, run_eval
from aepo_agent.eval.runner import records_path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_kill_dash_nine_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    path = records_path(out, TOY_ID)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "kill_eval_script.py"), str(out), "0.5"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if path.is_file() and len(path.read_bytes().splitlines()) >= 6:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = path.read_bytes()
    kept = [json.loads(line) for line in before.split(b"\n")[:-1]]  # complete lines; a torn tail is dropped
    assert 6 <= len(kept) < 24  # killed midway: some samples scored, not all

    # Rerun: the same toy env (12 tasks) in this process.
    gym.registry.pop(TOY_ID, None)
    register_toys(n_tasks=12)
    try:
        from kill_eval_script import SETTINGS

        engine = ScriptedEngine()
        report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out,
                          progress=False, model_label="toy")
    finally:
        gym.registry.pop(TOY_ID, None)
        register_toys()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    keys = [(r["task_id"], r["run"]) for r in lines]
    assert len(keys) == len(set(keys)) == 24  # none scored twice, none missing
    assert lines[: len(kept)] == kept  # what the killed run scored stays as it was
    assert report.sampled == 24 - len(kept)
    assert report.benchmarks[TOY_ID]["complete"]
