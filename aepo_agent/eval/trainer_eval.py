"""A training config's evaluation on the eval path: its env as the benchmark, its ``eval`` section as settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aepo_agent.eval.gap import GapProbe
from aepo_agent.eval.runner import EvalReport, run_eval
from aepo_agent.eval.settings import BenchmarkSpec, EvalSettings


def settings_from_config(cfg: Any) -> EvalSettings:
    """EvalSettings of a ``TrainConfig``: its ``eval`` section, its rollout's segment cap, its seed; the env's own
    tool budgets (the env is the one the run trained on) and no repetition penalty unless the section has one."""
    ev = cfg.eval
    return EvalSettings(
        n=ev.n, k=tuple(ev.k), temperature=ev.temperature, top_p=ev.top_p, top_k=ev.top_k,
        repetition_penalty=getattr(ev, "repetition_penalty", 1.0), max_response_tokens=ev.max_response_tokens,
        segment_max_tokens=cfg.rollout.segment_max_tokens, limit=ev.limit, seed=cfg.seed,
        success_threshold=ev.success_threshold, tool_budgets=None,
    )


def legacy_summary(report: EvalReport, extra: dict[str, float] | None = None) -> dict[str, Any]:
    """The one-benchmark summary ``aepo eval CONFIG`` always printed: tasks, n, reward_mean, pass@k, the gap."""
    (summary,) = report.benchmarks.values()
    out: dict[str, Any] = {"tasks": summary["tasks"], "n": summary["n"], "reward_mean": summary["reward_mean"]}
    out.update({key: value for key, value in summary.items() if key.startswith("pass@")})
    out["errors"] = summary["errors"]
    out.update(extra or {})
    return out


def evaluate(trainer: Any, *, output: Path | None = None) -> dict[str, Any]:
    """Pass@k of a trainer's current policy on its env (``eval`` section), with the engine/model log-prob gap;
    ``output`` gets one line per task (its rewards) and a last line with the summary."""
    cfg = trainer.cfg
    settings = settings_from_config(cfg)
    probe = GapProbe(trainer.model, trainer.pad_id, temperature=settings.temperature,
                     micro_batch=cfg.train.micro_batch_size)
    report = run_eval(trainer.engine, trainer.tokenizer, [BenchmarkSpec(cfg.env.id, dict(cfg.env.kwargs))], settings,
                      progress=False, on_rows=probe)
    summary = legacy_summary(report, probe.metrics())
    if output is not None:
        (records,) = report.records.values()
        per_task: dict[str, list[float]] = {}
        for rec in records:
            per_task.setdefault(rec["task_id"], []).append(rec["reward"])
        with Path(output).open("w", encoding="utf-8") as fh:
            for task_id, rewards in per_task.items():
                fh.write(json.dumps({"task_id": task_id, "rewards": rewards}) + "\n")
            fh.write(json.dumps({"summary": summary}) + "\n")
    return summary
