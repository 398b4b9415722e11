"""Trainer seams of the fidelity issue: engines are synced by what they say (not by the config string), the
micro-batch weighting of the loss (ours and the released one), seq-mean-token-sum-norm over the response budget,
and the rollout config validated when the YAML loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_zero_advantage import _rows  # noqa: E402

from aepo_agent.algos import policy_loss  # noqa: E402
from aepo_agent.trainer import Trainer, load_config  # noqa: E402
from aepo_agent.trainer.batch import collate, policy_logprobs, token_advantages  # noqa: E402
from aepo_agent.trainer.checkpoint import save_checkpoint  # noqa: E402


def _cfg(tmp_path, name="run", **sections):
    data = {
        "run_dir": str(tmp_path / name),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 6}}},
        "rollout": {"mode": "flat", "n": 2, "initial_rollouts": 2, "max_response_tokens": 32},
        "train": {"steps": 1, "prompts_per_step": 1, "micro_batch_size": 2, "lr": 1e-2, "tensorboard": False,
                  "plot": False},
        "eval": {"n": 2, "k": [1], "limit": 2},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    return path


def _params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_an_engine_with_its_own_weights_is_synced_whatever_the_engine_kind(tmp_path, answer_engine, tiny_model):
    cfg = load_config(_cfg(tmp_path))
    assert cfg.engine.kind == "hf"  # the default kind: the old trainer never synced here
    model = tiny_model()
    trainer = Trainer(cfg, model=model, tokenizer=answer_engine.tokenizer, engine=answer_engine)
    try:
        assert not trainer.engine_shares_weights()
        trainer.train_step(0)
        assert len(answer_engine.synced) == 1
        assert all(torch.equal(answer_engine.synced[0][k], v) for k, v in _params(model).items())
    finally:
        trainer.close()


def test_an_hf_engine_on_the_trainers_module_is_not_synced(tmp_path, tiny_model):
    from char_tokenizer import CharTokenizer

    from aepo_agent.engines.hf_engine import HFEngine

    model, tok = tiny_model(), CharTokenizer()
    own = HFEngine(model, tokenizer=tok)
    other = HFEngine(tiny_model(), tokenizer=tok)
    cfg = load_config(_cfg(tmp_path))
    for engine, shares in ((own, True), (other, False)):
        trainer = Trainer(cfg, model=model, tokenizer=tok, engine=engine)
        assert trainer.engine_shares_weights() is shares
        trainer.close()


def test_aepo_eval_scores_the_checkpoint_not_the_initial_weights(tmp_path, monkeypatch, answer_engine, tiny_model):
    """`aepo eval` loads the checkpoint into the trainer's module; an engine with its own weights must get it."""
    from aepo_agent import cli
    from aepo_agent.trainer import trainer as trainer_module

    path = _cfg(tmp_path)
    trained = tiny_model()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)
    optimizer = torch.optim.AdamW(trained.parameters())
    save_checkpoint(Path(load_config(path).run_dir), 1, trained, optimizer)
    monkeypatch.setattr(trainer_module, "load_policy", lambda cfg: (tiny_model(), answer_engine.tokenizer))
    monkeypatch.setattr(trainer_module, "build_engine", lambda cfg, model, tok: answer_engine)
    assert cli.main(["eval", str(path)]) == 0
    assert answer_engine.synced, "the engine never received the checkpoint"
    last = answer_engine.synced[-1]
    assert all(torch.equal(last[k], v) for k, v in _params(trained).items())


def _update_loss(tmp_path, answer_engine, make_model, name, rows, **train):
    path = _cfg(tmp_path, name, train={"prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 2,
                                       "skip_zero_advantage": False, **train},
                algo={"loss": "ppo", "entropy_advantage": False})
    trainer = Trainer(load_config(path), model=make_model(), tokenizer=answer_engine.tokenizer, engine=answer_engine)
    try:
        return trainer.update(rows)["train/loss"], trainer
    finally:
        trainer.close()


def test_micro_batch_weighting_ours_and_released_against_a_hand_computation(tmp_path, answer_engine, tiny_model):
    rows = _rows([[1.0, 0.0, 0.5], [0.0, 1.0]])  # 5 rows: micro-batches of 2, 2, 1 with different token counts
    full = collate(rows, 0)
    adv = token_advantages(rows, full, torch.tensor([r.reward for r in rows]), estimator="grpo", norm_by_std=True,
                           attribution="soft")
    model = tiny_model()
    with torch.no_grad():
        logp, _ = policy_logprobs(model, full, with_entropy=False)
    # On-policy (one epoch, first mini-batch): ratio 1, so each token's loss is -A.
    mask = full.response_mask
    ours = float((-adv * mask).sum() / mask.sum())
    released = 0.0
    for s in range(0, 5, 2):
        sub = slice(s, s + 2)
        micro = policy_loss(logp[sub], logp[sub], adv[sub], mask[sub], kind="ppo").loss  # its own token mean
        released += float(micro) * mask[sub].shape[0] / 5
    got_ours, _ = _update_loss(tmp_path, answer_engine, tiny_model, "ours", rows)
    got_released, _ = _update_loss(tmp_path, answer_engine, tiny_model, "rel", rows,
                                   micro_batch_weighting="released")
    assert got_ours == pytest.approx(ours, abs=1e-6)
    assert got_released == pytest.approx(released, abs=1e-6)
    assert abs(ours - released) > 1e-4  # the two weightings differ on these rows


def test_seq_mean_token_sum_norm_divides_by_the_response_budget(tmp_path, answer_engine, tiny_model):
    rows = _rows([[1.0, 0.0, 0.5], [0.0, 1.0]])
    full = collate(rows, 0)
    adv = token_advantages(rows, full, torch.tensor([r.reward for r in rows]), estimator="grpo", norm_by_std=True,
                           attribution="soft")
    budget = 32  # rollout.max_response_tokens, verl's padded response width
    expected = float((-adv * full.response_mask).sum() / budget)
    path = _cfg(tmp_path, "sumnorm", train={"prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 2,
                                            "skip_zero_advantage": False},
                algo={"loss": "ppo", "entropy_advantage": False, "agg": "seq-mean-token-sum-norm"})
    trainer = Trainer(load_config(path), model=tiny_model(), tokenizer=answer_engine.tokenizer, engine=answer_engine)
    try:
        assert trainer.update(rows)["train/loss"] == pytest.approx(expected, abs=1e-6)
    finally:
        trainer.close()


def test_the_rollout_section_is_validated_when_the_yaml_loads(tmp_path):
    with pytest.raises(ValueError, match="rollout"):
        load_config(_cfg(tmp_path, rollout={"n": 0}))
    with pytest.raises(ValueError, match="segment_max_tokens"):
        load_config(_cfg(tmp_path, rollout={"segment_max_tokens": 0}))
    with pytest.raises(ValueError, match="rollout.seed"):
        load_config(_cfg(tmp_path, rollout={"seed": 3}))
    cfg = load_config(_cfg(tmp_path, rollout={"branch_from": "tool_result"}))
    from aepo_agent.rollout import RolloutConfig

    assert isinstance(cfg.rollout, RolloutConfig) and cfg.rollout.branch_from == "tool_result"
