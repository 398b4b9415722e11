"""Per-sample records, resume (a rerun samples nothing), refused settings changes, engine errors per sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_toys import TOY_ID, TOY_TOOL_ID, ScriptedEngine, ToolThenAnswer

from aepo_agent.eval import BenchmarkSpec, EvalConfigMismatch, EvalSettings, run_eval
from aepo_agent.eval.runner import records_path

SETTINGS = EvalSettings(n=2, k=(1, 2), tasks_per_call=2, tool_budgets=None)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_then_a_rerun_samples_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    first = ScriptedEngine()
    report = run_eval(first, first.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False,
                      model_label="toy")
    records = _lines(records_path(out, TOY_ID))
    assert sorted((r["task_id"], r["run"]) for r in records) == [(f"t{i}", r) for i in range(6) for r in range(2)]
    rec = records[0]
    assert rec["prediction"] == "yes" and rec["success"] and rec["reward"] == 1.0 and rec["error"] is None
    assert rec["tokens"]["generated"] > 0 and rec["seconds"] >= 0 and rec["finish"] == "answer"
    assert report.sampled == 12 and first.calls == 3  # 3 chunks of 2 tasks x 2 runs
    again = ScriptedEngine()
    report2 = run_eval(again, again.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False,
                       model_label="toy")
    assert again.calls == 0 and report2.sampled == 0
    assert len(_lines(records_path(out, TOY_ID))) == 12
    assert report2.benchmarks[TOY_ID]["pass@1"] == report.benchmarks[TOY_ID]["pass@1"]


def test_missing_samples_are_sampled_and_a_torn_line_dropped(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    engine = ScriptedEngine()
    run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False)
    path = records_path(out, TOY_ID)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:7]) + lines[7][:25])  # chunk 1 complete, chunk 2 three of four + a torn line
    again = ScriptedEngine()
    report = run_eval(again, again.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False)
    assert report.sampled == 5  # one of chunk 2, four of chunk 3
    assert again.calls == 2  # chunk 2 is sampled whole (same composition), chunk 1 not at all
    keys = [(r["task_id"], r["run"]) for r in _lines(path)]
    assert len(keys) == len(set(keys)) == 12


def test_other_settings_into_the_same_dir_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    engine = ScriptedEngine()
    run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False,
             model_label="toy")
    other = EvalSettings(n=2, k=(1, 2), tasks_per_call=2, tool_budgets=None, temperature=1.0)
    with pytest.raises(EvalConfigMismatch, match=r"settings\.temperature: stored 0\.6, now 1\.0"):
        run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], other, output_dir=out, progress=False,
                 model_label="toy")
    with pytest.raises(EvalConfigMismatch, match="model"):
        run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False,
                 model_label="another")
    # retry_errors is not part of the identity
    run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)],
             EvalSettings(n=2, k=(1, 2), tasks_per_call=2, tool_budgets=None, retry_errors=True),
             output_dir=out, progress=False, model_label="toy")


def test_engine_errors_become_error_records_and_the_run_finishes(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    engine = ScriptedEngine(error_on={(0, 1), (3, 0)})
    report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, output_dir=out, progress=False)
    records = {(r["task_id"], r["run"]): r for r in _lines(records_path(out, TOY_ID))}
    assert len(records) == 12
    failed = {key for key, r in records.items() if r["error"]}
    assert failed == {("t0", 1), ("t3", 0)}
    assert "HTTP 503" in records[("t0", 1)]["error"] and not records[("t0", 1)]["success"]
    assert records[("t0", 0)]["success"] and records[("t0", 0)]["error"] is None
    assert report.benchmarks[TOY_ID]["errors"] == 2
    assert "| 2 |" in (out / "summary.md").read_text()
    # A rerun keeps them; with retry_errors only they are sampled again.
    fixed = ScriptedEngine()
    rerun = EvalSettings(n=2, k=(1, 2), tasks_per_call=2, tool_budgets=None, retry_errors=True)
    report = run_eval(fixed, fixed.tokenizer, [BenchmarkSpec(TOY_ID)], rerun, output_dir=out, progress=False)
    assert report.sampled == 2 and report.benchmarks[TOY_ID]["errors"] == 0


def test_an_engine_that_raises_fails_its_samples_only() -> None:
    class Broken(ScriptedEngine):
        tries = 0

        def generate(self, prefixes, params, n=1):
            self.tries += 1
            if self.tries == 2:
                raise ConnectionError("endpoint down")
            return super().generate(prefixes, params, n)

    engine = Broken()
    report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], SETTINGS, progress=False)
    records = report.records[TOY_ID]
    errors = [r for r in records if r["error"]]
    assert len(records) == 12 and len(errors) == 4  # the second chunk's 2 tasks x 2 runs
    assert all("ConnectionError: endpoint down" in r["error"] for r in errors)


def test_tool_calls_by_tool(tmp_path: Path) -> None:
    engine = ToolThenAnswer()
    report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_TOOL_ID)], SETTINGS, progress=False)
    records = report.records[TOY_TOOL_ID]
    by_task = {r["task_id"]: r for r in records}
    assert by_task["t0"]["tool_calls"] == {"python": 1} and by_task["t1"]["tool_calls"] == {"python": 2}
    assert all(r["num_tool_calls"] == sum(r["tool_calls"].values()) for r in records)
    summary = report.benchmarks[TOY_TOOL_ID]
    assert summary["tool_calls_per_traj"]["python"] == pytest.approx(1.5)
    assert summary["tool_use_rate"] == {"python": 1.0, "any": 1.0}
    assert summary["pass@1"] == 1.0


def test_eval_tool_budgets_reach_the_env(tmp_path: Path) -> None:
    engine = ToolThenAnswer()
    settings = EvalSettings(n=1, k=(1,), tool_budgets={"python": 1})
    report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_TOOL_ID)], settings, progress=False)
    odd = next(r for r in report.records[TOY_TOOL_ID] if r["task_id"] == "t1")
    assert "call limit (1)" in odd["response"] and odd["success"]  # told, and it went on to answer


def test_a_resumed_eval_samples_what_an_uninterrupted_one_would(tmp_path: Path, tiny_llama) -> None:
    from char_tokenizer import CharTokenizer

    from aepo_agent.engines.hf_engine import HFEngine

    engine = HFEngine(tiny_llama(), tokenizer=CharTokenizer())
    settings = EvalSettings(n=2, k=(1, 2), tasks_per_call=2, temperature=1.0, top_p=1.0, top_k=-1,
                            max_response_tokens=12, tool_budgets=None, limit=4)
    full, part = tmp_path / "full", tmp_path / "part"
    run_eval(engine, None, [BenchmarkSpec(TOY_ID)], settings, output_dir=full, progress=False)
    run_eval(engine, None, [BenchmarkSpec(TOY_ID)], settings, output_dir=part, progress=False)
    path = records_path(part, TOY_ID)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]))  # "killed" after 3 of 8 samples
    report = run_eval(engine, None, [BenchmarkSpec(TOY_ID)], settings, output_dir=part, progress=False)
    assert report.sampled == 5

    def responses(out: Path) -> dict:
        return {(r["task_id"], r["run"]): r["response"] for r in _lines(records_path(out, TOY_ID))}

    assert responses(part) == responses(full)
    assert len(set(responses(full).values())) > 1  # the samples differ from each other
