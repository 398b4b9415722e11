"""The fill rule for groups whose paths all ended short of n: one global sample per round (released) or all."""

from __future__ import annotations

import gymnasium as gym
import pytest

import aepo_envs  # noqa: F401
from aepo_agent.engines.base import SamplingParams, Segment
from aepo_agent.rollout import RolloutConfig, TreeRollout


class CharTokenizer:
    """Characters as token ids: enough tokenizer for the rollout's bookkeeping."""

    eos_token_id = 0

    def __len__(self) -> int:
        return 256

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        return self.encode("".join(m["content"][:20] for m in messages))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [min(ord(c), 255) for c in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)


class AnswerAtOnce:
    """An engine whose every sample is a final answer: no tool call, so trees never branch."""

    entropy_estimator = "exact"

    def __init__(self) -> None:
        self.tokenizer = CharTokenizer()
        self.calls: list[int] = []

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        self.calls.append(len(prefixes))
        text = "<answer>\\boxed{1}</answer>"
        ids = self.tokenizer.encode(text)
        return [[Segment(ids, [-0.1] * len(ids), [0.5] * len(ids), text, "stop", "</answer>")] for _ in prefixes]

    def update_weights(self, named_tensors) -> None:  # pragma: no cover - not used
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("fill", "calls"), [("per_round", [2, 1, 1]), ("all", [2, 2])])
def test_fill_rule_rounds_and_exact_group_size(fill: str, calls: list[int]) -> None:
    engine = AnswerAtOnce()
    env = gym.make("AEPO/CalcQA-v0", max_turns=2, world_kwargs={"n_questions": 5})
    try:
        cfg = RolloutConfig(mode="arpo", n=4, initial_rollouts=2, fill=fill, seed=0)  # type: ignore[arg-type]
        result = TreeRollout(engine, cfg).run([env])
    finally:
        env.close()
    assert engine.calls == calls
    assert len(result.rows) == 4 and all(r.parent_id is None for r in result.rows)


def test_fill_rule_is_validated() -> None:
    with pytest.raises(ValueError, match="rollout.fill"):
        RolloutConfig(fill="later").validate()  # type: ignore[arg-type]
