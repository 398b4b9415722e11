"""Pass@k readings against hand-computed values: pure, and end to end through run_eval."""

from __future__ import annotations

import pytest
from eval_toys import TOY_ID, ScriptedEngine

from aepo_agent.eval import BenchmarkSpec, EvalSettings, pass_at_k, pass_metrics, run_eval

# Three tasks, four runs each.
RUNS = {
    "a": [True, False, False, True],  # c = 2
    "b": [False, False, False, False],  # c = 0
    "c": [False, False, True, False],  # c = 1
}


def test_pass_metrics_by_hand() -> None:
    m = pass_metrics(RUNS, (1, 2, 4))
    assert m["pass@1"] == pytest.approx((2 / 4 + 0 + 1 / 4) / 3)  # mean over runs
    assert m["pass@1_run1"] == pytest.approx(1 / 3)  # run 1 alone: only a
    assert m["pass@2_any"] == pytest.approx(1 / 3)  # runs 1-2: a
    assert m["pass@4_any"] == pytest.approx(2 / 3)  # runs 1-4: a and c
    # unbiased: 1 - C(n-c, k) / C(n, k)
    assert m["pass@2"] == pytest.approx(((1 - 1 / 6) + 0 + (1 - 3 / 6)) / 3)
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert "pass@1_any" not in m  # the same as pass@1_run1


def test_pass_metrics_skip_unsampled_runs() -> None:
    m = pass_metrics({"a": [True, None], "b": [False, False]}, (1, 2))
    assert m["pass@1_run1"] == 0.5
    assert m["pass@2_any"] == 0.0  # a has no run 2 yet: only b counts
    assert m["pass@1"] == pytest.approx((1.0 + 0.0) / 2)


def test_pass_at_k_unchanged() -> None:
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="eval.n"):
        pass_at_k(2, 1, 3)


def test_run_eval_summary_matches_hand_values() -> None:
    correct = {0: [True, False, False, True], 1: [False] * 4, 2: [False, False, True, False]}
    engine = ScriptedEngine(correct)
    settings = EvalSettings(n=4, k=(1, 2, 4), limit=3, tool_budgets=None)
    report = run_eval(engine, engine.tokenizer, [BenchmarkSpec(TOY_ID)], settings, progress=False)
    summary = report.benchmarks[TOY_ID]
    expected = pass_metrics(RUNS, (1, 2, 4))
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), key
    assert summary["samples"] == 12 and summary["complete"]
    assert summary["reward_mean"] == pytest.approx(3 / 12)
    metrics = report.metrics("heldout/")
    assert metrics["heldout/pass@1"] == pytest.approx(expected["pass@1"])
    assert metrics["heldout/pass@4_any"] == pytest.approx(2 / 3)
    assert engine.calls == 1  # one engine call served all 3 tasks x 4 runs


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="raise n or lower k"):
        EvalSettings(n=2, k=(1, 5))
    assert EvalSettings(n=5, k=(5, 1, 1)).k == (1, 5)
    assert EvalSettings().tool_budgets == {"python": 5, "search": 10}
