"""Rollout configuration: every constant the released ARPO/AEPO code hard-codes is a named field here.

One type serves the trainer's YAML section ``rollout`` and direct ``TreeRollout`` users; it is validated when it is
built (a YAML load included), so a bad value fails before any model loads. Defaults reproduce the released AEPO
loop (algorithms.md §1.2, §2.2) except the bugs of algorithms.md Appendix C; docs/fidelity.md lists every
remaining difference and the field that restores the released behaviour.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RolloutConfig(BaseModel):
    """How a step's trajectories are sampled: flat (GRPO), ARPO tree or AEPO tree."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["flat", "arpo", "aepo"] = Field("aepo", description="flat = n independent samples (GRPO)")
    n: int = Field(16, ge=1, description="M: trajectories per prompt group, exactly")
    initial_rollouts: int = Field(8, ge=1, description="N: global samples when dynamic_rollouts is off (capped at n, as released)")
    beam_size: int = Field(2, ge=1, description="clones per branching point = beam_size - 1")
    branch_probability: float = Field(0.5, description="tau, the branch threshold")
    entropy_weight: float = Field(0.2, description="beta, the weight of the entropy rise")
    entropy_window: int = Field(20, ge=1, description="first tokens of a segment that enter its entropy")
    entropy_reduction: Literal["sum", "mean"] = Field("sum", description="released: sum over the window")
    entropy_normalize: bool = Field(True, description="divide by ln|V| as the released code")
    branch_entropy_source: Literal["previous_segment", "after_tool"] = Field(
        "previous_segment",
        description="previous_segment: the released rule (the segment that led to the tool call); after_tool: "
        "the paper's (the first tokens after the tool result; the clone starts before them)",
    )
    branch_from: Literal["active", "tool_result"] = Field(
        "active",
        description="active: every path still running after its segment may branch (released: also paths "
        "continued after a length stop or given tool feedback); tool_result: only after a successful tool step",
    )
    empty_tool_call: Literal["end", "feedback"] = Field(
        "end",
        description="a tool call with empty content (or no opening tag): end: the path stops silently, no EOS "
        "(released); feedback: the env answers with a parse-error observation",
    )
    tool_overrun: Literal["eos", "env"] = Field(
        "eos",
        description="when the env truncates on its tool budget: eos: append EOS to the response, trained on "
        "(released); env: end as the env says, nothing appended",
    )
    # AEPO
    consecutive_penalty: float = Field(0.05, ge=0, description="P^(l) slope of the consecutive-branch penalty")
    dynamic_rollouts: bool = Field(False, description="AEPO pre-monitoring of the global budget (released: off)")
    premonitor_beta: float = Field(0.5, description="sensitivity of the pre-monitoring sigmoid")
    premonitor_root: Literal["probe", "first_segment"] = Field(
        "probe",
        description="H_root: probe = a separate short sample from the prompt (released); first_segment = the "
        "monitor trajectory's first segment (no extra call, but it is also inside mean H_tool)",
    )
    premonitor_probe_tokens: int = Field(50, ge=1, description="tokens of the H_root probe (released: 50)")
    fill: Literal["per_round", "all"] = Field(
        "per_round",
        description="a group whose paths all ended short of n: per_round = one fresh global sample per round "
        "(released); all = the whole remainder at once (paper; fewer sequential rounds)",
    )
    schedule: Literal["rounds", "continuous"] = Field(
        "rounds",
        description="rounds: one engine call per round, each waits for its longest segment (released loop); "
        "continuous: a trajectory goes on as soon as its segment ends (engines with a stream)",
    )
    keep_monitor_rollout: bool = Field(False, description="reuse the monitoring trajectory as a global sample")
    env_threads: int = Field(
        1, ge=1, description="env steps (tool calls) of one collect run in this many threads: a slow tool delays "
        "only its own trajectory; decisions and results do not depend on it (each trajectory has its own env)",
    )
    # Generation
    response_prefix: str = Field("", description="forced opening of every response, masked out of the loss")
    max_response_tokens: int = Field(512, ge=1, description="response budget per trajectory (tool text included)")
    segment_max_tokens: int | None = Field(
        None,
        ge=1,
        description="cap on one segment's tokens; None = the released rule (a call asks for the largest remaining "
        "budget, so a segment always runs to a stop string, EOS or the budget). A cap splits long reasoning "
        "segments: the entropy window, the consecutive-branch counter and mean H_tool then see the pieces",
    )
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(-1, ge=-1)
    repetition_penalty: float = Field(1.0, gt=0, description="1.0 = off (training); the papers' eval uses 1.1")
    seed: int | None = Field(None, description="set per step by the trainer from the run seed and the step")

    @model_validator(mode="after")
    def _consistent(self) -> RolloutConfig:
        if self.top_k == 0:
            raise ValueError("rollout.top_k must be -1 (off) or >= 1")
        return self

    def segment_budget(self, left: int) -> int:
        """Tokens to ask for a segment of a trajectory with ``left`` response tokens left."""
        cap = left if self.segment_max_tokens is None else min(self.segment_max_tokens, left)
        return max(1, cap)
