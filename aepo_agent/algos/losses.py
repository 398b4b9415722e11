"""Policy-gradient losses (PPO dual-clip, GRPO, DAPO, GPPO, CISPO, AEPO), aggregation modes and KL estimators.

Per-token tensors are [B, T] with a float `mask` (1 = token enters the loss). delta = exp(logp - old_logp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

from aepo_agent.algos.advantages import _as_token_adv

LossKind = Literal["ppo", "grpo", "dapo", "gppo", "cispo", "aepo"]
AggMode = Literal[
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
    "seq-mean-token-sum-norm-rows",
]
KLKind = Literal["low_var_kl", "k1", "k2", "k3"]

# Kind defaults: DAPO uses clip-higher; GRPO (DeepSeekMath) averages per sequence; the rest are token-mean.
_DEFAULT_CLIP_HIGH: dict[str, float] = {"dapo": 0.28}
_DEFAULT_AGG: dict[str, AggMode] = {"grpo": "seq-mean-token-mean"}
# Default log-ratio clamp before exp: upstream verl's; the released AEPO/ARPO fork has none (fp32 exp overflows
# past ~88.7, and the backward pass then gives NaN/inf).
_LOG_RATIO_LIMIT = 20.0


@dataclass(frozen=True)
class LossOutput:
    """A scalar loss to backpropagate plus detached float metrics for logging."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * m) / max(sum(m), 1): 0 with no mask token (verl's masked_mean, / (sum(m) + 1e-8), is 0 too)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def aggregate(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    mode: AggMode = "token-mean",
    *,
    normalizer: float | None = None,
    norm_len: int | None = None,
) -> torch.Tensor:
    """Reduce per-token losses [B, T] to a scalar (verl `agg_loss` modes plus Dr. GRPO's), S = masked token sum.

    token-mean: S / #mask tokens (`normalizer` replaces the token count).
    seq-mean-token-sum: S / B.  seq-mean-token-mean: mean over rows of row token means; an all-masked row counts
    as 0 (released verl divides it 0 / 0 = NaN).
    seq-mean-token-sum-norm (released verl): S / L, with no row count.
    seq-mean-token-sum-norm-rows (Dr. GRPO: oat `masked_sum(..) / generate_max_length` then row mean; TRL
    dr_grpo): S / (B * L).  L = norm_len, default T (verl's `loss_mask.shape[-1]`, the padded response width).
    For every seq-* mode `normalizer` N gives the value without it times B / N, which is verl dp_actor's
    micro-batch weight len(micro_batch) / ppo_mini_batch_size: pass the mini-batch row count and the
    micro-batch losses add up to the mini-batch loss when gradients are accumulated.
    """
    if loss_mat.shape != mask.shape or loss_mat.dim() != 2:
        raise ValueError(f"loss_mat {tuple(loss_mat.shape)} and mask {tuple(mask.shape)} must both be [B, T]")
    if normalizer is not None and not normalizer > 0:
        raise ValueError(f"normalizer must be > 0 (a token or row count), got {normalizer}")
    if norm_len is not None and not norm_len > 0:
        raise ValueError(f"norm_len must be > 0 (the constant response length L), got {norm_len}")
    m = mask.to(loss_mat.dtype)
    total = (loss_mat * m).sum()
    b = float(loss_mat.shape[0])
    rows = b if normalizer is None else float(normalizer)
    length = float(loss_mat.shape[1] if norm_len is None else norm_len)
    if mode == "token-mean":
        return total / (m.sum().clamp(min=1.0) if normalizer is None else normalizer)
    if mode == "seq-mean-token-sum":
        return total / rows
    if mode == "seq-mean-token-mean":
        return ((loss_mat * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)).sum() / rows
    if mode == "seq-mean-token-sum-norm":
        return total / length * (b / rows)
    if mode == "seq-mean-token-sum-norm-rows":
        return total / (rows * length)
    raise ValueError(f"agg must be one of {get_args(AggMode)}, got {mode!r}")


