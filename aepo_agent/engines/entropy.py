"""Per-token entropies: the exact one from full log-probabilities (HF engine, trainer), and estimators for
engines that only return the top-k log-probabilities (vLLM)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ESTIMATORS = ("exact", "topk_tail", "topk", "surprisal", "none")  # none: no logprobs, entropies are zeros


def topk_entropy(logprobs: Iterable[float]) -> float:
    """The released ARPO/AEPO estimate: -sum p log p over the returned log-probs only (top-k plus the sampled
    token when it is not among them), no tail mass; it undercounts the entropy a flat distribution has."""
    return -sum(math.exp(lp) * lp for lp in logprobs if lp != -math.inf)


def topk_tail_entropy(logprobs: Iterable[float]) -> float:
    """Entropy of the returned top-k tokens plus the missing mass 1 - sum(p) as one extra bucket (a lower bound)."""
    entropy = 0.0
    total = 0.0
    for lp in logprobs:
        if lp == -math.inf:
            continue
        p = math.exp(lp)
        total += p
        entropy -= p * lp
    tail = 1.0 - total
    if tail > 1e-12:
        entropy -= tail * math.log(tail)
    return entropy


def surprisal(sampled_logprob: float) -> float:
    """-log p of the sampled token: an unbiased single-sample estimate of the entropy."""
    return -sampled_logprob


def token_entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """Exact entropy -sum p log p over the last dim of log-probabilities (0 * -inf counts as 0): the one
    formula the engine's branch entropies and the trainer's entropy-aware advantage share."""
    return -(logprobs.exp() * logprobs).nan_to_num(nan=0.0).sum(-1)
