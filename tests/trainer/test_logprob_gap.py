"""The update logs how far the rollout engine's log-probs are from the trainer's pi_old (an off-policy alarm)."""

from __future__ import annotations

import json

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.engines.hf_engine import HFEngine  # noqa: E402
from aepo_agent.rollout.trajectory import RolloutRow  # noqa: E402
from aepo_agent.trainer import Trainer, load_config  # noqa: E402
from aepo_agent.trainer.batch import LogprobGap, collate  # noqa: E402


def _row(old_logprobs: list[float], mask: list[int]) -> RolloutRow:
    n = len(old_logprobs)
    return RolloutRow(group_id=0, task_id="t", traj_id=0, parent_id=None, branch_step=None, prompt_ids=[1],
                      response_ids=[2] * n, loss_mask=mask, old_logprobs=old_logprobs, entropies=[0.0] * n,
                      segment_ids=[1] * n, reward=0.0, reward_components={}, num_tool_calls=0, finish="answer")


def test_gap_counts_model_tokens_only() -> None:
    rows = [_row([-1.0, -2.0, 0.0], [1, 1, 0]), _row([-0.5], [1])]
    batch = collate(rows, pad_id=0)
    gap = LogprobGap()
    gap.add(batch, torch.tensor([[-1.5, -2.0, -7.0], [-0.25, -3.0, -3.0]]))  # row 2 is padded past its one token
    assert (gap.total, gap.worst, gap.tokens) == (pytest.approx(0.75), pytest.approx(0.5), 3)
    assert gap.metrics() == {"train/rollout_logprob_diff_mean": pytest.approx(0.25),
                             "train/rollout_logprob_diff_max": pytest.approx(0.5)}
    assert LogprobGap().metrics() == {}  # no row computed: no metric rather than a fake 0


def _trainer(tmp_path, model, tokenizer, engine, ppo_epochs: int, schedule: str = "rounds") -> Trainer:
    data = {
        "run_dir": str(tmp_path / f"run{ppo_epochs}"),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 4}}},
        "rollout": {"mode": "flat", "n": 2, "initial_rollouts": 2, "max_response_tokens": 12,
                    "segment_max_tokens": 12, "schedule": schedule},
        "train": {"prompts_per_step": 2, "mini_batch_prompts": 1, "micro_batch_size": 2, "ppo_epochs": ppo_epochs,
                  "lr": 1e-3, "skip_zero_advantage": False, "tensorboard": False, "plot": False},
    }
    path = tmp_path / f"cfg{ppo_epochs}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    return Trainer(load_config(path), model=model, tokenizer=tokenizer, engine=engine)


@pytest.mark.parametrize(("ppo_epochs", "schedule"), [(1, "rounds"), (2, "rounds"), (1, "continuous")])
def test_engine_sampling_with_the_policy_has_no_gap(tmp_path, tiny_model, answer_engine, ppo_epochs,
                                                    schedule) -> None:
    # ppo_epochs 1: the first mini-batch is on-policy (no separate old forward); continuous: the HF stream
    model = tiny_model()
    engine = HFEngine(model, tokenizer=answer_engine.tokenizer)
    trainer = _trainer(tmp_path, model, answer_engine.tokenizer, engine, ppo_epochs, schedule)
    try:
        metrics = trainer.train_step(0)
    finally:
        trainer.close()
    assert metrics["rollout/continuous"] == float(schedule == "continuous")
    assert metrics["train/rollout_logprob_diff_mean"] < 1e-4
    assert metrics["train/rollout_logprob_diff_max"] < 1e-3


def test_an_engine_off_the_policy_shows_a_gap(tmp_path, tiny_model, answer_engine) -> None:
    trainer = _trainer(tmp_path, tiny_model(), answer_engine.tokenizer, answer_engine, 1)
    try:
        metrics = trainer.train_step(0)
    finally:
        trainer.close()
    # The scripted engine reports -0.1 for every token; a random 256-token policy gives about -ln 256 = -5.5.
    assert metrics["train/rollout_logprob_diff_mean"] > 3.0
