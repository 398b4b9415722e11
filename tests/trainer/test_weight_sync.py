"""An engine with its own copy of the weights (vLLM) gets the policy after every change; the KL reference
is the policy RL starts from (after the warm start), also across a resume. Tiny model, scripted engine."""

from __future__ import annotations

import json

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.trainer import Trainer, load_config  # noqa: E402
from aepo_agent.trainer.checkpoint import save_checkpoint  # noqa: E402


def _cfg(tmp_path, **sections):
    data = {
        "run_dir": str(tmp_path / "run"),
        "engine": {"kind": "vllm"},
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 8}}},
        "rollout": {"mode": "flat", "n": 2, "initial_rollouts": 2, "max_response_tokens": 32},
        "train": {"steps": 1, "prompts_per_step": 1, "micro_batch_size": 2, "lr": 1e-3, "tensorboard": False,
                  "plot": False},
        **sections,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    return load_config(path)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_update_and_warm_start_reach_the_engine_and_the_reference(tmp_path, answer_engine, tiny_model) -> None:
    cfg = _cfg(tmp_path, algo={"kl_coef": 0.1}, warm_start={"sft_steps": 2, "demos": 3, "batch_size": 2,
                                                              "micro_batch_size": 2, "lr": 1e-2})
    model = tiny_model()
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer = Trainer(cfg, model=model, tokenizer=answer_engine.tokenizer, engine=answer_engine)
    try:
        trainer.warm_start()
        after_sft = {k: v.detach().clone() for k, v in model.named_parameters()}
        assert not _same(after_sft, initial)
        assert len(answer_engine.synced) == 1 and _same(answer_engine.synced[0], after_sft)
        ref = dict(trainer._ref_model.named_parameters())
        assert _same({k: v.detach() for k, v in ref.items()}, after_sft)  # KL anchors at RL's start
        trainer.train_step(0)
        assert len(answer_engine.synced) == 2
        assert _same(answer_engine.synced[1], {k: v.detach() for k, v in model.named_parameters()})
        save_checkpoint(trainer.run_dir, 1, model, trainer.optimizer)
    finally:
        trainer.close()

    resumed_engine = type(answer_engine)()
    fresh = tiny_model()  # the pre-SFT weights again, as a restarted process would load them
    again = Trainer(cfg, model=fresh, tokenizer=answer_engine.tokenizer, engine=resumed_engine)
    try:
        assert again.maybe_resume() == 1
        assert again.warm_start() == []  # a checkpoint already contains it
        ref = {k: v.detach() for k, v in again._ref_model.named_parameters()}
        assert _same(ref, after_sft)
        assert len(resumed_engine.synced) == 1
    finally:
        again.close()


def test_vllm_engine_samples_in_the_trainer_dtype_unless_overridden(tmp_path, monkeypatch) -> None:
    import aepo_agent.engines.vllm_engine as vllm_engine
    from aepo_agent.trainer.trainer import build_engine

    made: list[dict] = []
    monkeypatch.setattr(vllm_engine, "VLLMEngine", lambda path, **kwargs: made.append(kwargs))
    monkeypatch.setattr("aepo_agent.models.resolve_model", lambda name: tmp_path)
    build_engine(_cfg(tmp_path, model={"dtype": "float32"}, seed=7), None, None)
    build_engine(_cfg(tmp_path, engine={"kind": "vllm", "vllm_kwargs": {"dtype": "bfloat16"}}), None, None)
    assert made[0]["dtype"] == "float32" and made[0]["seed"] == 7
    assert made[1]["dtype"] == "bfloat16"
