"""Segment streams: the rollout submits one request per trajectory segment and collects segments as they end.

A ``RoundStream`` runs every submitted request in one ``generate`` call (the released ARPO/AEPO loop: each round
waits for its longest segment). A continuous stream (``HFEngine.stream``, ``VLLMEngine.stream``) returns segments
as soon as they end, so that trajectory's tool call, branch and next segment start while the others still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

from aepo_agent.engines.base import Engine, SamplingParams, Segment

Schedule = Literal["rounds", "continuous"]


@runtime_checkable
class SegmentStream(Protocol):
    """Requests in, finished segments out. ``collect`` blocks until at least one submitted request ended."""

    def submit(self, request_id: int, prefix: list[int], params: SamplingParams) -> None: ...

    def collect(self) -> list[tuple[int, Segment]]: ...


@dataclass
class Request:
    """One submitted segment request; ``params.seed`` is ignored (the stream seeds its calls)."""

    request_id: int
    prefix: list[int]
    params: SamplingParams


def sampling_key(params: SamplingParams) -> SamplingParams:
    """What requests must share to run in one batch call: everything but ``max_tokens`` and ``seed``."""
    return replace(params, max_tokens=1, seed=None)


def call_seed(seed: int | None, call: int) -> int | None:
    """The seed of a stream's ``call``-th batch call (the released loop's per-round seed)."""
    return None if seed is None else seed * 100_003 + call


class RoundStream:
    """Round-synchronous stream over any engine: one ``generate`` per ``collect`` over every pending request, with
    the longest requested ``max_tokens`` and the seed ``seed * 100_003 + call``; rows are returned unchanged (a row
    may run past its own ``max_tokens``; the caller cuts it), as the released per-round loop does."""

    def __init__(self, engine: Engine, seed: int | None = None) -> None:
        self.engine = engine
        self.seed = seed
        self._calls = 0
        self._queue: list[Request] = []

    def submit(self, request_id: int, prefix: list[int], params: SamplingParams) -> None:
        self._queue.append(Request(request_id, list(prefix), params))

    def collect(self) -> list[tuple[int, Segment]]:
        if not self._queue:
            raise RuntimeError("RoundStream.collect with no submitted request")
        queue, self._queue = self._queue, []
        first = queue[0].params
        if any(sampling_key(r.params) != sampling_key(first) for r in queue[1:]):
            raise ValueError("every request of one round must share its sampling settings (max_tokens aside)")
        params = replace(first, max_tokens=max(r.params.max_tokens for r in queue),
                         seed=call_seed(self.seed, self._calls))
        self._calls += 1
        outputs = self.engine.generate([r.prefix for r in queue], params, n=1)
        return [(r.request_id, out[0]) for r, out in zip(queue, outputs, strict=True)]


def make_stream(engine: Engine, schedule: Schedule, seed: int | None = None) -> tuple[Any, Schedule]:
    """The stream a rollout drives: continuous when asked and the engine has one (``engine.stream``), else rounds.
    Returns the stream and the schedule it actually runs."""
    if schedule not in ("rounds", "continuous"):
        raise ValueError(f"schedule must be 'rounds' or 'continuous', got {schedule!r}")
    factory = getattr(engine, "stream", None)
    if schedule == "continuous" and callable(factory):
        return factory(seed=seed), "continuous"
    return RoundStream(engine, seed=seed), "rounds"
