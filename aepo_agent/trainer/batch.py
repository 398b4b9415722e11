"""Rollout rows → padded tensors, advantages, and per-token log-probs/entropies of the policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from aepo_agent.algos import (
    arpo_hard_attribution,
    arpo_soft_attribution,
    grpo_advantages,
    overlong_reward_shaping,
    reinforce_pp_advantages,
)
from aepo_agent.engines.entropy import token_entropy
from aepo_agent.rollout.trajectory import RolloutRow


@dataclass
class TokenBatch:
    """Right-padded sequences of a set of rows; response-aligned tensors are [B, T_resp]."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    prompt_lens: torch.Tensor  # [B]
    response_mask: torch.Tensor  # [B, T] 1 on model tokens (loss mask)
    response_ids: torch.Tensor  # [B, T]
    segment_ids: torch.Tensor  # [B, T]
    resp_len: int
    rollout_logprobs: torch.Tensor  # [B, T] the engine's log-probs when it sampled (0 on env text)


def collate(rows: Sequence[RolloutRow], pad_id: int) -> TokenBatch:
    """Pad the rows' prompt+response to one length; response tensors padded to the longest response."""
    resp_len = max(1, max(len(r.response_ids) for r in rows))
    total = max(len(r.prompt_ids) + len(r.response_ids) for r in rows)
    b = len(rows)
    input_ids = torch.full((b, total), pad_id, dtype=torch.long)
    attn = torch.zeros((b, total), dtype=torch.long)
    resp = torch.full((b, resp_len), pad_id, dtype=torch.long)
    rmask = torch.zeros((b, resp_len), dtype=torch.float32)
    seg = torch.full((b, resp_len), -1, dtype=torch.long)
    engine_lp = torch.zeros((b, resp_len), dtype=torch.float32)
    plens = torch.zeros(b, dtype=torch.long)
    for i, r in enumerate(rows):
        seq = r.prompt_ids + r.response_ids
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attn[i, : len(seq)] = 1
        plens[i] = len(r.prompt_ids)
        n = len(r.response_ids)
        if n:
            resp[i, :n] = torch.tensor(r.response_ids, dtype=torch.long)
            rmask[i, :n] = torch.tensor(r.loss_mask, dtype=torch.float32)
            seg[i, :n] = torch.tensor(r.segment_ids, dtype=torch.long)
            engine_lp[i, :n] = torch.tensor(r.old_logprobs, dtype=torch.float32)
    return TokenBatch(input_ids, attn, plens, rmask, resp, seg, resp_len, engine_lp)


def policy_logprobs(
    model: torch.nn.Module, batch: TokenBatch, *, temperature: float = 1.0, with_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each response token and the exact entropy of the (temperature-scaled) policy at it, on the
    model's device.

    Logits are computed only from the first response position of the batch on (``logits_to_keep``): prompt
    positions would cost a full-vocabulary row each and are never used.
    """
    device = next(model.parameters()).device
    input_ids = batch.input_ids.to(device)
    total = input_ids.shape[1]
    first = int(batch.prompt_lens.min()) - 1  # logits at prompt_len - 1 predict the first response token
    keep = total - first
    out = model(
        input_ids=input_ids, attention_mask=batch.attention_mask.to(device), use_cache=False, logits_to_keep=keep
    )
    logits = out.logits[:, : keep - 1, :].float()  # positions first .. total - 2
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, first + 1 :]
    b, t_resp = batch.response_ids.shape
    # response token j of row i sits at position prompt_len + j; its logits are at prompt_len + j - 1.
    pos = batch.prompt_lens.to(device)[:, None] - 1 - first + torch.arange(t_resp, device=device)[None, :]
    pos = pos.clamp(max=logits.shape[1] - 1)
    sel = logits.gather(1, pos[:, :, None].expand(b, t_resp, logits.shape[-1]))
    logprobs = torch.log_softmax(sel, dim=-1)
    tok = targets.gather(1, pos).long()
    logp = logprobs.gather(-1, tok[:, :, None]).squeeze(-1)
    return logp, token_entropy(logprobs) if with_entropy else None


@dataclass
class LogprobGap:
    """|engine log-prob - trainer log-prob| of pi_old over the model tokens of the batches it is given.

    The rollout engine sampled with its own copy of the policy (vLLM: other kernels, weights synced after each
    update); a gap well above numerical noise means the engine is off-policy (a missed sync, a sampler filter).
    """

    total: float = 0.0
    worst: float = 0.0
    tokens: int = 0

    def add(self, batch: TokenBatch, logp: torch.Tensor) -> None:
        # Tokens the engine did not sample (an EOS the rollout appends at a tool overrun) carry NaN: skipped.
        sampled = batch.response_mask * torch.isfinite(batch.rollout_logprobs)
        gap = (batch.rollout_logprobs - logp.detach().to(sampled.device)).abs().nan_to_num(0.0) * sampled
        self.total += float(gap.sum())
        self.worst = max(self.worst, float(gap.max()) if gap.numel() else 0.0)
        self.tokens += int(sampled.sum())

    @classmethod
    def merge(cls, parts: Sequence[LogprobGap]) -> LogprobGap:
        """One gap over the tokens of all ``parts`` (the ranks' shares of an update)."""
        return cls(sum(p.total for p in parts), max((p.worst for p in parts), default=0.0),
                   sum(p.tokens for p in parts))

    def metrics(self) -> dict[str, float]:
        if not self.tokens:
            return {}
        return {"train/rollout_logprob_diff_mean": self.total / self.tokens, "train/rollout_logprob_diff_max": self.worst}


def sequence_rewards(rows: Sequence[RolloutRow], *, max_len: int, overlong_cache: int) -> torch.Tensor:
    """Rewards [B], with DAPO overlong shaping added when ``overlong_cache`` > 0."""
    rewards = torch.tensor([r.reward for r in rows], dtype=torch.float32)
    if overlong_cache > 0:
        lengths = torch.tensor([sum(r.loss_mask) for r in rows], dtype=torch.float32)
        rewards = rewards + overlong_reward_shaping(lengths, max_len, overlong_cache)
    return rewards


def token_advantages(
    rows: Sequence[RolloutRow],
    batch: TokenBatch,
    rewards: torch.Tensor,
    *,
    estimator: str,
    norm_by_std: bool,
    attribution: str,
    reset_at_masked: bool = False,
) -> torch.Tensor:
    """Advantages [B, T] of the rows: GRPO (soft or hard tree attribution) or REINFORCE++ (batch whitening)."""
    groups = [r.group_id for r in rows]
    mask = batch.response_mask
    if estimator == "grpo":
        seq = grpo_advantages(rewards, groups, norm_by_std=norm_by_std)
        if attribution == "hard":
            return arpo_hard_attribution(seq, batch.segment_ids, mask)
        return arpo_soft_attribution(seq, mask)
    baseline_groups = groups if estimator == "reinforce_pp_baseline" else None
    return reinforce_pp_advantages(rewards, mask, group_ids=baseline_groups, reset_at_masked=reset_at_masked)
