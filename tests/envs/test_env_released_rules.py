"""The released ARPO tool rules as env options: a total call limit over all tools, and an empty call that ends
the episode silently (``on_empty_tool_call="end"``), checked in the released order (the limit first)."""

from __future__ import annotations

import pytest
from test_env_core import make

import aepo_envs


def test_empty_call_ends_the_episode_silently_when_asked() -> None:
    env = make(on_empty_tool_call="end", max_turns=10)
    env.reset(options={"index": 0})
    obs, _, term, trunc, info = env.step("think <counter>   </counter>")
    assert (obs, term, trunc) == ("", False, True)
    assert info["truncation_reason"] == "empty_tool_call" and info["new_messages"] == []
    env.reset(options={"index": 0})  # a call without its opening tag is empty too
    assert env.step("x </counter>")[4]["truncation_reason"] == "empty_tool_call"


def test_empty_call_gets_feedback_by_default() -> None:
    env = make(max_turns=10)
    env.reset(options={"index": 0})
    obs, _, term, trunc, info = env.step("<counter></counter>")
    assert not term and not trunc and "empty <counter> call" in obs and info["tool_status"] == "parse_error"


def test_total_call_limit_counts_every_tool_and_the_overrun_truncates() -> None:
    env = make(max_tool_calls_total=2, on_tool_budget="truncate", on_empty_tool_call="end", max_turns=10)
    env.reset(options={"index": 0})
    assert env.step("<counter>1</counter>")[4]["tool_status"] == "ok"
    assert env.step("<counter>2</counter>")[4]["tool_status"] == "ok"
    obs, _, _, trunc, info = env.step("<counter></counter>")  # an empty call over the limit is an overrun
    assert trunc and obs == "" and info["truncation_reason"] == "max_tool_calls[counter]"


def test_total_call_limit_with_feedback_continues() -> None:
    env = make(max_tool_calls_total=1, max_turns=10)
    env.reset(options={"index": 0})
    env.step("<counter>1</counter>")
    obs, _, term, trunc, info = env.step("<counter>2</counter>")
    assert not term and not trunc and "tool call limit (1)" in obs and info["tool_status"] == "budget_exceeded"


def test_bad_values_name_the_option() -> None:
    with pytest.raises(ValueError, match="on_empty_tool_call"):
        make(on_empty_tool_call="later")
    with pytest.raises(ValueError, match="max_tool_calls_total"):
        make(max_tool_calls_total=-1)


def test_the_arpo_training_ids_use_the_released_rules() -> None:
    spec = aepo_envs.registry.load_env_specs()["AEPO/DeepSearch1K-v1"]["kwargs"]
    assert spec["max_tool_calls_total"] == 6 and spec["on_tool_budget"] == "truncate"
    assert spec["on_empty_tool_call"] == "end"
