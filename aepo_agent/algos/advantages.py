"""Advantage estimators: GRPO, REINFORCE++, ARPO shared-prefix attribution and AEPO entropy-aware scaling.

All functions are pure: tensors in, tensors out, no trainer state. Token tensors are [B, T] with a float `mask`
(1 = model token that enters the loss, 0 = prompt/tool-result/padding). Responses are left-aligned (column 0 is
the first response token), so a prefix copied into a branch clone sits at the same columns as in its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from aepo_agent.algos._groups import GroupIds, group_index, segment_mean_std

EntropyStats = Literal["batch", "group", "micro_batch"]


def _check_tokens(name: str, x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.shape != mask.shape or x.dim() != 2:
        raise ValueError(f"{name} must be [B, T] like mask {tuple(mask.shape)}, got {tuple(x.shape)}")


def _as_token_adv(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sequence advantage [B] to tokens [B, T]; pass [B, T] through."""
    if adv.dim() == 1:
        if adv.shape[0] != mask.shape[0]:
            raise ValueError(f"advantages [B] must have B={mask.shape[0]} rows, got {adv.shape[0]}")
        return adv[:, None].expand_as(mask)
    _check_tokens("advantages", adv, mask)
    return adv


def grpo_advantages(
    rewards: torch.Tensor, group_ids: GroupIds, *, norm_by_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO outcome advantage per sequence: (R - mean_g R) / (std_g R + eps), std unbiased (verl/ARPO).

    A singleton group uses mean 0 and std 1 (as verl), so its advantage is R / (1 + eps), or R without std.
    """
    if rewards.dim() != 1:
        raise ValueError(
            f"rewards must be a 1-D tensor [B] of sequence rewards, got shape {tuple(rewards.shape)}"
        )
    r = rewards.float() if not rewards.is_floating_point() else rewards
    idx = group_index(group_ids, r.shape[0], r.device)
    mean, std, count = segment_mean_std(r, idx)
    single = count < 2
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    centred = r - mean[idx]
    return centred / (std[idx] + eps) if norm_by_std else centred


def place_sequence_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put each sequence reward [B] on its last mask token, giving token rewards [B, T] (verl reward manager)."""
    if rewards.dim() != 1 or rewards.shape[0] != mask.shape[0]:
        raise ValueError(f"rewards must be [B] with B={mask.shape[0]}, got shape {tuple(rewards.shape)}")
    m = mask > 0
    cols = torch.arange(mask.shape[1], device=mask.device)
    last = torch.where(m, cols, torch.full_like(cols, -1)).amax(dim=1)
    if bool((last < 0).any()):
        raise ValueError("every row needs at least one mask token to carry its reward")
    out = torch.zeros(mask.shape, dtype=torch.promote_types(rewards.dtype, torch.float32), device=mask.device)
    out[torch.arange(mask.shape[0], device=mask.device), last] = rewards.to(out.dtype)
    return out


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over mask tokens, var unbiased (verl `masked_whiten`); zero off the mask."""
    m = mask.to(values.dtype)
    n = m.sum()
    mean = (values * m).sum() / n.clamp(min=1.0)
    var = ((values - mean).pow(2) * m).sum() / (n - 1.0).clamp(min=1.0)
    return (values - mean) * torch.rsqrt(var + eps) * m


def discounted_returns(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, reset_at_masked: bool = False
) -> torch.Tensor:
    """Returns G_t = r_t + gamma * G_{t+1} over mask tokens [B, T] (REINFORCE++, verl reinforce_plus_plus loop).

    Default: tokens off the mask (tool results) neither earn reward nor discount, so the return carries across
    them (they hold the carried value). reset_at_masked=True is verl's loop (running = r_t + gamma * running;
    G_t = running; running *= mask_t), which zeroes the return before every masked token. The released
    ARPO/AEPO trainer passes the attention-based response mask there (1 on tool tokens), so it only resets
    after EOS; with the loss mask the reset gives 0 to every model token before the last tool result.
    """
    _check_tokens("token_rewards", token_rewards, mask)
    m = mask.to(token_rewards.dtype)
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros_like(token_rewards[:, 0])
    for t in reversed(range(token_rewards.shape[1])):
        if reset_at_masked:
            running = token_rewards[:, t] + gamma * running
            returns[:, t] = running
            running = running * m[:, t]
        else:
            running = torch.where(m[:, t] > 0, token_rewards[:, t] + gamma * running, running)
            returns[:, t] = running
    return returns


def reinforce_pp_advantages(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    *,
    group_ids: GroupIds | None = None,
    gamma: float = 1.0,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    reset_at_masked: bool = False,
) -> torch.Tensor:
    """REINFORCE++ token advantages [B, T]: discounted return whitened over the whole batch's mask tokens.

    `rewards` is [B] (placed on the last mask token) or token rewards [B, T]; `kl` [B, T] (log pi_old - log pi_ref)
    is subtracted from the token rewards times `kl_coef`. With `group_ids` this is REINFORCE++-baseline: the
    sequence score minus its group mean (singleton: mean 0), broadcast to tokens, then whitened.
    Returns come from `discounted_returns`: by default they carry across tool-result tokens;
    reset_at_masked=True restores verl's loop (reset at every masked token).
    """
    token_r = place_sequence_rewards(rewards, mask) if rewards.dim() == 1 else rewards.float()
    _check_tokens("rewards", token_r, mask)
    m = mask.to(token_r.dtype)
    if kl_coef != 0.0:
        if kl is None:
            raise ValueError(
                "kl_coef != 0 needs kl=[B, T] per-token KL (e.g. kl_penalty(old_logp, ref_logp, 'k1'))"
            )
        _check_tokens("kl", kl, mask)
        token_r = token_r - kl_coef * kl.detach() * m
    token_r = token_r * m
    if group_ids is not None:
        score = token_r.sum(dim=1)
        idx = group_index(group_ids, score.shape[0], score.device)
        mean, _, count = segment_mean_std(score, idx)
        mean = torch.where(count < 2, torch.zeros_like(mean), mean)
        returns = (score - mean[idx])[:, None] * m
    else:
        returns = discounted_returns(token_r, m, gamma, reset_at_masked)
    return masked_whiten(returns, m)


def token_origins(parents: Sequence[int | None], branch_points: Sequence[int], length: int) -> torch.Tensor:
    """Origin id [B, T] of every token in a branch tree: the row whose sampling produced that token.

    Row i was cloned from row `parents[i]` (None for a root) and copies its first `branch_points[i]` response
    tokens, so token t of row i has origin i if t >= branch_points[i], else the origin of token t of the parent.
    """
    n = len(parents)
    if len(branch_points) != n:
        raise ValueError(
            f"parents ({n}) and branch_points ({len(branch_points)}) must have one entry per row"
        )
    out = torch.empty(n, length, dtype=torch.long)
    done = [False] * n
    cols = torch.arange(length)

    def fill(i: int, seen: frozenset[int]) -> None:
        if done[i]:
            return
        p, k = parents[i], branch_points[i]
        own = torch.full((length,), i, dtype=torch.long)
        if p is None:
            out[i] = own
        else:
            if not 0 <= p < n or p in seen or p == i:
                raise ValueError(f"row {i} has parent {p}: parents must be row indices forming a tree")
            fill(p, seen | {i})
            out[i] = torch.where(cols < k, out[p], own)
        done[i] = True

    for i in range(n):
        fill(i, frozenset())
    return out


def arpo_soft_attribution(seq_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ARPO soft attribution (paper default, released code): broadcast each sequence's advantage to its tokens."""
    return _as_token_adv(seq_adv, mask) * mask.to(seq_adv.dtype)


