"""One benchmark's summary from its per-sample records: Pass@k readings, reward, tool use, tokens, errors."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aepo_agent.eval.passk import pass_metrics
from aepo_agent.eval.published import published_for
from aepo_agent.eval.settings import short_name


def summarize(env_id: str, records: Mapping[tuple[str, int], Mapping[str, Any]], tasks: Sequence[str], n: int,
              ks: Sequence[int], tool_names: Iterable[str] = ()) -> dict[str, Any]:
    """The summary of ``env_id``: over ``tasks`` x ``n`` runs, from whichever records exist."""
    recs = [records[(t, r)] for t in tasks for r in range(n) if (t, r) in records]
    runs = {t: [records[(t, r)]["success"] if (t, r) in records else None for r in range(n)] for t in tasks}
    tools = sorted(set(tool_names) | {name for rec in recs for name in rec.get("tool_calls", {})})
    judged = [rec["judge"] for rec in recs if rec.get("judge")]
    out: dict[str, Any] = {
        "env_id": env_id,
        "name": short_name(env_id),
        "tasks": len(tasks),
        "n": n,
        "samples": len(recs),
        "complete": len(recs) == len(tasks) * n,
        "errors": sum(1 for rec in recs if rec.get("error")),
        **pass_metrics(runs, ks),
        "reward_mean": _mean(rec["reward"] for rec in recs),
        "tool_calls_per_traj": {name: _mean(rec.get("tool_calls", {}).get(name, 0) for rec in recs) for name in tools},
        "tool_use_rate": {name: _mean(rec.get("tool_calls", {}).get(name, 0) > 0 for rec in recs) for name in tools},
        "generated_tokens_mean": _mean(rec["tokens"]["generated"] for rec in recs),
        "seconds": sum(rec.get("seconds", 0.0) for rec in recs),
    }
    out["tool_calls_per_traj"]["all"] = _mean(sum(rec.get("tool_calls", {}).values()) for rec in recs)
    out["tool_use_rate"]["any"] = _mean(bool(rec.get("tool_calls")) for rec in recs)
    if judged:
        out["judged"] = len(judged)
        out["judge_fallbacks"] = sum(1 for v in judged if v.get("source") == "fallback")
    out["published"] = [p.as_dict() for p in published_for(out["name"])]
    return out


def _mean(values: Iterable[float | bool]) -> float:
    vals = [float(v) for v in values]
    return statistics.fmean(vals) if vals else 0.0


def flatten_metrics(summaries: Mapping[str, Mapping[str, Any]], prefix: str) -> dict[str, float]:
    """Numeric entries of the summaries as ``{prefix}{key}`` (one benchmark) or ``{prefix}{name}/{key}``; nested
    dicts (tool statistics) as ``.../key/tool``. Several benchmarks also give their mean as ``{prefix}mean/...``."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    out: dict[str, float] = {}
    single = len(summaries) == 1
    for summary in summaries.values():
        base = prefix if single else f"{prefix}{summary['name']}/"
        for key, value in summary.items():
            if isinstance(value, Mapping):
                for sub, v in value.items():
                    if isinstance(v, int | float):
                        out[f"{base}{key}/{sub}"] = float(v)
            elif isinstance(value, bool | int | float):
                out[f"{base}{key}"] = float(value)
    if not single and summaries:
        keys = [k for k, v in next(iter(summaries.values())).items() if k.startswith("pass@") or k == "reward_mean"]
        for key in keys:
            out[f"{prefix}mean/{key}"] = statistics.fmean(float(s[key]) for s in summaries.values())
    return out
