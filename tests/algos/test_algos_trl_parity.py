"""GRPO / DAPO / CISPO (and BNPO, Dr. GRPO) loss values and gradients against TRL's GRPOTrainer._compute_loss.

The numbers on the TRL side come from TRL's own `_compute_loss`, called on a bare trainer object that carries
only the attributes that method reads; the model forward is replaced by the same log-prob tensor we feed ours,
and the accelerator by a single-process stand-in (its reduce/gather calls only feed TRL's metric logging).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from aepo_agent.algos import policy_loss

trl = pytest.importorskip(
    "trl", reason="trl is not installed (pip install trl) - parity with TRL not checked"
)

B, T = 6, 9


class _SingleProcess:
    """Accelerator stand-in for one process: reduce and gather are identities."""

    num_processes = 1
    sync_gradients = True

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    gather_for_metrics = gather


def _trl_loss(
    loss_type: str,
    logp: torch.Tensor,
    inputs: dict[str, Any],
    *,
    eps_low: float,
    eps_high: float,
    beta: float = 0.0,
) -> torch.Tensor:
    trainer = object.__new__(trl.GRPOTrainer)
    attrs = {
        "loss_type": loss_type,
        "epsilon_low": eps_low,
        "epsilon_high": eps_high,
        "beta": beta,
        "top_entropy_quantile": 1.0,
        "off_policy_mask_threshold": None,
        "importance_sampling_level": "token",
        "use_vllm": False,
        "vllm_importance_sampling_correction": False,
        "_entropy_bonus_enabled": False,
        "aux_loss_enabled": False,
        "current_gradient_accumulation_steps": 1,
        "accelerator": _SingleProcess(),
        "model": SimpleNamespace(training=True),
        "max_completion_length": T,
        "_metrics": {"train": defaultdict(list), "eval": defaultdict(list)},
        "args": SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        "_get_per_token_logps_and_entropies": lambda *a, **k: (logp, torch.zeros_like(logp), None),
    }
    for name, value in attrs.items():
        setattr(trainer, name, value)
    return trainer._compute_loss(None, inputs)


def _batch(seed: int, token_adv: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g) * 3 - 0.05
    mask = torch.ones(B, T)
    for i in range(B):
        mask[i, int(torch.randint(1, T + 1, (1,), generator=g)) :] = 0.0
    shape = (B, T) if token_adv else (B,)
    return {
        "logp": logp,
        "old": logp + 0.4 * torch.randn(B, T, generator=g),
        "ref": logp + 0.3 * torch.randn(B, T, generator=g),
        "adv": torch.randn(*shape, generator=g),
        "mask": mask,
    }


def _inputs(b: dict[str, torch.Tensor], num_items: float | None = None) -> dict[str, Any]:
    return {
        "prompt_ids": torch.zeros(B, 0, dtype=torch.long),
        "prompt_mask": torch.zeros(B, 0, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": b["mask"].long(),
        "advantages": b["adv"],
        "old_per_token_logps": b["old"],
        "ref_per_token_logps": b["ref"],
        "num_items_in_batch": torch.tensor(b["mask"].sum().item() if num_items is None else num_items),
    }


CASES = [
    # (TRL loss_type, TRL eps_low, eps_high, beta, our kwargs)
    ("grpo", 0.2, 0.2, 0.0, {"kind": "grpo", "dual_clip_c": None}),
    ("grpo", 0.2, 0.2, 0.04, {"kind": "grpo", "dual_clip_c": None, "kl_coef": 0.04, "kl_kind": "k3"}),
    ("dapo", 0.2, 0.28, 0.0, {"kind": "dapo", "dual_clip_c": None}),
    ("dapo", 0.2, 0.28, 0.0, {"kind": "dapo", "dual_clip_c": None, "normalizer": 80.0}),
    ("cispo", 0.2, 1.3, 0.0, {"kind": "cispo", "cispo_eps_high": 0.3}),
    ("bnpo", 0.2, 0.2, 0.0, {"kind": "ppo", "dual_clip_c": None, "agg": "token-mean"}),
    ("dr_grpo", 0.2, 0.2, 0.0, {"kind": "grpo", "dual_clip_c": None, "agg": "seq-mean-token-sum-norm-rows"}),
]


@pytest.mark.parametrize("token_adv", [False, True])
@pytest.mark.parametrize(("loss_type", "eps_low", "eps_high", "beta", "ours"), CASES)
def test_loss_and_gradient_match_trl(
    loss_type: str, eps_low: float, eps_high: float, beta: float, ours: dict[str, Any], token_adv: bool
):
    for seed in range(3):
        b = _batch(seed, token_adv)
        x_trl = b["logp"].clone().requires_grad_()
        trl_loss = _trl_loss(
            loss_type,
            x_trl,
            _inputs(b, ours.get("normalizer")),
            eps_low=eps_low,
            eps_high=eps_high,
            beta=beta,
        )
        x_ours = b["logp"].clone().requires_grad_()
        out = policy_loss(
            x_ours,
            b["old"],
            b["adv"],
            b["mask"],
            clip_low=eps_low,
            ref_logp=b["ref"] if beta else None,
            **ours,
        )
        assert out.loss.item() == pytest.approx(trl_loss.item(), abs=1e-6, rel=1e-6)
        (g_trl,) = torch.autograd.grad(trl_loss, x_trl)
        (g_ours,) = torch.autograd.grad(out.loss, x_ours)
        assert torch.allclose(g_ours, g_trl, atol=1e-6)
        assert out.metrics["clipfrac"] > 0.0  # the random ratios do reach the clipped regions
