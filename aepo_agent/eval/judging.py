"""``--judge openai:URL[#model]``: aepo_envs' LLM judge (the papers' Correct/Incorrect protocol) with a verdict
cache in the output directory, run on the extracted prediction beside the env's own reward."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DEFAULT_JUDGE_MODEL = "Qwen2.5-72B-Instruct"  # the papers' judge (algorithms.md §5.1)
CACHE_FILE = "judge_cache.sqlite"


def parse_judge(spec: str) -> tuple[str, str]:
    """``openai:http://host:8001/v1#Qwen2.5-72B-Instruct`` -> (base URL, model name)."""
    if not spec.startswith("openai:"):
        raise ValueError(f"--judge must look like openai:URL[#model], e.g. openai:http://127.0.0.1:8001/v1, got {spec!r}")
    url, _, model = spec.removeprefix("openai:").partition("#")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--judge URL must be http(s), got {url!r}")
    return url, model or DEFAULT_JUDGE_MODEL


def make_judge(spec: str | None, output_dir: Path | None) -> Any | None:
    """The ``LLMJudge`` of ``spec`` (None: no judge); verdicts cached in ``output_dir`` when there is one."""
    if spec is None:
        return None
    from aepo_envs.rewards.judge import LLMJudge

    url, model = parse_judge(spec)
    return LLMJudge(url, model, cache_path=output_dir / CACHE_FILE if output_dir is not None else None)


def judge_all(judge: Any, items: Sequence[tuple[str, str | None, Sequence[str]]],
              workers: int = 8) -> list[dict[str, Any]]:
    """Verdicts of (question, prediction, golds) items, judged concurrently (the judge is thread-safe)."""
    def one(item: tuple[str, str | None, Sequence[str]]) -> dict[str, Any]:
        verdict = judge.judge(item[0], item[1], list(item[2]))
        return {"correct": verdict.correct, "source": verdict.source, "raw": verdict.raw[:500]}

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(one, items))
