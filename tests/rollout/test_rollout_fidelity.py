"""Released-code fidelity of the tree rollout (docs/fidelity.md): clones under ``after_tool``, unsplit segments,
the pre-monitoring probe."""

from __future__ import annotations

import math

from released_loop import ScriptedEngine
from test_rollout_released_replay import _env

from aepo_agent.engines.base import SamplingParams, Segment
from aepo_agent.rollout import RolloutConfig, TreeRollout, premonitor_global_budget


def test_after_tool_clones_do_not_branch_again_at_their_own_branch_point() -> None:
    rebranched = clones = 0
    for seed in range(30):
        cfg = RolloutConfig(mode="arpo", n=8, initial_rollouts=2, branch_entropy_source="after_tool",
                            max_response_tokens=400, seed=seed)
        envs = [_env(4)]
        result = TreeRollout(ScriptedEngine(weights=(0.7, 0.0, 0.15, 0.05, 0.0, 0.1)), cfg).run(
            envs, [{"task_id": "t0"}])
        by_id = {r.traj_id: r for r in result.rows}
        for row in result.rows:
            if row.parent_id is None:
                continue
            clones += 1
            parent = by_id[row.parent_id]
            rebranched += parent.parent_id is not None and parent.branch_step == row.branch_step
            if parent.parent_id is None:  # a clone of a root keeps its source's entropy reference
                assert row.h_initial == parent.h_initial
    assert clones > 20
    assert rebranched == 0


class _Recorder(ScriptedEngine):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls: list[tuple[int, int]] = []  # (rows, max_tokens)

    def generate(self, prefixes, params: SamplingParams, n: int = 1):
        self.calls.append((len(prefixes), params.max_tokens))
        return super().generate(prefixes, params, n)


def test_segments_are_not_split_by_default() -> None:
    assert RolloutConfig().segment_max_tokens is None
    engine = _Recorder()
    cfg = RolloutConfig(mode="arpo", n=2, initial_rollouts=2, max_response_tokens=900, seed=0)
    TreeRollout(engine, cfg).run([_env(3)], [{"task_id": "t0"}])
    assert engine.calls[0] == (2, 900)  # the first round asks for the whole budget, as released
    capped = _Recorder()
    cfg = RolloutConfig(mode="arpo", n=2, initial_rollouts=2, max_response_tokens=900, seed=0,
                        segment_max_tokens=64)
    TreeRollout(capped, cfg).run([_env(3)], [{"task_id": "t0"}])
    assert capped.calls[0] == (2, 64)


class _ProbeEngine(ScriptedEngine):
    """Probe samples (max_tokens 50) have entropy 3 per token; every other sample 1 per token."""

    def __init__(self) -> None:
        super().__init__(weights=(0.0, 0.0, 1.0, 0.0, 0.0, 0.0))
        self.calls: list[int] = []

    def generate(self, prefixes, params: SamplingParams, n: int = 1):
        self.calls.append(params.max_tokens)
        out = super().generate(prefixes, params, n)
        level = 3.0 if params.max_tokens == 50 else 1.0
        return [[Segment(s.token_ids, s.logprobs, [level] * len(s.token_ids), s.text, s.finish_reason,
                         s.stop_string)] for (s,) in out]


def test_premonitor_h_root_comes_from_its_own_probe() -> None:
    engine = _ProbeEngine()
    cfg = RolloutConfig(mode="aepo", n=8, initial_rollouts=2, dynamic_rollouts=True, max_response_tokens=300, seed=0)
    rollout = TreeRollout(engine, cfg)
    rollout.run([_env(3)], [{"task_id": "t0"}])
    assert engine.calls[0] == 50  # the probe comes first, with the released 50 tokens
    budget = next(e[2] for e in rollout.events if e[0] == "budget")
    # An answer-only monitor: mean H_tool = its one segment (20 tokens of entropy 1 in the window); H_root = the
    # probe's window (20 tokens of entropy 3).
    assert budget == premonitor_global_budget(8, 60 / math.log(256), 20 / math.log(256), beta=0.5) == 8
    old = RolloutConfig(mode="aepo", n=8, initial_rollouts=2, dynamic_rollouts=True, max_response_tokens=300,
                        seed=0, premonitor_root="first_segment")
    rollout = TreeRollout(_ProbeEngine(), old)
    rollout.run([_env(3)], [{"task_id": "t0"}])
    # The monitor's first segment is also its only H_tool segment: H_root - H_tool = 0, m = floor(n/2) + 1.
    assert next(e[2] for e in rollout.events if e[0] == "budget") == 8 // 2 + 1


def test_keep_monitor_rollout_reuses_the_monitor_as_a_global_sample() -> None:
    for keep in (False, True):
        cfg = RolloutConfig(mode="aepo", n=6, initial_rollouts=2, dynamic_rollouts=True, max_response_tokens=300,
                            seed=1, keep_monitor_rollout=keep)
        result = TreeRollout(ScriptedEngine(), cfg).run([_env(3)], [{"task_id": "t0"}])
        assert len(result.rows) == 6
        assert any(r.traj_id == 0 for r in result.rows) is keep  # trajectory 0 is the monitor
