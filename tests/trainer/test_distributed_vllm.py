"""``engine.kind: vllm`` under torchrun: one colocated vLLM per rank (``external_launcher``) samples the policy the
ranks train. After a warm start moves the weights, each rank's vLLM gets the gathered weights, so the engine and
the trainer agree on the sampled tokens' log-probs (a missed sync shows a gap of ~1 nat, as before session 7)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from local_services import vllm_python

REPO = Path(__file__).resolve().parents[2]
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.slow
def test_two_ranks_each_sample_the_trained_policy_with_a_colocated_vllm(tmp_path: Path) -> None:
    python = vllm_python(("vllm", "aepo_agent.trainer"))
    if python is None:
        pytest.skip("no interpreter with vLLM and aepo: AEPO_SETUP_VLLM=1 bash scripts/setup.sh builds .venv-vllm")
    run_dir = tmp_path / "run"
    config = {
        "run_dir": str(run_dir), "seed": 0,
        "model": {"name": "smollm2-135m-instruct", "dtype": "float32"},
        "engine": {"kind": "vllm", "vllm_kwargs": {"enforce_eager": True}},  # no torch.compile: a faster start
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"kinds": ["product"], "levels": [1]}}},
        "warm_start": {"sft_steps": 2, "demos": 8, "batch_size": 4, "lr": 3.0e-4},
        "rollout": {"mode": "aepo", "n": 2, "initial_rollouts": 1, "beam_size": 2, "max_response_tokens": 32,
                    "response_prefix": "<python>print(6 * 7)</python>"},
        "algo": {"kl_coef": 0.01},  # every row runs the old-log-prob pass, so the gap is measured on all of them
        "train": {"steps": 1, "prompts_per_step": 2, "mini_batch_prompts": 2, "micro_batch_size": 4,
                  "lr": 1.0e-5, "save_every": 1, "tensorboard": False, "plot": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    env.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "aepo_agent.cli", "train", str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    sft = [json.loads(line) for line in (run_dir / "warm_start.jsonl").read_text().splitlines()]
    assert sft[-1]["sft/loss"] < 0.8 * sft[0]["sft/loss"]  # the warm start moved the weights a lot
    [step] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert step["dist/world_size"] == 2.0 and len(step["data/task_ids"]) == 2
    assert step["rollout/generated_tokens"] > 0
    assert step["train/rollout_logprob_diff_mean"] < 1e-3 and step["train/rollout_logprob_diff_max"] < 1e-2
    assert (run_dir / "checkpoints" / "latest.json").is_file()
