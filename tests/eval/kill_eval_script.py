"""Runs a slow scripted evaluation into OUTDIR (argv[1]); the kill -9 test kills it midway."""

from __future__ import annotations

import sys
from pathlib import Path

from eval_toys import TOY_ID, ScriptedEngine, register_toys

from aepo_agent.eval import BenchmarkSpec, EvalSettings, run_eval

SETTINGS = EvalSettings(n=2, k=(1, 2), tasks_per_call=2, tool_budgets=None)

if __name__ == "__main__":
    register_toys(n_tasks=12)
    engine = ScriptedEngine(delay_s=float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)
    run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=Path(sys.argv[1]),
             progress=False, model_label="toy")
