"""Continuous batching on ``HFEngine``: requests join and leave the decode batch between short engine calls.

Each ``collect`` decodes the live requests (oldest first, up to ``max_batch``) until a share of them ended, returns
those, and keeps the KV of the ones still running, so the next call resumes them without a prefill and adds the
requests submitted since (a tool result, a clone) to the same batch. A segment is reported once, whole: the pieces
of a resumed request are stitched, and a stop string is found across the pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aepo_agent.engines.base import SamplingParams, Segment, validate_prefixes
from aepo_agent.engines.stream import call_seed, sampling_key

if TYPE_CHECKING:
    from aepo_agent.engines.hf_engine import HFEngine


@dataclass
class _Live:
    request_id: int
    prefix: list[int]
    params: SamplingParams
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)


class HFSegmentStream:
    """A ``SegmentStream`` over an ``HFEngine``. ``exit_fraction``: a call returns once that share of its rows
    ended (at least one); lower means finished rows rejoin sooner, at the cost of more, shorter calls."""

    def __init__(self, engine: HFEngine, seed: int | None = None, exit_fraction: float = 0.5) -> None:
        if not 0 < exit_fraction <= 1:
            raise ValueError(f"exit_fraction must be in (0, 1], got {exit_fraction}")
        self.engine = engine
        self.seed = seed
        self.exit_fraction = exit_fraction
        self._calls = 0
        self._live: list[_Live] = []

    def submit(self, request_id: int, prefix: list[int], params: SamplingParams) -> None:
        validate_prefixes([prefix], 1)
        self._live.append(_Live(request_id, list(prefix), params))

    def collect(self) -> list[tuple[int, Segment]]:
        if not self._live:
            raise RuntimeError("HFSegmentStream.collect with no submitted request")
        engine = self.engine
        first = self._live[0].params
        batch = [r for r in self._live if sampling_key(r.params) == sampling_key(first)][: engine.max_batch]
        seed = call_seed(self.seed, self._calls)
        self._calls += 1
        limits = [r.params.max_tokens - len(r.tokens) for r in batch]
        exit_after = max(1, math.ceil(self.exit_fraction * len(batch)))
        with engine._call():
            pieces = engine._generate_rows([r.prefix + r.tokens for r in batch], replace(first, seed=seed),
                                           engine._generator(seed), limits=limits,
                                           history=[r.tokens for r in batch], exit_after=exit_after)
        done: list[tuple[int, Segment]] = []
        for request, piece in zip(batch, pieces, strict=True):
            request.tokens += piece.token_ids
            request.logprobs += piece.logprobs
            request.entropies += piece.entropies
            if not piece.meta.get("preempted"):  # the piece's text, stop and reason already cover the earlier pieces
                done.append((request.request_id, replace(piece, token_ids=request.tokens, logprobs=request.logprobs,
                                                         entropies=request.entropies)))
        finished = {rid for rid, _ in done}
        self._live = [r for r in self._live if r.request_id not in finished]
        return done
