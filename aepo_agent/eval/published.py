"""The papers' published per-benchmark numbers (algorithms.md §5.2), to print beside ours.

Source tags as in the doc: P = primary (abstract or official README), S = secondary (third-party note). Values
are percentages. Treat every S number as unverified until checked against the papers' tables. Per-benchmark
numbers only: the ARPO 10-benchmark averages have no single benchmark to sit beside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Published:
    """One published number: benchmark (short env name), system, metric, value (%), source tag, note."""

    benchmark: str
    system: str
    metric: str  # "pass@1" or "pass@5"
    value: float
    source: str  # "P" or "S"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """``AEPO Qwen3-14B Pass@5 65.0 (P)``."""
        return f"{self.system} {self.metric.replace('pass', 'Pass')} {self.value:.1f} ({self.source})"


PUBLISHED: tuple[Published, ...] = (
    # Deep search, Qwen3 backbones, 1K RL samples, LLM judge.
    Published("GAIA", "AEPO Qwen3-14B", "pass@1", 47.6, "P", "AEPO abstract"),
    Published("GAIA", "AEPO Qwen3-14B", "pass@5", 65.0, "P", "AEPO abstract"),
    Published("GAIA", "ARPO Qwen3-14B", "pass@5", 61.2, "P", "ARPO README"),
    Published("GAIA", "ARPO Qwen3-14B", "pass@1", 43.2, "S", "the APPO note says 43.7"),
    Published("GAIA", "ARPO Qwen3-8B", "pass@1", 38.8, "S"),
    Published("GAIA", "GRPO Qwen3-8B", "pass@1", 32.0, "S"),
    Published("GAIA", "AEPO QwQ-32B", "pass@1", 53.4, "P", "AEPO README"),
    Published("GAIA", "ARPO QwQ-32B", "pass@1", 51.5, "P", "AEPO README"),
    Published("GAIA", "DeepSeek-R1-671B", "pass@1", 25.2, "S"),
    Published("GAIA", "GPT-4o", "pass@1", 17.5, "S"),
    Published("HLE", "AEPO Qwen3-14B", "pass@1", 11.2, "P", "AEPO abstract"),
    Published("HLE", "AEPO Qwen3-14B", "pass@5", 26.0, "P", "AEPO abstract"),
    Published("HLE", "ARPO Qwen3-14B", "pass@5", 24.0, "P", "ARPO README"),
    Published("HLE", "ARPO Qwen3-14B", "pass@1", 10.0, "S"),
    Published("HLE", "best AEPO baseline Qwen3-14B", "pass@1", 10.4, "S"),
    Published("HLE", "best AEPO baseline Qwen3-14B", "pass@5", 22.2, "S"),
    Published("HLE", "ARPO Qwen3-8B", "pass@1", 7.3, "S"),
    Published("HLE", "GRPO Qwen3-8B", "pass@1", 7.9, "S"),
    Published("HLE", "AEPO QwQ-32B", "pass@1", 12.8, "P", "AEPO README"),
    Published("HLE", "ARPO QwQ-32B", "pass@1", 11.2, "P", "AEPO README"),
    Published("HLE", "DeepSeek-R1-671B", "pass@1", 8.6, "S"),
    Published("HLE", "GPT-4o", "pass@1", 2.6, "S"),
    Published("WebWalkerQA", "AEPO Qwen3-14B", "pass@1", 43.0, "P", "AEPO abstract"),
    Published("WebWalkerQA", "AEPO Qwen3-14B", "pass@5", 70.0, "P", "AEPO abstract"),
    Published("WebWalkerQA", "best AEPO baseline Qwen3-14B", "pass@1", 39.0, "S"),
    Published("WebWalkerQA", "ARPO Qwen3-8B", "pass@1", 30.5, "S"),
    Published("WebWalkerQA", "GRPO Qwen3-8B", "pass@1", 29.0, "S"),
    Published("XBenchDeepSearch", "ARPO Qwen3-8B", "pass@1", 25.0, "S"),
    Published("XBenchDeepSearch", "GRPO Qwen3-8B", "pass@1", 20.0, "S"),
    # ARPO reasoning benchmarks, spot values (APPO note).
    Published("AIME24", "ARPO Qwen2.5-7B", "pass@1", 30.0, "S"),
    Published("AIME24", "ARPO Llama3.1-8B", "pass@1", 23.3, "S"),
    Published("MATH500", "ARPO Llama3.1-8B", "pass@1", 64.6, "S"),
    Published("2Wiki", "ARPO Qwen2.5-7B", "pass@1", 76.1, "S"),
)


def published_for(benchmark: str) -> list[Published]:
    """The published numbers of a benchmark (by short env name, e.g. ``GAIA``)."""
    return [p for p in PUBLISHED if p.benchmark.lower() == benchmark.lower()]
