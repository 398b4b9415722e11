"""``run_eval``: sample n flat runs per task of each benchmark, score them, keep per-sample records, summarise.

Batching and seeding. A benchmark's tasks (after ``limit``) are cut into fixed chunks of ``tasks_per_call``
tasks; one rollout call samples a whole chunk (n flat samples per task, every env of the chunk stepped in the
same rounds), seeded from (seed, env id, the chunk's task ids). Run r of task t is the r-th trajectory of t's
group. A rerun skips the chunks whose samples all have records and samples any other chunk whole, with the same
composition and seed, writing only the missing samples: with the HF engine (same device and dtype) a resumed
evaluation samples exactly what an uninterrupted one would. vLLM and endpoints get the same per-call seeds; their
reproducibility is theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aepo_agent.eval.guard import GuardedEngine
from aepo_agent.eval.judging import judge_all, make_judge
from aepo_agent.eval.records import RecordStore, check_identity
from aepo_agent.eval.settings import BenchmarkSpec, EvalSettings, eval_identity
from aepo_agent.eval.summary import flatten_metrics, summarize
from aepo_agent.eval.trace import env_parser, read_trace
from aepo_agent.rollout import RolloutConfig, RolloutRow, TreeRollout

RECORDS_DIR = "records"


@dataclass
class EvalReport:
    """Per-benchmark summaries (by env id) of one evaluation, and where its files are (None: kept in memory)."""

    benchmarks: dict[str, dict[str, Any]]
    settings: EvalSettings
    model: str | None = None
    judge: str | None = None
    output_dir: Path | None = None
    sampled: int = 0  # samples drawn by this call (0 when every record already existed)
    # Per-sample records by env id, only for an evaluation without an output directory (else see records/).
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """The numeric summaries flattened for a metrics log: ``{prefix}pass@1`` for one benchmark, else
        ``{prefix}<Name>/pass@1`` plus ``{prefix}mean/pass@1``; tool statistics as ``.../tool_use_rate/python``."""
        return flatten_metrics(self.benchmarks, prefix)


def records_path(output_dir: Path, env_id: str) -> Path:
    """The JSONL of ``env_id``'s records: ``records/AEPO_GSM8K-v0.jsonl``."""
    return output_dir / RECORDS_DIR / (env_id.replace("/", "_") + ".jsonl")


def run_eval(engine: Any, tokenizer: Any, benchmarks: Sequence[BenchmarkSpec], settings: EvalSettings, *,
             output_dir: Path | None = None, judge: str | None = None, progress: bool = True,
             model_label: str | None = None,
             on_rows: Callable[[list[RolloutRow]], None] | None = None) -> EvalReport:
    """Evaluate ``engine`` on ``benchmarks``; with ``output_dir`` keep (and resume from) records and write the
    summary tables and plot there. ``model_label`` names the model in the directory's identity and the tables;
    ``on_rows`` sees the rollout rows of every chunk sampled. The engine is only called from this thread."""
    specs = list(benchmarks)
    if len({s.env_id for s in specs}) != len(specs):
        raise ValueError("each env id may appear once among the benchmarks")
    output_dir = Path(output_dir) if output_dir is not None else None
    if output_dir is not None:
        check_identity(output_dir, eval_identity(model_label, specs, settings, judge))
    judge_obj = make_judge(judge, output_dir)
    guarded = GuardedEngine(engine)
    tokenizer = tokenizer if tokenizer is not None else engine.tokenizer
    report = EvalReport({}, settings, model_label, judge, output_dir)
    runs = []
    try:  # every benchmark's env is built (its data found) before anything is sampled
        for spec in specs:
            store = RecordStore(records_path(output_dir, spec.env_id) if output_dir is not None else None)
            runs.append(_BenchmarkRun(spec, settings, guarded, tokenizer, store, judge_obj, on_rows))
        for run in runs:
            report.sampled += run.run(progress)
            store = run.store
            report.benchmarks[run.spec.env_id] = summarize(run.spec.env_id, store.records, run.tasks, settings.n,
                                                           settings.k, run.tool_names)
            if output_dir is None:  # on disk they are in records/; in memory they are the only copy
                report.records[run.spec.env_id] = [store.records[(t, r)] for t in run.tasks
                                                   for r in range(settings.n) if (t, r) in store.records]
            store.records = {}
    finally:
        for run in runs:
            run.close()
    if output_dir is not None:
        from aepo_agent.eval.report import write_reports

        write_reports(report)
    return report


def _no_grad() -> Any:
    """``torch.no_grad()`` when torch is installed (an endpoint-only install may lack it)."""
    try:
        import torch
    except ImportError:
        return contextlib.nullcontext()
    return torch.no_grad()


def chunk_seed(seed: int, env_id: str, task_ids: Sequence[str]) -> int:
    """The rollout seed of a chunk: a function of the eval seed, the env and the chunk's tasks only."""
    digest = hashlib.sha256(f"{seed}|{env_id}|{'|'.join(task_ids)}".encode()).hexdigest()
    return int(digest[:8], 16) % 2**31  # small: streams derive per-call seeds from it that torch must accept


