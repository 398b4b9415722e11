"""The trainer on the real SmolLM2: a step end to end, logs, checkpoints, and kill -9 then exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aepo_agent.eval import pass_at_k
from aepo_agent.trainer import load_config
from aepo_agent.trainer.trainer import DataOrder

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "seed": 1,
    "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 3, "world_kwargs": {"n_questions": 20}}},
    "rollout": {"mode": "aepo", "n": 2, "initial_rollouts": 1, "max_response_tokens": 40, "segment_max_tokens": 20,
                "response_prefix": "<python>print(2 ** 10)</python>"},
    "algo": {"loss": "aepo", "entropy_advantage": True},
    "train": {"steps": 3, "prompts_per_step": 1, "mini_batch_prompts": 1, "micro_batch_size": 2,
              "save_every": 1, "lr": 1e-5},
    "eval": {"n": 2, "k": [1, 2], "limit": 2, "max_response_tokens": 40},
}


def _write_cfg(tmp_path: Path, **over) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["run_dir"] = str(tmp_path / "run")
    cfg.update(over)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_validation_and_overrides(tmp_path):
    cfg = load_config(REPO / "examples" / "configs" / "quickstart.yaml", ["train.steps=2", "rollout.mode=arpo"])
    assert cfg.train.steps == 2 and cfg.rollout.mode == "arpo"
    with pytest.raises(ValueError, match="trian"):
        load_config(None, ["trian.steps=2"])
    with pytest.raises(ValueError, match="prompts_per_step"):
        load_config(None, ["train.prompts_per_step=3", "train.mini_batch_prompts=2"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted(p for d in ("configs", "distributed") for p in (REPO / "examples" / d).glob("*.yaml")
                                         if not p.name.startswith("eval_")), ids=lambda p: p.name)
def test_every_example_config_validates_and_builds_its_env(path):
    """Every training config (eval_*.yaml are `aepo eval` configs, tested in tests/eval)."""
    import gymnasium as gym

    import aepo_envs  # noqa: F401

    cfg = load_config(path)
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    try:
        _, info = env.reset(options={"index": 0})
        assert info["messages"]
    finally:
        env.close()


def test_data_order_is_a_seeded_permutation_per_epoch():
    order = DataOrder([f"t{i}" for i in range(5)], seed=3, shuffle=True)
    first_epoch = [order.batch(s, 1)[0] for s in range(5)]
    assert sorted(first_epoch) == [f"t{i}" for i in range(5)]
    assert [order.batch(s, 1)[0] for s in range(5)] == first_epoch


def test_pass_at_k():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="eval.n"):
        pass_at_k(2, 1, 3)


def test_train_steps_log_checkpoint_and_eval(tmp_path, smollm):
    from aepo_agent.eval import evaluate
    from aepo_agent.trainer import Trainer

    model, tok = smollm
    cfg = load_config(_write_cfg(tmp_path), ["train.steps=2", "train.save_every=2", "warm_start.sft_steps=1",
                                              "warm_start.demos=4", "warm_start.batch_size=2"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(cfg, model=model, tokenizer=tok)
    try:
        history = trainer.train()
        summary = evaluate(trainer, output=tmp_path / "eval.jsonl")
    finally:
        trainer.close()
        model.load_state_dict(before)  # the session-wide model stays pristine for other tests
    assert len(history) == 2
    for metrics in history:
        assert metrics["rollout/tool_calls_per_traj"] >= 1.0
        assert "train/loss" in metrics and "train/grad_norm" in metrics
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [0, 1]
    sft = [json.loads(ln) for ln in (run / "warm_start.jsonl").read_text().splitlines()]
    assert [r["sft_step"] for r in sft] == [0] and sft[0]["sft/loss"] > 0
    assert (run / "checkpoints" / "latest.json").is_file()
    assert (run / "training.png").stat().st_size > 1000
    assert any((run / "tensorboard").iterdir())
    assert set(summary) >= {"pass@1", "pass@2", "reward_mean", "tasks"}
    assert summary["tasks"] == 2


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def test_kill_dash_nine_then_resume_keeps_the_data_order(tmp_path, smollm):
    cfg_path = _write_cfg(tmp_path)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "aepo_agent.cli", "train", str(cfg_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and not (run / "checkpoints" / "step_000001").is_dir():
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        assert (run / "checkpoints" / "step_000001").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["step"]
    assert 1 <= latest < 3
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resuming {run} from step {latest}" in out.stderr
    records = _metrics(run)
    assert [r["step"] for r in records] == [0, 1, 2]  # no step lost or repeated
    cfg = load_config(cfg_path)
    import gymnasium as gym

    import aepo_envs  # noqa: F401

    env0 = gym.make(cfg.env.id, **cfg.env.kwargs)
    order = DataOrder([t.task_id for t in env0.unwrapped.tasks], cfg.seed, cfg.train.data_shuffle)
    env0.close()
    assert [r["data/task_ids"] for r in records] == [order.batch(s, 1) for s in range(3)]
