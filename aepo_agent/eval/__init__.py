"""Evaluation as its own path: a model or endpoint, benchmarks, n runs per task, Pass@k, records, tables.

``run_eval(engine, tokenizer, [BenchmarkSpec(...)], EvalSettings(...), output_dir=...)`` is the core (the trainer's
held-out evaluation calls it too); ``aepo eval`` (``aepo_agent.eval.cli``) builds the engine from a model source.
"""

from aepo_agent.eval.passk import pass_at_k, pass_metrics
from aepo_agent.eval.records import EvalConfigMismatch
from aepo_agent.eval.runner import EvalReport, run_eval
from aepo_agent.eval.settings import PAPER_TOOL_BUDGETS, BenchmarkSpec, EvalSettings
from aepo_agent.eval.suites import SUITES, resolve_envs
from aepo_agent.eval.trainer_eval import evaluate

__all__ = [
    "PAPER_TOOL_BUDGETS",
    "SUITES",
    "BenchmarkSpec",
    "EvalConfigMismatch",
    "EvalReport",
    "EvalSettings",
    "evaluate",
    "pass_at_k",
    "pass_metrics",
    "resolve_envs",
    "run_eval",
]
