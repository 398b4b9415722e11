"""Shared test fixtures: the ../shared/data directory beside the repository, when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from char_tokenizer import CharTokenizer  # noqa: F401  (tests import it from here too)

from aepo_agent.engines.base import SamplingParams, Segment

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

if SHARED_DATA.is_dir():
    os.environ.setdefault("AEPO_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files; tests that need them skip when the directory is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data directory {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm():
    """The real SmolLM2-135M-Instruct (model, tokenizer) from the aepo cache; skips if it was never fetched."""
    pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aepo_agent.models import cached_model_path, default_cache_dir

    path = cached_model_path("smollm2-135m-instruct")
    if path is None:
        pytest.skip(f"SmolLM2 is not in {default_cache_dir()}; run `aepo models fetch smollm2-135m-instruct`")
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


class AnswerAtOnce:
    """An engine whose every sample is a final answer: no tool call, so trees never branch."""

    entropy_estimator = "exact"

    def __init__(self) -> None:
        self.tokenizer = CharTokenizer()
        self.calls: list[int] = []
        self.synced: list[dict] = []  # one state dict per update_weights call

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        self.calls.append(len(prefixes))
        text = "<answer>\\boxed{1}</answer>"
        ids = self.tokenizer.encode(text)
        return [[Segment(ids, [-0.1] * len(ids), [0.5] * len(ids), text, "stop", "</answer>")] for _ in prefixes]

    def update_weights(self, named_tensors) -> None:
        self.synced.append({name: tensor.detach().clone() for name, tensor in named_tensors})

    def close(self) -> None:
        pass


@pytest.fixture()
def answer_engine() -> AnswerAtOnce:
    """A scripted engine (no model) whose every sample is a final answer; records weight syncs."""
    return AnswerAtOnce()
