"""Rollout configuration: every constant the released ARPO/AEPO code hard-codes is a named field here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class RolloutConfig:
    """Defaults reproduce the released AEPO scripts (algorithms.md §1.3, §2.3) except the bugs of Appendix C."""

    mode: Literal["flat", "arpo", "aepo"] = "aepo"
    n: int = 16  # M: trajectories per prompt group, exactly
    initial_rollouts: int = 8  # N: global samples (when dynamic_rollouts is off)
    beam_size: int = 2  # clones per branching point = beam_size - 1
    branch_probability: float = 0.5  # tau
    entropy_weight: float = 0.2  # beta
    entropy_window: int = 20  # first tokens of a segment that enter its entropy
    entropy_reduction: Literal["sum", "mean"] = "sum"  # released: sum over the window
    entropy_normalize: bool = True  # divide by ln|V| as the released code
    branch_entropy_source: Literal["previous_segment", "after_tool"] = "previous_segment"
    # AEPO
    consecutive_penalty: float = 0.05  # P^(l) slope
    dynamic_rollouts: bool = False  # pre-monitoring (released scripts: off)
    premonitor_beta: float = 0.5
    # A group whose paths all ended short of n: released code adds one fresh global sample per round
    # ("per_round"); the paper fills the whole remainder at once ("all", far fewer sequential rounds).
    fill: Literal["per_round", "all"] = "per_round"
    # "rounds": one engine call per round, every trajectory waits for the round's longest segment (released
    # loop); "continuous": a trajectory goes on as soon as its segment ends (engines with a stream: hf, vllm).
    schedule: Literal["rounds", "continuous"] = "rounds"
    keep_monitor_rollout: bool = False  # Appendix C.4: reuse the monitoring trajectory as a global sample
    # Generation
    response_prefix: str = ""  # forced opening of every response (e.g. "<think>"); masked out of the loss
    max_response_tokens: int = 512
    segment_max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None

    def validate(self) -> None:
        """Raise a precise error for an inconsistent config."""
        if self.mode not in ("flat", "arpo", "aepo"):
            raise ValueError(f"rollout.mode must be flat, arpo or aepo, got {self.mode!r}")
        if self.n < 1:
            raise ValueError("rollout.n must be >= 1")
        if not self.initial_rollouts >= 1:
            raise ValueError("rollout.initial_rollouts must be >= 1")
        if self.beam_size < 1:
            raise ValueError("rollout.beam_size must be >= 1 (clones per branch point = beam_size - 1)")
        if self.branch_entropy_source not in ("previous_segment", "after_tool"):
            raise ValueError("rollout.branch_entropy_source must be 'previous_segment' or 'after_tool'")
        if self.fill not in ("per_round", "all"):
            raise ValueError("rollout.fill must be 'per_round' (released code) or 'all' (paper)")
        if self.schedule not in ("rounds", "continuous"):
            raise ValueError("rollout.schedule must be 'rounds' (released loop) or 'continuous'")
        if self.entropy_reduction not in ("sum", "mean"):
            raise ValueError("rollout.entropy_reduction must be 'sum' or 'mean'")
        if self.max_response_tokens < 1 or self.segment_max_tokens < 1:
            raise ValueError("rollout.max_response_tokens and segment_max_tokens must be >= 1")
