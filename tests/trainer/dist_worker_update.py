"""One process of the data-parallel update test: the trainer's update on a fixed rollout batch.

    python dist_worker_update.py OUT                                        (the one-process trainer)
    RANK=r LOCAL_RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python dist_worker_update.py OUT

For each case of ``CASES``: a fresh seeded tiny Llama, a Trainer on it (under the env:// variables it shards the
model with FSDP2 on a gloo mesh), one ``update`` of ``fixed_rows()``. Rank 0 (or the one process) writes the whole
parameters after the step, AdamW's first moments (the gradients' running mean) and the update's metrics to
OUT/<case>.pt; every process writes the rows it ran through the model to OUT/<case>.rows<rank>.json and the
weights its engine got from a sync (sums per tensor) to OUT/<case>.synced<rank>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: char_tokenizer
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

from char_tokenizer import CharTokenizer  # noqa: E402

from aepo_agent.rollout.trajectory import RolloutRow  # noqa: E402
from aepo_agent.trainer import trainer as trainer_module  # noqa: E402
from aepo_agent.trainer.config import TrainConfig  # noqa: E402

# agg x advantage, each with the entropy-aware advantage (batch, micro-batch and group z-scores between them).
CASES: dict[str, dict[str, Any]] = {
    "tokmean_grpo": {"agg": "token-mean", "advantage": "grpo", "entropy_stats": "batch"},
    "seqmean_grpo": {"agg": "seq-mean-token-mean", "advantage": "grpo", "entropy_stats": "micro_batch"},
    "tokmean_rpp": {"agg": "token-mean", "advantage": "reinforce_pp", "entropy_stats": "group"},
    "seqmean_rpp": {"agg": "seq-mean-token-mean", "advantage": "reinforce_pp", "entropy_stats": "batch"},
    # the first mini-batch has no live row: its step runs no pass after the old log-probs' no-grad forwards
    "zerofirst_grpo": {"agg": "token-mean", "advantage": "grpo", "entropy_stats": "micro_batch"},
}
REWARDS = [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.2, 0.9, 0.4]]  # group 1: zero advantage (GRPO)
CASE_REWARDS = {"zerofirst_grpo": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.2, 0.9, 0.4]]}


def make_model() -> Any:
    """A seeded tiny Llama (head_dim 32, vocab 256, fp32): the same initial weights in every process. Its wide init
    spreads the token entropies (std ~0.7 nats, as a trained model's): at the default init they are all ~log(256)
    within 1e-3, and the entropy z-score would blow float rounding up ~1000-fold."""
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                                   initializer_range=0.3)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg)


def fixed_rows(rewards_per_group: list[list[float]] | None = None) -> list[RolloutRow]:
    """Prompt groups of 3 trajectories with env text inside the responses and unequal lengths."""
    gen = torch.Generator().manual_seed(1)
    rows = []
    for group, rewards in enumerate(rewards_per_group or REWARDS):
        prompt = torch.randint(3, 250, (4 + group,), generator=gen).tolist()
        for k, reward in enumerate(rewards):
            length = 7 + 3 * k + 2 * group
            response = torch.randint(3, 250, (length,), generator=gen).tolist()
            mask = [1] * 3 + [0] * 2 + [1] * (length - 5)
            old = (-torch.rand(length, generator=gen) * 4).tolist()
            rows.append(RolloutRow(
                group_id=group, task_id=f"t{group}", traj_id=len(rows), parent_id=None, branch_step=None,
                prompt_ids=prompt, response_ids=response, loss_mask=mask, old_logprobs=old,
                entropies=[1.0] * length, segment_ids=[len(rows) + 1] * length, reward=reward,
                reward_components={}, num_tool_calls=0, finish="answer"))
    return rows


class NoEngine:
    """The update needs no engine; the Trainer wants one. Records the weights a sync sends (as vLLM gets them)."""

    tokenizer = CharTokenizer()
    shares_weights = False

    def __init__(self) -> None:
        self.synced: dict[str, float] = {}

    def update_weights(self, named_tensors: Any) -> None:
        self.synced = {name: float(t.detach().double().sum()) for name, t in named_tensors}

    def close(self) -> None:
        pass


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    """A (sharded) optimizer state as one CPU tensor; collective for a DTensor."""
    full = getattr(tensor, "full_tensor", None)
    return (full() if callable(full) else tensor).detach().cpu()


def config(out: Path, name: str, tag: str) -> TrainConfig:
    return TrainConfig.model_validate({
        "run_dir": str(out / f"run_{name}_{tag}"),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"world_kwargs": {"n_questions": 4}}},
        "rollout": {"mode": "flat", "n": 3, "initial_rollouts": 3, "max_response_tokens": 32},
        "algo": {"loss": "aepo", "entropy_advantage": True, "entropy_advantage_coef": 0.5, **CASES[name]},
        "train": {"prompts_per_step": 4, "mini_batch_prompts": 2, "micro_batch_size": 2, "lr": 1e-3,
                  "tensorboard": False, "plot": False},
    })


def main(out: Path) -> None:
    rank = int(os.environ.get("RANK", "0"))
    tag = f"rank{rank}" if "WORLD_SIZE" in os.environ else "one"
    forwarded: list[int] = []
    real = trainer_module.policy_logprobs

    def counting(model: Any, batch: Any, **kwargs: Any) -> Any:
        forwarded.append(batch.input_ids.shape[0])
        return real(model, batch, **kwargs)

    trainer_module.policy_logprobs = counting
    if "WORLD_SIZE" in os.environ:  # one process group for all cases; each Trainer finds it initialised
        torch.distributed.init_process_group("gloo")
    for name in CASES:
        forwarded.clear()
        engine = NoEngine()
        trainer = trainer_module.Trainer(config(out, name, tag), model=make_model(), tokenizer=NoEngine.tokenizer,
                                         engine=engine)
        metrics = trainer.update(fixed_rows(CASE_REWARDS.get(name)))
        trainer.sync_engine()  # under torchrun: the whole weights gathered on every rank (a colocated vLLM's sync)
        params = trainer_module.full_state_dict(trainer.model) if trainer.dist else trainer.model.state_dict()
        moments = {n: _whole(trainer.optimizer.state[p]["exp_avg"]) for n, p in trainer.model.named_parameters()}
        if trainer.is_main:
            torch.save({"params": {k: v.detach().cpu() for k, v in params.items()}, "exp_avg": moments,
                        "metrics": metrics}, out / f"{name}.pt")
        suffix = rank if trainer.dist else ""
        (out / f"{name}.rows{suffix}.json").write_text(json.dumps(forwarded))
        (out / f"{name}.synced{suffix}.json").write_text(json.dumps(engine.synced))
        trainer.close()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
