"""The evaluation's tables: summary.md, summary.csv and summary.json, ours beside the papers' numbers."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from aepo_agent.eval.published import Published

PASS_NAMES = {  # how each reading is named in the tables
    "pass@1": "Pass@1 (mean of {n} runs)",
    "pass@1_run1": "Pass@1 (run 1)",
}


def reading_name(key: str, n: int) -> str:
    """Table heading of a summary key: ``pass@5_any`` -> ``Pass@5 (any of runs 1-5)``."""
    if key in PASS_NAMES:
        return PASS_NAMES[key].format(n=n)
    k = key.removeprefix("pass@").removesuffix("_any")
    if key.endswith("_any"):
        return f"Pass@{k} (any of runs 1-{k})"
    return f"Pass@{k} (unbiased, n={n})"


def pass_keys(summary: dict[str, Any], ks: tuple[int, ...]) -> list[str]:
    """The Pass@k readings of a summary, in table order."""
    keys = ["pass@1", "pass@1_run1"]
    for k in ks:
        if k != 1:
            keys += [f"pass@{k}_any", f"pass@{k}"]
    return [key for key in keys if key in summary]


def write_reports(report: Any) -> None:
    """Write the three tables and the plot into ``report.output_dir``."""
    out: Path = report.output_dir
    summaries = list(report.benchmarks.values())
    _atomic(out / "summary.json", json.dumps(_json(report), indent=2, ensure_ascii=False))
    _atomic(out / "summary.md", markdown(report))
    _write_csv(out / "summary.csv", report)
    from aepo_agent.eval.plot import plot_summaries

    if summaries:
        plot_summaries(summaries, report.settings.k, out / "pass_at_k.png")


def _json(report: Any) -> dict[str, Any]:
    return {"model": report.model, "judge": report.judge, "settings": report.settings.identity(),
            "benchmarks": report.benchmarks, "metric_names": _metric_names(report)}


def _metric_names(report: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for summary in report.benchmarks.values():
        for key in pass_keys(summary, report.settings.k):
            names[key] = reading_name(key, report.settings.n)
    return names


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown(report: Any) -> str:
    """The Markdown report: settings, the Pass@k table, tool use, and the papers' numbers beside ours."""
    s = report.settings
    lines = [f"# Evaluation of {report.model or 'a model'}", "",
             f"n = {s.n} runs per task; T = {s.temperature}, top-p {s.top_p}, top-k {s.top_k}, repetition penalty "
             f"{s.repetition_penalty}; at most {s.max_response_tokens} response tokens; tool budgets "
             f"{s.tool_budgets or 'of each env'}; success = "
             + (f"the LLM judge's verdict ({report.judge})" if report.judge else
                f"env reward >= {s.success_threshold}") + ". Values in %.", ""]
    summaries = list(report.benchmarks.values())
    keys = pass_keys(summaries[0], s.k) if summaries else []
    head = ["Benchmark", "Tasks", "Samples", *[reading_name(k, s.n) for k in keys], "Reward", "Errors"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sm in summaries:
        cells = [sm["name"], str(sm["tasks"]), f"{sm['samples']}{'' if sm['complete'] else ' (partial)'}",
                 *[_pct(sm[k]) for k in keys], f"{sm['reward_mean']:.3f}", str(sm["errors"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Tool use", "", "Calls per trajectory by tool (attempted calls, parsed with the env's own "
              "parser) and the share of trajectories that used each tool.", "",
              "| Benchmark | Tool | Calls / trajectory | Used in % of trajectories |", "|---|---|---|---|"]
    for sm in summaries:
        for tool, calls in sm["tool_calls_per_traj"].items():
            rate = sm["tool_use_rate"].get("any" if tool == "all" else tool, 0.0)
            lines.append(f"| {sm['name']} | {tool} | {calls:.2f} | {_pct(rate)} |")
    published = [(sm, Published(**p)) for sm in summaries for p in sm["published"]]
    if published:
        lines += ["", "## Published numbers beside ours", "",
                  "From algorithms.md §5.2: P = primary source (abstract or official README), S = secondary "
                  "(third-party note, unverified). The papers' models, tools and judge differ from this run's.", "",
                  "| Benchmark | Metric | Ours | Published | System | Source |", "|---|---|---|---|---|---|"]
        for sm, p in published:
            ours = _ours(sm, p.metric)
            lines.append(f"| {sm['name']} | {p.metric.replace('pass', 'Pass')} | {ours} | {p.value:.1f} | "
                         f"{p.system} | {p.source}{f' ({p.note})' if p.note else ''} |")
    return "\n".join(lines) + "\n"


def _ours(summary: dict[str, Any], metric: str) -> str:
    """Our value of a published metric: Pass@1 as the mean over runs, Pass@k as any-correct over k runs."""
    key = metric if metric == "pass@1" else f"{metric}_any"
    return _pct(summary[key]) if key in summary else "—"


def _write_csv(path: Path, report: Any) -> None:
    """One row per benchmark: our readings, reward, tool use, and the published numbers as extra columns."""
    summaries = list(report.benchmarks.values())
    if not summaries:
        return
    keys = pass_keys(summaries[0], report.settings.k)
    tools = sorted({t for sm in summaries for t in sm["tool_calls_per_traj"]})
    header = ["benchmark", "env_id", "tasks", "n", "samples", "complete", "errors", *keys, "reward_mean",
              *[f"calls_per_traj/{t}" for t in tools],
              *[f"use_rate/{'any' if t == 'all' else t}" for t in tools], "published"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for sm in summaries:
            pubs = "; ".join(Published(**p).label() for p in sm["published"])
            writer.writerow([sm["name"], sm["env_id"], sm["tasks"], sm["n"], sm["samples"], sm["complete"],
                             sm["errors"], *[round(100 * sm[k], 2) for k in keys], round(sm["reward_mean"], 4),
                             *[round(sm["tool_calls_per_traj"].get(t, 0.0), 3) for t in tools],
                             *[round(100 * sm["tool_use_rate"].get("any" if t == "all" else t, 0.0), 2) for t in tools],
                             pubs])
    os.replace(tmp, path)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