def kl_penalty(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    kind: KLKind = "low_var_kl",
    *,
    log_ratio_clamp: float | None = _LOG_RATIO_LIMIT,
) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from log-probs of the sampled tokens.

    k1 = logp - ref; k2 = (logp - ref)^2 / 2; k3 = exp(ref - logp) - (ref - logp) - 1 (GRPO, TRL), unclamped;
    low_var_kl = k3 clamped to [-10, 10] (released verl `kl_penalty`), with r = ref - logp first clamped to
    +-log_ratio_clamp (upstream verl; None = the released AEPO fork). Both give the same value on every finite
    input (|r| >= 20 is past the [-10, 10] clamp); without the r clamp, r > ~88.7 overflows exp (grad NaN).
    """
    diff = logp - ref_logp
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff.pow(2)
    if kind == "k3":
        return torch.exp(-diff) - (-diff) - 1.0
    if kind == "low_var_kl":
        log_r = -diff if log_ratio_clamp is None else (-diff).clamp(-log_ratio_clamp, log_ratio_clamp)
        return (torch.exp(log_r) - log_r - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"kl_kind must be one of {get_args(KLKind)}, got {kind!r}")


def _bound(value: float, ratio: torch.Tensor, gradient_preserving: bool) -> torch.Tensor:
    """A clip bound: constant, or value * delta / sg(delta), which equals `value` but carries delta's gradient."""
    if gradient_preserving:
        return value * ratio / ratio.detach()
    return torch.full_like(ratio, value)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: LossKind = "ppo",
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip_c: float | None = 3.0,
    agg: AggMode | None = None,
    cispo_eps_low: float | None = None,
    cispo_eps_high: float = 4.0,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_kind: KLKind = "low_var_kl",
    normalizer: float | None = None,
    norm_len: int | None = None,
    log_ratio_clamp: float | None = _LOG_RATIO_LIMIT,
) -> LossOutput:
    """Clipped policy-gradient loss of the given kind, aggregated over mask tokens, plus optional KL term.

    ppo/grpo/dapo: max(-A*delta, -A*clip(delta, 1-clip_low, 1+clip_high)); gppo makes both bounds
    gradient-preserving ((1 +- eps) * delta / sg(delta)), aepo only the upper one. Dual clip (verl, c > 1) caps
    the loss of A < 0 tokens at -c*A; pass dual_clip_c=None to disable. cispo: -sg(clip(delta, 1-cispo_eps_low,
    1+cispo_eps_high)) * A * logp (no lower bound when cispo_eps_low is None). clip_high defaults to 0.28 for
    dapo, else 0.2; agg defaults to seq-mean-token-mean for grpo, else token-mean. AEPO's entropy-aware
    advantage is applied to `adv` before this call (``entropy_aware_advantages``; the trainer does it in one place).
    log_ratio_clamp clamps logp - old_logp (and the low_var_kl log-ratio) to +-c before exp, as upstream verl
    does; None is the released AEPO/ARPO fork (no clamp), whose fp32 exp overflows past ~88.7 and gives NaN/inf
    gradients. With the clamp a token past +-c gets no gradient: this changes the gradient-preserving bounds of
    gppo/aepo (released keeps F = 1 +- eps there) and, with dual_clip_c=None, A < 0 tokens (F = delta).
    """
    if kind not in get_args(LossKind):
        raise ValueError(f"kind must be one of {get_args(LossKind)}, got {kind!r}")
    for name, x in (("logp", logp), ("old_logp", old_logp)):
        if x.shape != mask.shape or x.dim() != 2:
            raise ValueError(f"{name} must be [B, T] like mask {tuple(mask.shape)}, got {tuple(x.shape)}")
    if dual_clip_c is not None and dual_clip_c <= 1.0:
        raise ValueError(f"dual_clip_c must be > 1 (verl uses 3.0) or None to disable, got {dual_clip_c}")
    if kl_coef != 0.0 and ref_logp is None:
        raise ValueError("kl_coef != 0 needs ref_logp (reference-policy log-probs of the same tokens)")
    if log_ratio_clamp is not None and not log_ratio_clamp > 0:
        raise ValueError(
            f"log_ratio_clamp must be > 0 (upstream verl: 20) or None for no clamp, got {log_ratio_clamp}"
        )
    c_high = _DEFAULT_CLIP_HIGH.get(kind, 0.2) if clip_high is None else clip_high
    mode: AggMode = _DEFAULT_AGG.get(kind, "token-mean") if agg is None else agg
    m = mask.to(logp.dtype)
    a = _as_token_adv(adv, mask).detach().to(logp.dtype)
    log_ratio = logp - old_logp.detach()
    if log_ratio_clamp is not None:
        log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    metrics: dict[str, torch.Tensor] = {}
    if kind == "cispo":
        lo = None if cispo_eps_low is None else 1.0 - cispo_eps_low
        weight = ratio.clamp(min=lo, max=1.0 + cispo_eps_high).detach()
        pg = -weight * a * logp
        metrics["clipfrac"] = _masked_mean((weight != ratio.detach()).to(m.dtype), m)
    else:
        lo_v, hi_v = 1.0 - clip_low, 1.0 + c_high
        upper = _bound(hi_v, ratio, kind in ("gppo", "aepo"))
        lower = _bound(lo_v, ratio, kind == "gppo")
        clipped = torch.where(ratio > hi_v, upper, torch.where(ratio < lo_v, lower, ratio))
        loss1, loss2 = -a * ratio, -a * clipped
        pg = torch.maximum(loss1, loss2)
        metrics["clipfrac"] = _masked_mean((loss2 > loss1).to(m.dtype), m)
        if dual_clip_c is not None:
            loss3 = -a * dual_clip_c
            metrics["clipfrac_dual"] = _masked_mean(((pg > loss3) & (a < 0)).to(m.dtype), m)
            pg = torch.where(a < 0, torch.minimum(pg, loss3), pg)
        r = ratio.detach()
        metrics["clipfrac_low"] = _masked_mean(((r < lo_v) & (a < 0)).to(m.dtype), m)
        metrics["clipfrac_high"] = _masked_mean(((r > hi_v) & (a > 0)).to(m.dtype), m)

    per_token = pg
    if kl_coef != 0.0 and ref_logp is not None:
        kl = kl_penalty(logp, ref_logp.detach(), kl_kind, log_ratio_clamp=log_ratio_clamp)
        per_token = pg + kl_coef * kl
        metrics["kl"] = _masked_mean(kl.detach(), m)
    loss = aggregate(per_token, m, mode, normalizer=normalizer, norm_len=norm_len)

    with torch.no_grad():
        metrics["pg_loss"] = aggregate(pg, m, mode, normalizer=normalizer, norm_len=norm_len)
        metrics["approx_kl"] = _masked_mean(-log_ratio, m)
        metrics["ratio_mean"] = _masked_mean(ratio, m)
        on = m > 0
        metrics["ratio_max"] = ratio[on].max() if bool(on.any()) else torch.ones(())
        metrics["adv_mean"] = _masked_mean(a, m)
    return LossOutput(loss=loss, metrics={k: float(v.detach()) for k, v in metrics.items()})
