"""Rows with zero advantage everywhere are skipped by the update without changing the step it takes."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.rollout.trajectory import RolloutRow  # noqa: E402
from aepo_agent.trainer import Trainer, load_config  # noqa: E402
from aepo_agent.trainer import trainer as trainer_module  # noqa: E402


def _rows(rewards: list[list[float]]) -> list[RolloutRow]:
    gen = torch.Generator().manual_seed(1)
    rows = []
    for group, group_rewards in enumerate(rewards):
        for k, reward in enumerate(group_rewards):
            length = 6 + 2 * k + group
            response = torch.randint(3, 250, (length,), generator=gen).tolist()
            mask = [1] * 3 + [0] * 2 + [1] * (length - 5)  # env text in the middle
            rows.append(RolloutRow(
                group_id=group, task_id=f"t{group}", traj_id=len(rows), parent_id=None, branch_step=None,
                prompt_ids=[5, 6, 7 + group], response_ids=response, loss_mask=mask,
                old_logprobs=[-1.0] * length, entropies=[1.0] * length, segment_ids=[1] * length, reward=reward,
                reward_components={}, num_tool_calls=0, finish="answer"))
    return rows


def _trainer(tmp_path, answer_engine, make_model, name: str, **algo) -> Trainer:
    data = {
        "run_dir": str(tmp_path / name),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"world_kwargs": {"n_questions": 4}}},
        "rollout": {"mode": "flat", "n": 2, "initial_rollouts": 2, "max_response_tokens": 32},
        "algo": {"loss": "aepo", "entropy_advantage": True, **algo},
        "train": {"prompts_per_step": 3, "mini_batch_prompts": 3, "micro_batch_size": 2, "ppo_epochs": 2, "lr": 1e-2,
                  "tensorboard": False, "plot": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    return Trainer(load_config(path), model=make_model(), tokenizer=answer_engine.tokenizer, engine=answer_engine)


def _count_forwards(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = trainer_module.policy_logprobs

    def counting(model, batch, **kwargs):
        calls.append(batch.input_ids.shape[0])
        return real(model, batch, **kwargs)

    monkeypatch.setattr(trainer_module, "policy_logprobs", counting)
    return calls


@pytest.mark.parametrize("stats", ["micro_batch", "batch"])
def test_skipping_zero_advantage_rows_takes_the_same_step(tmp_path, answer_engine, tiny_model, monkeypatch,
                                                          stats) -> None:
    rows = _rows([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # only the first group has a nonzero advantage
    skip = _trainer(tmp_path, answer_engine, tiny_model, "skip", entropy_stats=stats)
    full = _trainer(tmp_path, answer_engine, tiny_model, "full", entropy_stats=stats)
    full.cfg.train.skip_zero_advantage = False
    calls = _count_forwards(monkeypatch)
    out = skip.update(copy.deepcopy(rows))
    skipped_rows = sum(calls)
    calls.clear()
    full.update(copy.deepcopy(rows))
    assert sum(calls) > skipped_rows  # the skipped rows really ran no forward pass
    assert out["train/zero_adv_rows_skipped"] == 4
    for (name, a), b in zip(skip.model.named_parameters(), full.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    moments = [(skip.optimizer.state[a]["exp_avg"], full.optimizer.state[b]["exp_avg"])
               for a, b in zip(skip.model.parameters(), full.model.parameters(), strict=True)]
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in moments)


def test_an_all_zero_update_runs_no_forward_and_still_steps_the_optimizer(tmp_path, answer_engine, tiny_model,
                                                                            monkeypatch) -> None:
    rows = _rows([[1.0, 1.0], [0.0, 0.0]])
    trainer = _trainer(tmp_path, answer_engine, tiny_model, "zero")
    calls = _count_forwards(monkeypatch)
    out = trainer.update(rows)
    assert calls == []
    assert out["train/zero_adv_rows_skipped"] == 4 and out["train/grad_norm"] == 0.0
    steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert steps == {2}  # one step per epoch, as if the zero gradient had been computed


def test_a_kl_term_keeps_every_row(tmp_path, answer_engine, tiny_model, monkeypatch) -> None:
    rows = _rows([[1.0, 1.0]])
    trainer = _trainer(tmp_path, answer_engine, tiny_model, "kl", kl_coef=0.1)
    calls = _count_forwards(monkeypatch)
    out = trainer.update(rows)
    assert calls and out["train/zero_adv_rows_skipped"] == 0
