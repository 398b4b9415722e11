"""Per-trajectory state during a rollout, and the flat rows a rollout returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trajectory:
    """One path of a tree: token state, the env it plays in, and its lineage."""

    traj_id: int
    group: int
    env: Any
    parent_id: int | None = None
    branch_step: int | None = None  # number of model segments in the shared prefix at the branch point
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    segment_ids: list[int] = field(default_factory=list)
    pending_text: str = ""
    h_initial: float | None = None
    seg_entropies: list[float] = field(default_factory=list)
    after_tool_entropies: list[float] = field(default_factory=list)
    last_was_tool: bool = False
    inherited_branch_point: bool = False  # a clone whose first segment follows a branch point already decided
    num_segments: int = 0
    tool_calls: int = 0
    done: bool = False
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    finish: str = ""
    episode: dict[str, Any] | None = None  # info["episode"] of the last step (gym's RecordEpisodeStatistics)

    def branch(self, traj_id: int, env: Any, *, at_decided_point: bool = False) -> Trajectory:
        """A clone sharing this trajectory's tokens so far (and so their segment ids), in its own env. With
        ``at_decided_point`` it also takes the source's entropy reference and does not decide its first branch
        point again (the source just did)."""
        return Trajectory(
            traj_id=traj_id,
            group=self.group,
            env=env,
            parent_id=self.traj_id,
            branch_step=self.num_segments,
            response_ids=list(self.response_ids),
            loss_mask=list(self.loss_mask),
            logprobs=list(self.logprobs),
            entropies=list(self.entropies),
            segment_ids=list(self.segment_ids),
            pending_text=self.pending_text,
            last_was_tool=self.last_was_tool,
            num_segments=self.num_segments,
            tool_calls=self.tool_calls,
            h_initial=self.h_initial if at_decided_point else None,
            inherited_branch_point=at_decided_point,
        )


@dataclass
class RolloutRow:
    """One trajectory ready for the trainer. ``loss_mask`` is 1 on model tokens, 0 on env text."""

    group_id: int
    task_id: str
    traj_id: int
    parent_id: int | None
    branch_step: int | None
    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    old_logprobs: list[float]
    entropies: list[float]
    segment_ids: list[int]
    reward: float
    reward_components: dict[str, float]
    num_tool_calls: int
    finish: str
    h_initial: float | None = None
    segment_entropies: list[float] = field(default_factory=list)
    episode: dict[str, Any] | None = None  # the env wrappers' episode statistics, when one recorded them


@dataclass
class RolloutResult:
    """Rows of every group (exactly n each, in group then trajectory order) and the rollout statistics."""

    rows: list[RolloutRow]
    stats: dict[str, float]


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The chat-templated prompt (with the generation prompt) as token ids, whatever the tokenizer returns."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)
