"""Cold-start SFT: oracle demonstrations in the rollout token layout, and SFT steps that fit them."""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import aepo_envs  # noqa: E402,F401
from aepo_agent.rollout.demos import oracle_rows  # noqa: E402
from aepo_agent.trainer.warm_start import sft_steps  # noqa: E402
from aepo_envs.envs.config import deep_merge  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    from aepo_agent.models import cached_model_path

    path = cached_model_path("smollm2-135m-instruct")
    if path is None:
        pytest.skip("SmolLM2 tokenizer not cached; run `aepo models fetch smollm2-135m-instruct`")
    return transformers.AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def rows(tokenizer):
    env = gym.make("AEPO/CalcQA-v0", max_turns=4, world_kwargs={"seed": 1, "n_questions": 10})
    try:
        return oracle_rows(env, tokenizer, range(6))
    finally:
        env.close()


def test_rows_have_the_rollout_layout(rows, tokenizer) -> None:
    assert len(rows) == 6 and all(r.reward == 1.0 and r.num_tool_calls == 1 for r in rows)
    for r in rows:
        model_text = tokenizer.decode([t for t, m in zip(r.response_ids, r.loss_mask, strict=True) if m])
        env_text = tokenizer.decode([t for t, m in zip(r.response_ids, r.loss_mask, strict=True) if not m])
        assert "<python>" in model_text and "<answer>" in model_text and "\\boxed{" in model_text
        assert "<result>" in env_text and "RESULT" in env_text and "<python>" not in env_text
        assert r.response_ids[-1] == tokenizer.eos_token_id and r.loss_mask[-1] == 1
        assert len(r.response_ids) == len(r.loss_mask) == len(r.segment_ids)
        chat = tokenizer.decode(r.prompt_ids)
        assert chat.rstrip().endswith("assistant")  # the same generation prompt a rollout uses


def test_sft_steps_fit_the_demonstrations(rows, tokenizer) -> None:
    cfg = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    logged = []
    losses = sft_steps(model, rows, pad_id=0, steps=12, lr=2e-2, batch_size=4, micro_batch_size=2, seed=0,
                       log=lambda step, m: logged.append((step, m["sft/loss"])))
    assert len(losses) == 12 and [s for s, _ in logged] == list(range(12))
    assert losses[-1] < 0.6 * losses[0], losses
    with pytest.raises(ValueError, match="no demonstration rows"):
        sft_steps(model, [], pad_id=0, steps=1, lr=1e-3, batch_size=1, micro_batch_size=1, seed=0)


def test_merge_kwargs_is_deep() -> None:
    base = {"max_turns": 4, "world_kwargs": {"seed": 0, "kinds": ["product"]}}
    assert deep_merge(base, {"world_kwargs": {"seed": 1}}) == {
        "max_turns": 4, "world_kwargs": {"seed": 1, "kinds": ["product"]}}
    assert base["world_kwargs"]["seed"] == 0


def test_sft_cli_needs_steps(tmp_path, capsys) -> None:
    from aepo_agent.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("run_dir: " + str(tmp_path / "run") + "\n")
    assert main(["sft", str(cfg), "--out", str(tmp_path / "m")]) == 2
    assert "warm_start.sft_steps is 0" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
