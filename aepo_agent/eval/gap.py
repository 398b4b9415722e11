"""The engine/model log-prob gap of evaluated tokens: ~0 when the engine samples the weights being evaluated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aepo_agent.rollout import RolloutRow


class GapProbe:
    """Called with each sampled chunk's rows (``run_eval(on_rows=...)``); scores them with ``model`` at the
    sampling temperature. An engine sampling with top-p/top-k or a repetition penalty reports its filtered
    distribution, so the gap is exact only without them."""

    def __init__(self, model: Any, pad_id: int, *, temperature: float, micro_batch: int = 4) -> None:
        from aepo_agent.trainer.batch import LogprobGap

        self.model, self.pad_id, self.temperature, self.micro_batch = model, pad_id, temperature, micro_batch
        self.gap = LogprobGap()

    def __call__(self, rows: Sequence[RolloutRow]) -> None:
        import torch

        from aepo_agent.trainer.batch import collate, policy_logprobs

        if self.temperature <= 0:
            return  # greedy: no distribution to compare
        rows = [r for r in rows if r.response_ids]
        self.model.eval()
        with torch.no_grad():
            for s in range(0, len(rows), self.micro_batch):
                part = collate(rows[s : s + self.micro_batch], self.pad_id)
                logp, _ = policy_logprobs(self.model, part, temperature=self.temperature, with_entropy=False)
                self.gap.add(part, logp)

    def metrics(self) -> dict[str, float]:
        """``eval/rollout_logprob_diff_mean`` and ``_max`` (empty when nothing was scored)."""
        return {k.replace("train/", "eval/"): v for k, v in self.gap.metrics().items()}
