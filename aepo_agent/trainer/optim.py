"""The optimizer every training phase uses (warm start, RL updates)."""

from __future__ import annotations

import torch


def make_optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused where the build has it (about 8x faster than the per-parameter loop on CPU)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
