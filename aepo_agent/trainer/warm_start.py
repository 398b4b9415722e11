"""Cold-start SFT before RL (ARPO/AEPO start RL from an SFT checkpoint): teach the tool-call format on oracle
demonstrations of an offline world, so a small model's first rollouts already call tools and reach answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from aepo_agent.rollout.trajectory import RolloutRow
from aepo_agent.trainer.batch import collate, policy_logprobs
from aepo_agent.trainer.optim import make_optimizer


def sft_steps(
    model: torch.nn.Module,
    rows: Sequence[RolloutRow],
    *,
    pad_id: int,
    steps: int,
    lr: float,
    batch_size: int,
    micro_batch_size: int,
    seed: int,
    grad_clip: float = 1.0,
    log: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[float]:
    """``steps`` optimizer steps of token-mean NLL on the rows' loss-masked tokens; returns the loss per step."""
    if not rows:
        raise ValueError("sft_steps: no demonstration rows (did the oracle solve any task?)")
    if steps < 0 or batch_size < 1 or micro_batch_size < 1:
        raise ValueError("sft_steps: steps must be >= 0 and batch_size, micro_batch_size >= 1")
    rng = random.Random(seed)
    pool = list(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, lr, 0.0)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    losses: list[float] = []
    model.train()
    for step in range(steps):
        batch = rng.sample(pool, min(batch_size, len(pool)))
        tokens = sum(sum(r.loss_mask) for r in batch)
        total = 0.0
        for start in range(0, len(batch), micro_batch_size):
            part = collate(batch[start : start + micro_batch_size], pad_id)
            logp, _ = policy_logprobs(model, part, with_entropy=False)
            loss = -(logp * part.response_mask.to(logp.device)).sum() / tokens
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        if log is not None:
            log(step, {"sft/loss": total, "sft/tokens": tokens})
    model.eval()
    return losses
