"""``torchrun --nproc-per-node 2 -m aepo_agent.cli train`` on CPU (gloo, FSDP2): a quickstart-shaped run (SmolLM2's
tokenizer and chat template on a tiny random Llama, the CalcQA world, warm start, AEPO tree rollouts through the HF
engine, a KL reference) logs once per step from rank 0, plots, and writes a distributed checkpoint. SIGKILL of one
rank ends the job with torchrun's report naming it; the same command resumes with the same data order; one plain
process resumes the 2-rank checkpoint too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
psutil = pytest.importorskip("psutil")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import gymnasium as gym  # noqa: E402

from aepo_agent.trainer.checkpoint import checkpoint_format, latest_checkpoint  # noqa: E402
from aepo_agent.trainer.trainer import DataOrder  # noqa: E402
from aepo_envs.contract import env_tasks  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENV_KWARGS = {"max_turns": 2, "format_penalty": 0.1, "world_kwargs": {"kinds": ["product"], "levels": [1]}}
PROMPTS = 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (tied embeddings, as SmolLM2) with SmolLM2's tokenizer: the real chat template."""
    from transformers import AutoTokenizer

    from aepo_agent.models import cached_model_path

    smol = cached_model_path("smollm2-135m-instruct")
    if smol is None:
        pytest.skip("needs the SmolLM2 tokenizer in the aepo cache (aepo models fetch smollm2-135m-instruct)")
    tok = AutoTokenizer.from_pretrained(smol)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                                   max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                                   eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny")
    transformers.LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _config(path: Path, model: Path, run_dir: Path) -> Path:
    path.write_text(json.dumps({  # JSON is YAML
        "run_dir": str(run_dir), "seed": 0,
        "model": {"name": str(model), "dtype": "float32"},
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": ENV_KWARGS},
        "warm_start": {"sft_steps": 1, "demos": 4, "batch_size": 2, "micro_batch_size": 2},
        "rollout": {"mode": "aepo", "n": 2, "initial_rollouts": 1, "beam_size": 2, "max_response_tokens": 24},
        "algo": {"advantage": "grpo", "loss": "aepo", "entropy_advantage": True, "kl_coef": 0.01},
        "train": {"steps": 2, "prompts_per_step": PROMPTS, "mini_batch_prompts": 1, "micro_batch_size": 1,
                  "lr": 1e-5, "save_every": 1},
    }))
    return path


def _env() -> dict[str, str]:
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _train(config: Path, *overrides: str, ranks: int | None = 2) -> list[str]:
    """The train command: under ``torchrun --nproc-per-node ranks`` (a standalone rendezvous), or one process."""
    launch = [] if ranks is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    sets = [arg for item in overrides for arg in ("--set", item)]
    return [sys.executable, *launch, "-m", "aepo_agent.cli", "train", str(config), *sets]


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _order() -> DataOrder:
    env = gym.make("AEPO/CalcQA-v0", **ENV_KWARGS)
    try:
        return DataOrder([row.task_id for row in env_tasks(env)], seed=0, shuffle=True)
    finally:
        env.close()


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory, model_dir) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("dist_train")
    config = _config(root / "config.yaml", model_dir, root / "run")
    return config, root / "run", _run(_train(config))


def test_two_ranks_log_plot_and_checkpoint_once(two_step_run) -> None:
    _, run_dir, output = two_step_run
    metrics = _metrics(run_dir)
    assert [m["step"] for m in metrics] == [0, 1]  # one line per step: rank 0 alone logs
    order = _order()
    for m in metrics:
        assert m["data/task_ids"] == order.batch(m["step"], PROMPTS)  # the union of the ranks' prompt blocks
        assert m["dist/world_size"] == 2.0
        assert m["rollout/generated_tokens"] > 0 and "train/kl" in m  # both ranks' rollouts; the KL reference ran
        # the HF engine sampled from the gathered weights: its log-probs are the trainer's
        assert m["train/rollout_logprob_diff_max"] < 1e-4
    assert output.count("run directory:") == 1
    assert (run_dir / "training.png").stat().st_size > 0 and (run_dir / "reference.pt").is_file()
    assert len((run_dir / "warm_start.jsonl").read_text().splitlines()) == 1
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None and ckpt.name == "step_000002" and checkpoint_format(ckpt) == "dcp"
    assert len(list(ckpt.glob("*.distcp"))) == 2  # each rank wrote its shards


def test_sigkill_of_one_rank_ends_the_job_and_both_world_sizes_resume(two_step_run) -> None:
    config, run_dir, _ = two_step_run
    longer = ("train.steps=40",)
    job = subprocess.Popen(_train(config, *longer), env=_env(), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while (latest_checkpoint(run_dir) or Path("step_0")).name < "step_000004":
            assert job.poll() is None and time.monotonic() < deadline, "the run never reached step 4"
            time.sleep(0.2)
        workers = {p.environ().get("RANK"): p for p in psutil.Process(job.pid).children(recursive=True)
                   if p.environ().get("RANK") is not None}
        assert set(workers) == {"0", "1"}
        workers["1"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        output = job.communicate(timeout=60)[0]
        assert time.monotonic() - killed < 60
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "rank      : 1" in output and "SIGKILL" in output, output[-3000:]  # torchrun names the dead rank

    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None and checkpoint_format(ckpt) == "dcp"
    done = int(ckpt.name.removeprefix("step_"))
    output = _run(_train(config, "train.steps=6"))  # the same command (fewer steps): resumes
    assert f"from step {done}" in output
    order = _order()
    metrics = _metrics(run_dir)
    assert [m["step"] for m in metrics] == list(range(6))  # steps after the checkpoint ran again, once
    assert all(m["data/task_ids"] == order.batch(m["step"], PROMPTS) for m in metrics)

    output = _run(_train(config, "train.steps=7", ranks=None))  # one process resumes the 2-rank checkpoint
    assert "from step 6" in output
    last = _metrics(run_dir)[-1]
    assert last["step"] == 6 and last["data/task_ids"] == order.batch(6, PROMPTS)
    assert "dist/world_size" not in last
    assert latest_checkpoint(run_dir).name == "step_000007"