def arpo_hard_attribution(seq_adv: torch.Tensor, origins: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ARPO hard attribution: a token shared by d branches gets the mean advantage of those d trajectories.

    `origins` [B, T] comes from `token_origins`; tokens (i, t) and (j, t) are the same shared token iff their
    origins are equal. Unshared tokens keep their own trajectory advantage; off-mask tokens get 0.
    """
    _check_tokens("origins", origins, mask)
    if seq_adv.dim() != 1 or seq_adv.shape[0] != mask.shape[0]:
        raise ValueError(f"seq_adv must be [B] with B={mask.shape[0]}, got shape {tuple(seq_adv.shape)}")
    m = mask > 0
    cols = torch.arange(mask.shape[1], device=mask.device).expand_as(origins)
    key = origins.to(mask.device) * mask.shape[1] + cols
    _, seg = torch.unique(key[m], return_inverse=True)
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(origins)[m]
    mean, _, _ = segment_mean_std(seq_adv[rows], seg)
    out = torch.zeros(mask.shape, dtype=seq_adv.dtype, device=mask.device)
    out[m] = mean[seg]
    return out


def entropy_aware_advantages(
    adv: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    *,
    coef: float = 0.2,
    stats: EntropyStats = "batch",
    group_ids: GroupIds | None = None,
    micro_batch_ids: GroupIds | None = None,
) -> torch.Tensor:
    """AEPO entropy-aware advantage A * (1 + coef * z), z = detached entropy z-score over mask tokens.

    The z-score uses unbiased std (std 0 -> 1) over all mask tokens of the given tensors ("batch"), of each
    prompt group ("group", needs group_ids) or of each micro-batch ("micro_batch", needs per-row
    micro_batch_ids; the released code's statistics). Off-mask tokens are left unscaled. A partition with one
    token gets z = 0 (released: unbiased std of one value is NaN, so A becomes NaN), and all-equal entropies
    give exactly z = 0 (stats are taken after subtracting the partition max; a plain fp32 mean/std, as released,
    leaves a tiny non-zero std and z around +-1).
    """
    a = _as_token_adv(adv, mask)
    _check_tokens("entropy", entropy, mask)
    n = mask.shape[0]
    if stats == "batch":
        part = torch.zeros(n, dtype=torch.long, device=mask.device)
    elif stats == "group":
        if group_ids is None:
            raise ValueError("stats='group' needs group_ids (one prompt-group label per row)")
        part = group_index(group_ids, n, mask.device)
    elif stats == "micro_batch":
        if micro_batch_ids is None:
            raise ValueError("stats='micro_batch' needs micro_batch_ids (one micro-batch label per row)")
        part = group_index(micro_batch_ids, n, mask.device)
    else:
        raise ValueError(f"stats must be 'batch', 'group' or 'micro_batch', got {stats!r}")
    m = mask > 0
    h = entropy.detach().to(a.dtype)
    tok_part = part[:, None].expand_as(mask)[m]
    z = torch.zeros_like(h)
    if bool(m.any()):
        n_part = int(part.max().item()) + 1
        ref = torch.zeros(n_part, dtype=h.dtype, device=h.device)
        hv = h[m] - ref.scatter_reduce(0, tok_part, h[m], "amax", include_self=False)[tok_part]
        mean, std, count = segment_mean_std(hv, tok_part)
        std = torch.where((std == 0) | (count < 2), torch.ones_like(std), std)
        z[m] = (hv - mean[tok_part]) / std[tok_part]
    return a * (1.0 + coef * z)
