"""Policy losses, aggregation and KL against hand-computed values and the algorithms.md §3.3 gradient table."""

from __future__ import annotations

import math

import pytest
import torch

from aepo_agent.algos import aggregate, entropy_aware_advantages, kl_penalty, policy_loss


def _old_for(ratios: list[list[float]], logp: torch.Tensor) -> torch.Tensor:
    """old_logp such that exp(logp - old_logp) equals the given ratios."""
    return logp.detach() - torch.tensor(ratios).log()


# algorithms.md §3.3 table: F = -dL/dlogpi / A for one token, eps = 0.2, dual clip c = 3.
GRADIENT_TABLE = [
    # delta, A, F(ppo), F(aepo), F(gppo)
    (0.5, +1.0, 0.5, 0.5, 0.5),
    (0.5, -1.0, 0.0, 0.0, 0.8),
    (1.5, +1.0, 0.0, 1.2, 1.2),
    (1.5, -1.0, 1.5, 1.5, 1.5),
    (4.0, -1.0, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize(("delta", "adv", "f_ppo", "f_aepo", "f_gppo"), GRADIENT_TABLE)
def test_gradient_weight_table_by_autograd(
    delta: float, adv: float, f_ppo: float, f_aepo: float, f_gppo: float
):
    for kind, expected in (("ppo", f_ppo), ("aepo", f_aepo), ("gppo", f_gppo)):
        logp = torch.tensor([[-1.0]], requires_grad=True)
        out = policy_loss(
            logp,
            _old_for([[delta]], logp),
            torch.tensor([adv]),
            torch.ones(1, 1),
            kind=kind,
            clip_low=0.2,
            clip_high=0.2,
            dual_clip_c=3.0,
        )
        out.loss.backward()
        assert logp.grad is not None
        assert -logp.grad.item() / adv == pytest.approx(expected, abs=1e-6), kind


RATIOS = [[0.5, 1.5], [1.1, 4.0]]
ADV = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])


def _loss(kind: str, mask: torch.Tensor | None = None, **kw):
    logp = torch.full((2, 2), -1.0, requires_grad=True)
    return policy_loss(
        logp, _old_for(RATIOS, logp), ADV, torch.ones(2, 2) if mask is None else mask, kind=kind, **kw
    )


def test_ppo_dual_clip_token_mean_value_and_metrics():
    # per token: max(-.5,-.8)=-.5; max(-1.5,-1.2)=-1.2; 1.1; min(max(4,1.2),3)=3
    out = _loss("ppo")
    assert out.loss.item() == pytest.approx((-0.5 - 1.2 + 1.1 + 3.0) / 4, abs=1e-6)
    assert out.metrics["clipfrac"] == pytest.approx(0.25)
    assert out.metrics["clipfrac_dual"] == pytest.approx(0.25)
    assert out.metrics["clipfrac_high"] == pytest.approx(0.25)
    assert out.metrics["clipfrac_low"] == pytest.approx(0.0)
    assert out.metrics["ratio_mean"] == pytest.approx((0.5 + 1.5 + 1.1 + 4.0) / 4, abs=1e-6)
    assert out.metrics["ratio_max"] == pytest.approx(4.0, abs=1e-5)
    assert out.metrics["approx_kl"] == pytest.approx(
        -sum(math.log(r) for row in RATIOS for r in row) / 4, abs=1e-6
    )


def test_dual_clip_disabled_keeps_unbounded_negative_loss():
    assert _loss("ppo", dual_clip_c=None).loss.item() == pytest.approx((-0.5 - 1.2 + 1.1 + 4.0) / 4, abs=1e-6)


def test_dapo_uses_clip_higher_by_default():
    assert _loss("dapo").loss.item() == pytest.approx((-0.5 - 1.28 + 1.1 + 3.0) / 4, abs=1e-6)
    assert _loss("dapo", clip_high=0.2).loss.item() == pytest.approx(_loss("ppo").loss.item(), abs=1e-7)


def test_grpo_defaults_to_per_sequence_mean():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert _loss("grpo", mask=mask).loss.item() == pytest.approx(((-0.5 - 1.2) / 2 + 1.1) / 2, abs=1e-6)


@pytest.mark.parametrize("kind", ["aepo", "gppo"])
def test_gradient_preserving_kinds_have_the_ppo_forward_value(kind: str):
    assert _loss(kind).loss.item() == pytest.approx(_loss("ppo").loss.item(), abs=1e-6)


def test_cispo_value_gradient_and_bounds():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])
    out = policy_loss(
        logp, _old_for([[2.0, 8.0]], logp), adv, torch.ones(1, 2), kind="cispo", cispo_eps_high=4.0
    )
    # weights sg(clip(delta, max=5)) = [2, 5]; loss = mean(-w*A*logp) = mean(2, -10)
    assert out.loss.item() == pytest.approx(-4.0, abs=1e-5)
    out.loss.backward()
    assert logp.grad is not None
    assert logp.grad[0].tolist() == pytest.approx([-1.0, 2.5], abs=1e-5)
    assert out.metrics["clipfrac"] == pytest.approx(0.5)
    low = torch.tensor([[-1.0]])
    with_low = policy_loss(
        low, _old_for([[0.5]], low), torch.tensor([1.0]), torch.ones(1, 1), kind="cispo", cispo_eps_low=0.2
    )
    assert with_low.loss.item() == pytest.approx(-0.8 * -1.0, abs=1e-6)
    no_low = policy_loss(low, _old_for([[0.5]], low), torch.tensor([1.0]), torch.ones(1, 1), kind="cispo")
    assert no_low.loss.item() == pytest.approx(0.5, abs=1e-6)


