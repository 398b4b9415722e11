"""What an evaluation samples and how it scores: the benchmarks (``BenchmarkSpec``) and ``EvalSettings``.

Defaults are the papers' evaluation protocol (algorithms.md §5.1): T = 0.6, top-p 0.95, top-k 20, repetition
penalty 1.1, five independent runs per task, Pass@1 and Pass@5, tool budgets python 5 / search 10 (over the
limit the env tells the model and it continues). The response budget (8192 tokens in all, 4096 per engine call,
the papers' per-call cap) suits models with a 16k+ context; lower it for small models.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PAPER_TOOL_BUDGETS: dict[str, int] = {"python": 5, "search": 10}


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: an env id, kwargs merged over its YAML, and an optional success threshold of its own."""

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    success_threshold: float | None = None  # None: EvalSettings.success_threshold

    @property
    def name(self) -> str:
        """The short name: ``AEPO/GSM8K-v0`` -> ``GSM8K``."""
        return short_name(self.env_id)


@dataclass(frozen=True)
class EvalSettings:
    """Sampling and scoring of an evaluation. Run ``r`` of a task is one flat sample; ``n`` runs per task.

    Success (what Pass@k counts): the judge's verdict when a judge is given, else the env's reward >=
    ``success_threshold`` (1.0: exact for math/EM rewards, F1 = 1 for F1 rewards; the papers judge F1 benchmarks
    with an LLM). ``tool_budgets`` is merged over each env's ``max_tool_calls`` with ``on_tool_budget: feedback``
    (None keeps the env's own budgets). ``tasks_per_call`` tasks (times ``n`` samples) share one rollout call;
    it fixes which samples are batched together, so it is part of what the samples depend on.
    """

    n: int = 5
    k: tuple[int, ...] = (1, 5)
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    repetition_penalty: float = 1.1
    max_response_tokens: int = 8192
    segment_max_tokens: int | None = 4096
    limit: int | None = None
    seed: int = 0
    success_threshold: float = 1.0
    tool_budgets: Mapping[str, int] | None = field(default_factory=lambda: dict(PAPER_TOOL_BUDGETS))
    tasks_per_call: int = 8
    retry_errors: bool = False  # a rerun samples again the samples that ended on an engine error
    env_threads: int = 8  # env steps (tool calls) of one engine call run in this many threads; results do not change

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"EvalSettings.n must be >= 1, got {self.n}")
        ks = tuple(sorted({int(k) for k in self.k}))
        if not ks or ks[0] < 1 or ks[-1] > self.n:
            raise ValueError(f"EvalSettings.k values must be in [1, n={self.n}], got {self.k}; raise n or lower k")
        object.__setattr__(self, "k", ks)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or (self.top_k != -1 and self.top_k < 1):
            raise ValueError("need temperature >= 0, 0 < top_p <= 1 and top_k = -1 (off) or >= 1")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0 = off), got {self.repetition_penalty}")
        if self.max_response_tokens < 1 or (self.segment_max_tokens is not None and self.segment_max_tokens < 1):
            raise ValueError("max_response_tokens and segment_max_tokens must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be None or >= 1, got {self.limit}")
        if self.env_threads < 1:
            raise ValueError(f"env_threads must be >= 1, got {self.env_threads}")
        if self.tasks_per_call < 1:
            raise ValueError(f"tasks_per_call must be >= 1, got {self.tasks_per_call}")
        if self.tool_budgets is not None:
            object.__setattr__(self, "tool_budgets", {str(t): int(v) for t, v in sorted(self.tool_budgets.items())})

    def threshold(self, spec: BenchmarkSpec) -> float:
        """The success threshold of ``spec``."""
        return self.success_threshold if spec.success_threshold is None else spec.success_threshold

    def env_kwargs(self, spec: BenchmarkSpec) -> dict[str, Any]:
        """The kwargs ``gym.make`` gets for ``spec``: the eval tool budgets, then the spec's own kwargs over them."""
        from aepo_envs.envs.config import deep_merge

        base: dict[str, Any] = {}
        if self.tool_budgets is not None:
            base = {"max_tool_calls": dict(self.tool_budgets), "on_tool_budget": "feedback"}
        return deep_merge(base, spec.env_kwargs)

    def identity(self) -> dict[str, Any]:
        """Everything the samples and scores depend on (not ``retry_errors``, ``env_threads``), as JSON values."""
        data = asdict(self)
        data.pop("retry_errors")
        data.pop("env_threads")
        data["k"] = list(self.k)
        return data


def short_name(env_id: str) -> str:
    """``AEPO/GSM8K-v0`` -> ``GSM8K``."""
    name = env_id.rsplit("/", 1)[-1]
    head, _, version = name.rpartition("-v")
    return head if head and version.isdigit() else name


def eval_identity(model: str | None, specs: list[BenchmarkSpec], settings: EvalSettings,
                  judge: str | None) -> dict[str, Any]:
    """The identity of an evaluation directory: model, benchmarks, settings and judge."""
    return json.loads(json.dumps({
        "model": model or "unnamed",
        "benchmarks": [{"env_id": s.env_id, "env_kwargs": s.env_kwargs, "success_threshold": s.success_threshold}
                       for s in specs],
        "settings": settings.identity(),
        "judge": judge,
    }, sort_keys=True))


def identity_hash(identity: Mapping[str, Any]) -> str:
    """A short stable hash of an identity (names default output directories)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
