"""Engine interface: batched sampling from token prefixes with per-token logprobs and entropies."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

FinishReason = Literal["stop", "length", "eos"]
EntropyEstimator = Literal["exact", "topk_tail", "topk", "surprisal", "none"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 means greedy; top_k -1 means no top-k cut; seed None means unseeded;
    repetition_penalty 1.0 means off (> 1 divides positive / multiplies negative logits of every token already in
    the prompt or the sampled continuation, as vLLM and transformers do)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise TypeError(f"SamplingParams.stop must be a tuple of non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", tuple(self.stop))
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k != -1 and self.top_k < 1:
            raise ValueError(f"SamplingParams.top_k must be -1 (off) or >= 1, got {self.top_k}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")
        if not (self.repetition_penalty > 0 and math.isfinite(self.repetition_penalty)):
            raise ValueError(f"SamplingParams.repetition_penalty must be > 0 (1.0 = off), got {self.repetition_penalty}")


@dataclass
class Segment:
    """One sampled continuation. Ids/text include a matched stop string (and an EOS token id, not its text)."""

    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float]
    text: str
    finish_reason: FinishReason
    stop_string: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A generation back-end. `generate` returns, per prefix, `n` segments; shared prefixes are computed once.

    Optional capabilities, asked of the engine (never inferred from a config string): ``shares_weights`` (True:
    it runs the torch module it holds as ``model``, so a trainer updating that module needs no sync; absent or
    False: the trainer calls ``update_weights`` after every change) and ``stream(seed)`` (a continuous
    ``SegmentStream``; without it rollouts run round by round).
    """

    entropy_estimator: str

    @property
    def tokenizer(self) -> Any: ...

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]: ...

    def update_weights(self, named_tensors: Iterable[tuple[str, Tensor]]) -> None: ...

    def close(self) -> None: ...


def validate_prefixes(prefixes: list[list[int]], n: int) -> None:
    """Raise a precise error for malformed `generate` arguments."""
    if n < 1:
        raise ValueError(f"n must be >= 1 samples per prefix, got {n}")
    for i, prefix in enumerate(prefixes):
        if len(prefix) == 0:
            raise ValueError(f"prefix {i} is empty: every prefix needs at least one token (e.g. BOS)")