def test_masked_tokens_do_not_contribute():
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logp = torch.full((2, 2), -1.0, requires_grad=True)
    out = policy_loss(logp, _old_for(RATIOS, logp), ADV, mask, kind="ppo")
    assert out.loss.item() == pytest.approx((-0.5 + 3.0) / 2, abs=1e-6)
    out.loss.backward()
    assert logp.grad is not None
    assert logp.grad[0, 1].item() == 0.0 and logp.grad[1, 0].item() == 0.0


def test_aggregation_modes_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(x, m, "token-mean").item() == pytest.approx(7 / 3)
    assert aggregate(x, m, "seq-mean-token-sum").item() == pytest.approx((3 + 4) / 2)
    assert aggregate(x, m, "seq-mean-token-mean").item() == pytest.approx((1.5 + 4) / 2)
    assert aggregate(x, m, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 3)  # released verl: S / T
    assert aggregate(x, m, "seq-mean-token-sum-norm-rows").item() == pytest.approx(7 / (2 * 3))  # Dr. GRPO
    assert aggregate(x, m, "seq-mean-token-sum-norm-rows", norm_len=7).item() == pytest.approx(0.5)
    assert aggregate(x, m, "token-mean", normalizer=7.0).item() == pytest.approx(1.0)
    assert aggregate(x, m, "seq-mean-token-sum", normalizer=4.0).item() == pytest.approx(7 / 4)
    empty_row = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert aggregate(x, empty_row, "seq-mean-token-mean").item() == pytest.approx(1.5 / 2)
    with pytest.raises(ValueError, match="agg must be one of"):
        aggregate(x, m, "sum")  # type: ignore[arg-type]


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.125)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-0.5) + 0.5 - 1.0, abs=1e-7)
    assert kl_penalty(logp, ref, "low_var_kl").item() == pytest.approx(math.exp(-0.5) + 0.5 - 1.0, abs=1e-7)
    far = kl_penalty(torch.tensor([-40.0]), torch.tensor([-10.0]), "low_var_kl")
    assert far.item() == pytest.approx(10.0)  # verl clamps the estimate to [-10, 10]
    with pytest.raises(ValueError, match="kl_kind"):
        kl_penalty(logp, ref, "k4")  # type: ignore[arg-type]


def test_kl_term_is_added_per_token_with_its_gradient():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])
    out = policy_loss(
        logp,
        logp.detach(),
        torch.zeros(1),
        torch.ones(1, 2),
        kind="ppo",
        ref_logp=ref,
        kl_coef=0.1,
        kl_kind="k1",
    )
    assert out.loss.item() == pytest.approx(0.1 * 0.5 / 2, abs=1e-7)
    assert out.metrics["kl"] == pytest.approx(0.25)
    out.loss.backward()
    assert logp.grad is not None
    assert logp.grad[0].tolist() == pytest.approx([0.05, 0.05], abs=1e-7)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp.detach(), torch.zeros(1), torch.ones(1, 2), kl_coef=0.1)


def test_entropy_aware_advantage_changes_the_loss_when_enabled():
    torch.manual_seed(0)
    logp = (torch.randn(3, 5) * 0.1 - 1.0).requires_grad_()
    old = logp.detach() + 0.05 * torch.randn(3, 5)
    adv, mask = torch.tensor([1.0, -0.5, 0.7]), torch.ones(3, 5)
    entropy = torch.rand(3, 5) * 3
    off = policy_loss(logp, old, adv, mask, kind="aepo")
    on = policy_loss(logp, old, entropy_aware_advantages(adv, entropy, mask, coef=0.2), mask, kind="aepo")
    zero = policy_loss(logp, old, entropy_aware_advantages(adv, entropy, mask, coef=0.0), mask, kind="aepo")
    assert abs(on.loss.item() - off.loss.item()) > 1e-4
    assert zero.loss.item() == pytest.approx(off.loss.item(), abs=1e-7)
    g_on = torch.autograd.grad(on.loss, logp)[0]
    g_off = torch.autograd.grad(off.loss, logp)[0]
    assert not torch.allclose(g_on, g_off)


def test_bad_arguments_name_the_fix():
    logp = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="kind must be"):
        policy_loss(logp, logp, torch.ones(1), torch.ones(1, 2), kind="reinforce")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dual_clip_c"):
        policy_loss(logp, logp, torch.ones(1), torch.ones(1, 2), dual_clip_c=1.0)
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(logp, torch.zeros(2, 2), torch.ones(1), torch.ones(1, 2))
