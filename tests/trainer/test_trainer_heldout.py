"""Held-out evaluation during training: pass@k on tasks training never sees, before the first update, every
``eval.every`` steps and after the last, in heldout.jsonl, the step metrics and the plot."""

from __future__ import annotations

import json

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.trainer import Trainer, load_config  # noqa: E402
from aepo_envs.contract import env_tasks  # noqa: E402


def test_heldout_eval_at_start_every_k_and_end(tmp_path, answer_engine, tiny_model) -> None:
    data = {
        "run_dir": str(tmp_path / "run"),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 6}}},
        "rollout": {"mode": "flat", "n": 2, "initial_rollouts": 2, "max_response_tokens": 32},
        "train": {"steps": 3, "prompts_per_step": 1, "micro_batch_size": 2, "lr": 1e-3, "tensorboard": False,
                  "plot": True, "save_every": 3},
        "eval": {"every": 2, "held_out_limit": 3, "n": 2, "k": [1, 2], "max_response_tokens": 32},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    trainer = Trainer(load_config(path), model=tiny_model(), tokenizer=answer_engine.tokenizer, engine=answer_engine)
    try:
        training_ids = {row.task_id for row in env_tasks(trainer.envs[0])}
        history = trainer.train()
    finally:
        trainer.close()
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "heldout.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [0, 2, 3]  # before RL, every 2 updates, after the last
    assert all("heldout/pass@1" in ln for ln in lines)
    assert "heldout/pass@1" in history[0] and "heldout/pass@1" not in history[1]
    metrics = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "heldout/pass@1" in metrics[0]
    assert (tmp_path / "run" / "training.png").is_file()
    # The held-out tasks are another world seed's: none of them is a training task.
    from aepo_envs.worlds import get_world, release_world

    world = get_world("calcqa", n_questions=6, seed=2)
    try:
        assert not {row.task_id for row in world.tasks} & training_ids
    finally:
        release_world(world)
