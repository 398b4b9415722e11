"""Tree and flat rollouts of the real SmolLM2-135M against a real env (CalcQA, bubblewrap python sandbox).

The response prefix forces a complete first tool call so every trajectory has a tool result early; the model
then writes everything after it. With tau=1 (ARPO rule) every branch candidate branches, so the assertions
about where branches start do not depend on sampling luck.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import aepo_envs  # noqa: F401  (registers the ids)
from aepo_agent.rollout import RolloutConfig, TreeRollout

PREFIX = "<python>print(6 * 7)</python>"


@pytest.fixture(scope="module")
def engine(smollm):
    from aepo_agent.engines.hf_engine import HFEngine

    model, tok = smollm
    return HFEngine(model, tokenizer=tok, max_batch=16)


@pytest.fixture
def envs():
    made = [gym.make("AEPO/CalcQA-v0", max_turns=4) for _ in range(2)]
    yield made
    for env in made:
        env.close()


def _spans(row, value):
    out, start = [], None
    for i, m in enumerate(row.loss_mask + [None]):
        if m == value and start is None:
            start = i
        elif m != value and start is not None:
            out.append((start, i))
            start = None
    return out


def _run(engine, envs, **kw):
    cfg = RolloutConfig(n=4, initial_rollouts=2, max_response_tokens=96, segment_max_tokens=40, seed=3,
                        response_prefix=PREFIX, **kw)
    rollout = TreeRollout(engine, cfg)
    return rollout, rollout.run(envs, [{"index": 0}, {"index": 1}])


@pytest.mark.parametrize("schedule", ["rounds", "continuous"])
def test_arpo_tree_branches_after_tool_results(engine, envs, schedule):
    _, result = _run(engine, envs, mode="arpo", branch_probability=1.0, branch_entropy_source="after_tool",
                     schedule=schedule)
    assert result.stats["rollout/continuous"] == float(schedule == "continuous")
    rows = result.rows
    tok = engine.tokenizer
    for gid in (0, 1):
        group = [r for r in rows if r.group_id == gid]
        assert len(group) == 4  # exactly n per group
    clones = [r for r in rows if r.parent_id is not None]
    assert clones, "tau=1 must branch at the first tool result"
    by_id = {r.traj_id: r for r in rows}
    for clone in clones:
        parent = by_id[clone.parent_id]
        assert parent.group_id == clone.group_id
        shared = 0
        while (shared < min(len(clone.segment_ids), len(parent.segment_ids))
               and clone.segment_ids[shared] == parent.segment_ids[shared]):
            shared += 1
        assert shared > 0
        assert clone.response_ids[:shared] == parent.response_ids[:shared]  # the prefix is shared exactly
        assert clone.loss_mask[shared - 1] == 0  # ...and ends on env text
        assert tok.decode(clone.response_ids[:shared]).rstrip().endswith("</result>")  # right after a tool result
    assert result.stats["rollout/branches_per_tree"] > 0


@pytest.mark.parametrize("schedule", ["rounds", "continuous"])
def test_loss_mask_excludes_env_text(engine, envs, schedule):
    _, result = _run(engine, envs, mode="aepo", schedule=schedule)
    tok = engine.tokenizer
    for row in result.rows:
        assert len(row.response_ids) == len(row.loss_mask) == len(row.old_logprobs) == len(row.entropies)
        for start, end in _spans(row, 0):
            text = tok.decode(row.response_ids[start:end])
            assert text.startswith(PREFIX) or text.lstrip().startswith("<result>"), text
        for start, end in _spans(row, 1):
            assert "<result>" not in tok.decode(row.response_ids[start:end])
            assert all(lp <= 0.0 for lp in row.old_logprobs[start:end])
            assert all(h >= 0.0 for h in row.entropies[start:end])
        assert row.num_tool_calls >= 1  # the forced call ran in the sandbox
        assert "42" in tok.decode(row.response_ids)


def test_h_initial_is_reset_per_rollout_call(engine, envs):
    rollout, _ = _run(engine, envs, mode="aepo")
    second = rollout.run(envs, [{"index": 1}, {"index": 0}])  # the same rollout object, a new call
    for row in second.rows:
        assert row.h_initial == row.segment_entropies[0]  # its own first segment, never a stale value


def test_flat_mode_has_no_branches(engine, envs):
    _, result = _run(engine, envs, mode="flat")
    assert all(r.parent_id is None for r in result.rows)
    assert [sum(r.group_id == g for r in result.rows) for g in (0, 1)] == [4, 4]