def rollout_config(settings: EvalSettings, seed: int) -> RolloutConfig:
    """The flat rollout of one chunk: n samples per task with the eval sampling settings."""
    kwargs: dict[str, Any] = dict(
        mode="flat", n=settings.n, initial_rollouts=settings.n, temperature=settings.temperature,
        top_p=settings.top_p, top_k=settings.top_k, max_response_tokens=settings.max_response_tokens,
        segment_max_tokens=settings.segment_max_tokens, tool_overrun="env", seed=seed,
        repetition_penalty=settings.repetition_penalty, env_threads=settings.env_threads,
    )
    return RolloutConfig(**kwargs)


class _BenchmarkRun:
    """The sampling and scoring of one benchmark into its record store."""

    def __init__(self, spec: BenchmarkSpec, settings: EvalSettings, engine: GuardedEngine, tokenizer: Any,
                 store: RecordStore, judge: Any | None, on_rows: Callable[[list[RolloutRow]], None] | None):
        import gymnasium as gym

        import aepo_envs  # noqa: F401  (registers the env ids)
        from aepo_envs.contract import env_tasks

        self.spec, self.settings, self.engine, self.tok = spec, settings, engine, tokenizer
        self.store, self.judge, self.on_rows = store, judge, on_rows
        self.kwargs = settings.env_kwargs(spec)
        self.envs = [gym.make(spec.env_id, **self.kwargs)]
        rows = list(env_tasks(self.envs[0]))
        if settings.limit is not None:
            rows = rows[: settings.limit]
        self.rows = {row.task_id: row for row in rows}
        self.tasks = list(self.rows)
        self.parser = env_parser(self.envs[0])
        self.tool_names = list(getattr(self.envs[0].unwrapped, "tools", {}) or {})
        self.threshold = settings.threshold(spec)

    def run(self, progress: bool) -> int:
        """Sample and record every missing sample; returns how many were sampled."""
        from tqdm import tqdm

        s, n = self.settings, self.settings.n
        keys = [(t, r) for t in self.tasks for r in range(n)]
        have = sum(self.store.done(k, retry_errors=s.retry_errors) for k in keys)
        bar = tqdm(total=len(keys), initial=have, desc=f"eval {self.spec.name}", unit="sample",
                   disable=not progress, dynamic_ncols=True, file=sys.stderr)
        sampled = 0
        try:
            for start in range(0, len(self.tasks), s.tasks_per_call):
                chunk = self.tasks[start : start + s.tasks_per_call]
                missing = {(t, r) for t in chunk for r in range(n) if not self.store.done((t, r), retry_errors=s.retry_errors)}
                if not missing:
                    continue
                for record in self._sample(chunk, missing):
                    self.store.append(record)
                    bar.update(1)
                    sampled += 1
        finally:
            bar.close()
        return sampled

    def close(self) -> None:
        """Close the benchmark's envs."""
        for env in self.envs:
            env.close()
        self.envs = []

    def _sample(self, chunk: list[str], missing: set[tuple[str, int]]) -> list[dict[str, Any]]:
        import gymnasium as gym

        while len(self.envs) < len(chunk):
            self.envs.append(gym.make(self.spec.env_id, **self.kwargs))
        seed = chunk_seed(self.settings.seed, self.spec.env_id, chunk)
        self.engine.reset_errors()
        t0 = time.perf_counter()
        with _no_grad():
            result = TreeRollout(self.engine, rollout_config(self.settings, seed)).run(
                self.envs[: len(chunk)], [{"task_id": t} for t in chunk])
        seconds = (time.perf_counter() - t0) / max(1, len(result.rows))
        if self.on_rows is not None:
            self.on_rows(result.rows)
        records, run_of = [], {}
        for row in result.rows:
            run = run_of[row.group_id] = run_of.get(row.group_id, -1) + 1
            if (row.task_id, run) in missing:
                records.append(self._record(row, run, seconds, seed))
        if self.judge is not None:
            items = [(self.rows[r["task_id"]].question, r["prediction"], self.rows[r["task_id"]].answers)
                     for r in records]
            for record, verdict in zip(records, judge_all(self.judge, items), strict=True):
                record["judge"] = verdict
                record["success"] = bool(verdict["correct"]) and not record["error"]
        return records

    def _record(self, row: RolloutRow, run: int, seconds: float, seed: int) -> dict[str, Any]:
        trace = read_trace(row, self.tok, self.parser)
        error = self.engine.error_of(row.prompt_ids, row.response_ids)
        task = self.rows[row.task_id]
        return {
            "env_id": self.spec.env_id,
            "task_id": row.task_id,
            "run": run,
            "question": task.question,
            "answers": list(task.answers),
            "prediction": trace.prediction,
            "reward": row.reward,
            "reward_components": row.reward_components,
            "success": row.reward >= self.threshold and not error,
            "judge": None,
            "error": error,
            "finish": row.finish,
            "num_tool_calls": row.num_tool_calls,
            "tool_calls": trace.tool_calls,
            "tokens": {"prompt": len(row.prompt_ids), "response": len(row.response_ids),
                       "generated": int(sum(row.loss_mask))},
            "seconds": round(seconds, 4),
            "chunk_seed": seed,
            "response": trace.response,
        }
