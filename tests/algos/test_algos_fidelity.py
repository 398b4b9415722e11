"""Fidelity to the released AEPO/ARPO verl fork, and the switches where we keep our own (finite) behaviour.

Released = `AEPO/verl_aepo_entropy/verl/trainer/ppo/core_algos.py` (agg_loss, compute_policy_loss*, kl_penalty,
compute_reinforce_plus_plus_outcome_advantage) and `.../workers/actor/dp_actor.py::update_policy`.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from aepo_agent.algos import (
    aggregate,
    discounted_returns,
    entropy_aware_advantages,
    kl_penalty,
    policy_loss,
    reinforce_pp_advantages,
)

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # masked token sum S = 7, B = 2, T = 3
SEQ_MODES = [
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
    "seq-mean-token-sum-norm-rows",
]


# 1. seq-mean-token-sum-norm (released verl) and seq-mean-token-sum-norm-rows (Dr. GRPO / oat / TRL dr_grpo)


def test_seq_mean_token_sum_norm_is_released_verl_sum_over_padded_length():
    # verl agg_loss: torch.sum(seq_losses) / loss_mask.shape[-1]  -> no division by the row count
    assert aggregate(X, M, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 3)
    assert aggregate(X, M, "seq-mean-token-sum-norm", norm_len=7).item() == pytest.approx(1.0)


def test_seq_mean_token_sum_norm_rows_is_dr_grpo():
    # oat: masked_sum(loss, mask, axis=1) / generate_max_length, then .mean() over rows -> S / (B * L)
    assert aggregate(X, M, "seq-mean-token-sum-norm-rows").item() == pytest.approx(7 / (2 * 3))
    assert aggregate(X, M, "seq-mean-token-sum-norm-rows", norm_len=7).item() == pytest.approx(0.5)
    assert aggregate(X, M, "seq-mean-token-sum-norm-rows", normalizer=4.0).item() == pytest.approx(
        7 / (4 * 3)
    )


@pytest.mark.parametrize("mode", SEQ_MODES)
def test_normalizer_is_verl_micro_batch_weight_for_every_seq_mode(mode: str):
    # normalizer=N gives the unnormalised value times B/N: dp_actor's len(micro_batch) / ppo_mini_batch_size
    base = aggregate(X, M, mode).item()
    assert aggregate(X, M, mode, normalizer=5.0).item() == pytest.approx(base * 2 / 5)


def test_released_mode_over_micro_batches_reproduces_dp_actor_accumulation():
    # mini-batch of 3 rows split into micro-batches of 2 and 1 rows with different padded widths T
    mb1, m1 = X, M  # S = 7, T = 3
    mb2, m2 = torch.tensor([[2.0, 2.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # S = 6, T = 4
    ours = sum(aggregate(x, m, "seq-mean-token-sum-norm", normalizer=3.0) for x, m in ((mb1, m1), (mb2, m2)))
    released = (7 / 3) * (2 / 3) + (6 / 4) * (1 / 3)  # agg_loss(mb) * len(mb) / ppo_mini_batch_size
    assert float(ours) == pytest.approx(released)


def test_normalizer_and_norm_len_must_be_positive():
    with pytest.raises(ValueError, match="normalizer"):
        aggregate(X, M, "seq-mean-token-sum", normalizer=0.0)
    with pytest.raises(ValueError, match="norm_len"):
        aggregate(X, M, "seq-mean-token-sum-norm-rows", norm_len=0)


# 2. Policy log-ratio clamp (released AEPO fork: none; upstream verl and our default: +-20)


def _one_token_grad(log_ratio: float, adv: float, kind: str, **kw) -> torch.Tensor:
    logp = torch.tensor([[-1.0]], requires_grad=True)
    out = policy_loss(
        logp, logp.detach() - log_ratio, torch.tensor([adv]), torch.ones(1, 1),
        kind=kind, clip_low=0.2, clip_high=0.2, **kw,
    )  # fmt: skip
    out.loss.backward()
    assert logp.grad is not None
    return logp.grad


def test_log_ratio_clamp_none_keeps_released_aepo_upper_bound_gradient():
    # log-ratio 30, A > 0, AEPO: released gradient weight F = 1 + eps_h; the clamp at 20 zeroes it
    assert -_one_token_grad(30.0, 1.0, "aepo", log_ratio_clamp=None).item() == pytest.approx(1.2)
    assert _one_token_grad(30.0, 1.0, "aepo", log_ratio_clamp=20.0).item() == 0.0
    assert _one_token_grad(30.0, 1.0, "aepo").item() == 0.0


def test_log_ratio_clamp_default_is_20_and_keeps_gradients_finite():
    assert inspect.signature(policy_loss).parameters["log_ratio_clamp"].default == 20.0
    for kind, adv in (("ppo", 1.0), ("ppo", -1.0), ("aepo", 1.0), ("gppo", 1.0)):
        assert torch.isfinite(_one_token_grad(100.0, adv, kind)).all(), kind
        # released (no clamp): fp32 exp(100) = inf, and the gradient is NaN (ppo: 0 * inf) or inf (aepo, gppo)
        assert not torch.isfinite(_one_token_grad(100.0, adv, kind, log_ratio_clamp=None)).any(), kind
    with pytest.raises(ValueError, match="log_ratio_clamp"):
        _one_token_grad(1.0, 1.0, "ppo", log_ratio_clamp=0.0)


# 3. KL estimators: low_var_kl = released kl_penalty (result clamped to [-10, 10]); k3 unclamped


def _released_low_var_kl(r: float) -> float:
    """verl (AEPO fork) kl_penalty 'low_var_kl': clamp(exp(r) - r - 1, -10, 10), r = ref - logp."""
    return min(max(math.exp(r) - r - 1.0, -10.0), 10.0)


@pytest.mark.parametrize("r", [-30.0, -12.0, -5.0, 0.5, 2.0, 3.0, 30.0])
@pytest.mark.parametrize("clamp", [None, 20.0])
def test_low_var_kl_matches_released_including_its_clamps(r: float, clamp: float | None):
    logp = torch.tensor([-40.0], requires_grad=True)
    kl = kl_penalty(logp, torch.tensor([-40.0 + r]), "low_var_kl", log_ratio_clamp=clamp)
    assert kl.item() == pytest.approx(_released_low_var_kl(r), rel=1e-5)
    kl.sum().backward()
    assert logp.grad is not None
    hit = abs(math.exp(r) - r - 1.0) > 10.0
    expected_grad = 0.0 if hit else -(math.exp(r) - 1.0)  # d/dlogp of exp(r) - r - 1 with r = ref - logp
    assert logp.grad.item() == pytest.approx(expected_grad, rel=1e-5, abs=1e-7)


def test_low_var_kl_log_ratio_clamp_only_matters_past_fp32_overflow():
    assert inspect.signature(kl_penalty).parameters["log_ratio_clamp"].default == 20.0
    for clamp, grad_ok in ((20.0, True), (None, False)):
        logp = torch.tensor([-110.0], requires_grad=True)
        kl = kl_penalty(logp, torch.tensor([-10.0]), "low_var_kl", log_ratio_clamp=clamp)  # r = 100
        assert kl.item() == 10.0
        kl.backward()
        assert logp.grad is not None
        assert bool(torch.isfinite(logp.grad).all()) is grad_ok  # released: 0 * exp(100) = 0 * inf = NaN
    assert math.isnan(
        kl_penalty(torch.tensor([-math.inf]), torch.tensor([-1.0]), log_ratio_clamp=None).item()
    )
    assert kl_penalty(torch.tensor([-math.inf]), torch.tensor([-1.0])).item() == 10.0


def test_k3_is_the_unclamped_textbook_estimator():
    kl = kl_penalty(torch.tensor([-40.0]), torch.tensor([-10.0]), "k3")  # r = 30
    assert kl.item() == pytest.approx(math.exp(30.0) - 31.0, rel=1e-5)
    kl = kl_penalty(torch.tensor([-10.0]), torch.tensor([-40.0]), "k3")  # r = -30
    assert kl.item() == pytest.approx(29.0, rel=1e-6)


# 4. Finite values where the released code gives NaN


def test_entropy_adv_one_token_is_finite_and_unscaled():
    # released: std of one value is NaN (unbiased), NaN == 0 is False, so A becomes NaN
    out = entropy_aware_advantages(torch.tensor([2.0]), torch.tensor([[0.7]]), torch.ones(1, 1), coef=0.2)
    assert out.tolist() == [[2.0]]


@pytest.mark.parametrize("value", [0.1, 0.3, 1.7, 2.9])
@pytest.mark.parametrize("n", [3, 7, 13])
def test_entropy_adv_all_equal_entropies_leave_advantage_unscaled(value: float, n: int):
    # fp32 rounding makes std a tiny non-zero number (not 0), so a naive z-score is about +-1 (released too)
    out = entropy_aware_advantages(torch.ones(1), torch.full((1, n), value), torch.ones(1, n), coef=0.2)
    assert out.flatten().tolist() == pytest.approx([1.0] * n, abs=1e-6)


def test_entropy_adv_constant_micro_batch_next_to_a_varied_one():
    h = torch.tensor([[0.3, 0.3], [0.3, 0.3], [1.0, 3.0]])
    out = entropy_aware_advantages(torch.ones(3), h, torch.ones(3, 2), coef=0.2, stats="micro_batch",
                                   micro_batch_ids=[0, 0, 1])  # fmt: skip
    z = 1 / math.sqrt(2)  # (3 - 2) / std([1, 3]) with unbiased std sqrt(2)
    assert out.flatten().tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0, 1 - 0.2 * z, 1 + 0.2 * z], abs=1e-6)


def test_all_masked_row_gives_finite_loss_and_gradient():
    # released seq-mean-token-mean divides each row by its token count: 0 / 0 = NaN for an all-masked row
    empty = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert aggregate(X, empty, "seq-mean-token-mean").item() == pytest.approx(1.5 / 2)
    assert aggregate(X, torch.zeros(2, 3), "token-mean").item() == 0.0
    logp = torch.tensor([[-1.0, -2.0, -1.5], [-0.5, -0.7, -0.9]], requires_grad=True)
    out = policy_loss(logp, logp.detach() + 0.1, torch.tensor([1.0, -1.0]), empty, kind="grpo")
    out.loss.backward()
    assert logp.grad is not None
    assert math.isfinite(out.loss.item()) and torch.isfinite(logp.grad).all()
    assert logp.grad[1].tolist() == [0.0, 0.0, 0.0]
    assert all(math.isfinite(v) for v in out.metrics.values())


# 5. REINFORCE++ returns across tool-result tokens

ROW_REWARDS = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])  # [model, model, tool, tool, model(reward)]
ROW_MASK = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0]])


def test_discounted_returns_carry_across_tool_tokens_by_default():
    ret = discounted_returns(ROW_REWARDS, ROW_MASK, gamma=0.9)
    # tool tokens neither earn reward nor discount; they hold the carried return (masked out later)
    assert ret.flatten().tolist() == pytest.approx([0.81, 0.9, 1.0, 1.0, 1.0])
    assert inspect.signature(reinforce_pp_advantages).parameters["reset_at_masked"].default is False


def test_discounted_returns_reset_at_masked_is_verls_loop():
    # verl: running = r_t + gamma * running; returns[t] = running; running *= mask[t]
    ret = discounted_returns(ROW_REWARDS, ROW_MASK, gamma=0.9, reset_at_masked=True)
    assert ret.flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 0.9, 1.0])  # model tokens 0, 1 get 0
    # released ARPO/AEPO pass verl the attention-based response_mask (1 on tool tokens): no reset inside
    ones = torch.ones_like(ROW_MASK)
    verl = discounted_returns(ROW_REWARDS, ones, gamma=0.9, reset_at_masked=True)
    assert verl.flatten().tolist() == pytest.approx([0.9**4, 0.9**3, 0.81, 0.9, 1.0])
    assert torch.equal(verl, discounted_returns(ROW_REWARDS, ones, gamma=0.9))  # no holes: both loops agree


def _whiten(values: list[float]) -> list[float]:
    t = torch.tensor(values)
    return ((t - t.mean()) / t.var(unbiased=True).add(1e-8).sqrt()).tolist()


def test_reinforce_pp_reset_at_masked_whitens_verls_returns():
    mask = torch.cat([ROW_MASK, torch.ones(1, 5)])
    rewards = torch.tensor([1.0, 0.0])
    carry = reinforce_pp_advantages(rewards, mask, gamma=0.9)
    reset = reinforce_pp_advantages(rewards, mask, gamma=0.9, reset_at_masked=True)
    assert carry[mask > 0].tolist() == pytest.approx(_whiten([0.81, 0.9, 1.0] + [0.0] * 5), abs=1e-5)
    assert reset[mask > 0].tolist() == pytest.approx(_whiten([0.0, 0.0, 1.0] + [0.0] * 5), abs=1e-5)
    assert reset[0, 2:4].tolist() == [0.0, 0.0]
