"""An engine wrapper that turns an engine's failures into per-sample errors instead of a failed evaluation.

A segment with ``meta["error"]`` (an endpoint that still failed after its retries) or an exception raised by
``generate`` becomes an empty segment that finishes with EOS: the rollout ends that trajectory without an answer
and the others go on. An endpoint's refusal (``EndpointError``: a wrong URL, model or key) stays fatal. The failed prefix is remembered; a finished row whose prompt + response equals it is the
sample the error ended (nothing is generated after the error, so the match is exact).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from aepo_agent.engines.base import SamplingParams, Segment

FATAL = frozenset({"EndpointError"})  # OpenAIEngine: the endpoint refused the request (401/403/404)


class GuardedEngine:
    """Forwards to ``inner``; records and neutralises failed segments (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.errors: dict[tuple[int, ...], str] = {}
        self.calls = 0
        self.raised: set[str] = set()

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    @property
    def entropy_estimator(self) -> str:
        return getattr(self.inner, "entropy_estimator", "exact")

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        self.calls += 1
        try:
            out = self.inner.generate(prefixes, params, n)
        except Exception as exc:  # an engine failure is the samples' failure, never the evaluation's
            if type(exc).__name__ in FATAL:
                raise  # a wrong URL, model name or key fails every sample: say so at once
            message = f"{type(exc).__name__}: {exc}"
            if message not in self.raised:
                self.raised.add(message)
                print(f"aepo eval: the engine raised {message}; its samples are recorded as errors",
                      file=sys.stderr)
            out = [[_failed(message) for _ in range(n)] for _ in prefixes]
        guarded = []
        for prefix, segments in zip(prefixes, out, strict=True):
            row = []
            for seg in segments:
                error = seg.meta.get("error") if isinstance(seg.meta, dict) else None
                if error:
                    self.errors[tuple(prefix)] = str(error)
                    seg = _failed(str(error))
                row.append(seg)
            guarded.append(row)
        return guarded

    def error_of(self, prompt_ids: list[int], response_ids: list[int]) -> str | None:
        """The engine error that ended the sample with these tokens, if one did."""
        return self.errors.get(tuple(prompt_ids) + tuple(response_ids)) if self.errors else None

    def reset_errors(self) -> None:
        """Forget the remembered failures (between rollout calls)."""
        self.errors.clear()

    def clear_prefix_cache(self) -> None:
        clear = getattr(self.inner, "clear_prefix_cache", None)
        if callable(clear):
            clear()

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        self.inner.update_weights(named_tensors)

    def close(self) -> None:
        self.inner.close()


def _failed(message: str) -> Segment:
    return Segment([], [], [], "", "eos", None, {"error": message})
