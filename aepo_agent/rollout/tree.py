"""Flat (GRPO), ARPO-tree and AEPO-tree rollouts of an engine against tool-use envs.

Trajectories advance one segment at a time through a segment stream (``engines.stream``): in ``rounds`` one engine
call per round generates the next segment of every active trajectory (the released loop); in ``continuous`` a
trajectory goes on as soon as its segment ends. Identical prefixes (branches that just split) are computed once by
the engine. A branch is an ``env.clone()`` plus a copy of the token state.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aepo_agent.engines.base import Engine, SamplingParams, Segment
from aepo_agent.engines.stream import make_stream
from aepo_agent.rollout.config import RolloutConfig
from aepo_agent.rollout.entropy import aepo_branch, arpo_branch, premonitor_global_budget, segment_entropy
from aepo_agent.rollout.trajectory import RolloutResult, RolloutRow, Trajectory, chat_prompt_ids
from aepo_envs.contract import clone_env, end_episode, end_episode_reward, env_stop_strings

OVERRUN_PREFIX = "max_tool_calls"  # the env's truncation_reason when a tool call was over its budget


@dataclass
class _Group:
    gid: int
    task_id: str
    prompt_ids: list[int]
    root_env: Any
    target: int
    count: int = 0
    run: int = 0  # AEPO: consecutive rounds in which this group gained trajectories
    gained: bool = False
    fills: int = 0  # fresh global samples started because every path ended short of n
    trajs: list[Trajectory] = field(default_factory=list)


class TreeRollout:
    """Runs one rollout call: groups of exactly ``cfg.n`` trajectories per prompt env."""

    def __init__(self, engine: Engine, cfg: RolloutConfig):
        if not isinstance(cfg, RolloutConfig):
            raise TypeError(f"TreeRollout needs a RolloutConfig, got {type(cfg).__name__}")
        self.engine = engine
        self.cfg = cfg
        self.tok = engine.tokenizer
        self.vocab_size = len(self.tok)
        self._next_traj = 0
        self._next_seg = 0
        self._next_request = 0
        self._stream, self.schedule = make_stream(engine, cfg.schedule, seed=cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.generated_tokens = 0
        self.rounds = 0
        # Decisions of the main loop, in order, for replay against the released loop: ("budget", gid, m),
        # ("round", k), ("branch", gid, source, clone), ("fill", gid, new), ("run", gid, l); trajectories are
        # named by their index in their group.
        self.events: list[tuple] = []
        self._recording = False
        self._after_tool = cfg.branch_entropy_source == "after_tool"
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------------------------------ public
    def run(self, envs: Sequence[Any], reset_options: Sequence[dict[str, Any]] | None = None) -> RolloutResult:
        """Reset each env (one per prompt group) and return n trajectories per group. The envs stay open."""
        reset_options = list(reset_options or [{} for _ in envs])
        if len(reset_options) != len(envs):
            raise ValueError("reset_options must have one entry per env")
        cfg = self.cfg
        groups: list[_Group] = []
        for gid, (env, opts) in enumerate(zip(envs, reset_options, strict=True)):
            _, info = env.reset(options=opts)  # through the user's wrappers, which the clones keep
            prompt_ids = chat_prompt_ids(self.tok, info["messages"])
            groups.append(_Group(gid, info["task_id"], prompt_ids, env, target=cfg.n))
        self._stop = tuple(sorted({s for g in groups for s in env_stop_strings(g.root_env)}))
        self._eos = getattr(self.tok, "eos_token_id", None)

        initial = {g.gid: cfg.n if cfg.mode == "flat" else min(cfg.initial_rollouts, cfg.n) for g in groups}
        monitors: dict[int, Trajectory] = {}
        try:
            if cfg.mode == "aepo" and cfg.dynamic_rollouts:
                initial, monitors = self._premonitor(groups)
            for g in groups:
                if cfg.mode != "flat":
                    self.events.append(("budget", g.gid, initial[g.gid]))
                if g.gid in monitors:
                    self._adopt(g, monitors[g.gid])
                while g.count < initial[g.gid]:
                    self._new_trajectory(g)
            self._drive(groups, allow_branch=cfg.mode != "flat", record=True)
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            clear = getattr(self.engine, "clear_prefix_cache", None)
            if callable(clear):
                clear()  # KV kept between rounds is useless after the rollout; free it before the update
        return RolloutResult(self._rows(groups), self._stats(groups))

    # ------------------------------------------------------------------------------------------ setup
    def _new_trajectory(self, g: _Group) -> Trajectory:
        traj = Trajectory(traj_id=self._next_traj, group=g.gid, env=clone_env(g.root_env))
        self._next_traj += 1
        if self.cfg.response_prefix:
            self._apply_prefix(traj)
        self._adopt(g, traj)
        return traj

    def _apply_prefix(self, traj: Trajectory) -> None:
        """Force the opening of the response (not trained on). A prefix that ends with a stop string is a
        complete first action: the env runs it now and its result is appended, as a warm start."""
        prefix = self.cfg.response_prefix
        self._append(traj, self.tok.encode(prefix, add_special_tokens=False), model=False)
        if not prefix.endswith(self._stop):
            traj.pending_text = prefix
            return
        obs, reward, terminated, truncated, info = traj.env.step(prefix)
        traj.reward += reward
        if terminated or truncated:
            self._finish(traj, info.get("reward_components", {}), "prefix_ended_episode")
            return
        self._append(traj, self.tok.encode(obs, add_special_tokens=False), model=False)
        traj.last_was_tool = info.get("tool_name") is not None and info.get("tool_status") != "parse_error"
        traj.tool_calls += int(traj.last_was_tool)

    def _append(self, t: Trajectory, ids: list[int], *, model: bool, logprobs=None, entropies=None) -> None:
        seg = self._new_seg_id()
        t.response_ids += ids
        t.loss_mask += [int(model)] * len(ids)
        t.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)
        t.entropies += list(entropies) if entropies is not None else [0.0] * len(ids)
        t.segment_ids += [seg] * len(ids)

    def _adopt(self, g: _Group, traj: Trajectory) -> None:
        g.trajs.append(traj)
        g.count += 1
        g.gained = True

    def _premonitor(self, groups: list[_Group]) -> tuple[dict[int, int], dict[int, Trajectory]]:
        """AEPO entropy pre-monitoring: H_root from a short probe per prompt (released) or the monitor's first
        segment, mean H_tool over every segment of one full trajectory per prompt; they decide the budget m."""
        roots = self._probe_roots(groups) if self.cfg.premonitor_root == "probe" else {}
        monitor_groups = [_Group(g.gid, g.task_id, g.prompt_ids, g.root_env, target=1) for g in groups]
        for mg in monitor_groups:
            self._new_trajectory(mg)
        self._drive(monitor_groups, allow_branch=False)
        initial, kept = {}, {}
        for mg in monitor_groups:
            traj = mg.trajs[0]
            first = traj.seg_entropies[0] if traj.seg_entropies else 0.0
            h_root = roots.get(mg.gid, first)
            h_tool = statistics.fmean(traj.seg_entropies) if traj.seg_entropies else h_root
            initial[mg.gid] = premonitor_global_budget(self.cfg.n, h_root, h_tool, beta=self.cfg.premonitor_beta)
            if self.cfg.keep_monitor_rollout:
                kept[mg.gid] = traj
            else:
                traj.env.close()
        return initial, kept

    def _probe_roots(self, groups: list[_Group]) -> dict[int, float]:
        """H_root per group: the entropy of a ``premonitor_probe_tokens`` sample from the bare prompt."""
        cfg = self.cfg
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                                repetition_penalty=cfg.repetition_penalty, max_tokens=cfg.premonitor_probe_tokens,
                                stop=self._stop)
        pending: dict[int, int] = {}
        for g in groups:
            self._next_request += 1
            self._stream.submit(self._next_request, list(g.prompt_ids), params)
            pending[self._next_request] = g.gid
        roots: dict[int, float] = {}
        while pending:
            for request_id, segment in self._stream.collect():
                tokens = segment.token_ids[: cfg.premonitor_probe_tokens]
                roots[pending.pop(request_id)] = self._entropy(segment.entropies[: len(tokens)])
        return roots

    def _entropy(self, token_entropies: Sequence[float]) -> float:
        cfg = self.cfg
        return segment_entropy(token_entropies, window=cfg.entropy_window, reduction=cfg.entropy_reduction,
                               vocab_size=self.vocab_size, normalize=cfg.entropy_normalize)

    # ------------------------------------------------------------------------------------------ schedule
    def _drive(self, groups: list[_Group], *, allow_branch: bool, record: bool = False) -> None:
        """Run every active trajectory of ``groups`` to its end. Each ``collect`` of the stream is one step of the
        loop: the segments that ended are advanced (env step, branch), groups left without an active path are
        filled, the AEPO run counters move, and every trajectory that goes on is submitted again. With a
        round stream a step is the released round; with a continuous one, only the segments that just ended."""
        cfg = self.cfg
        by_gid = {g.gid: g for g in groups}
        in_flight: dict[int, Trajectory] = {}  # request id -> the trajectory whose segment it generates

        def submit_waiting() -> None:
            busy = {id(t) for t in in_flight.values()}
            for g in groups:
                for t in g.trajs:
                    if t.done or id(t) in busy:
                        continue
                    left = cfg.max_response_tokens - len(t.response_ids)
                    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                                            repetition_penalty=cfg.repetition_penalty,
                                            max_tokens=cfg.segment_budget(left), stop=self._stop)
                    self._next_request += 1
                    self._stream.submit(self._next_request, g.prompt_ids + t.response_ids, params)
                    in_flight[self._next_request] = t

        submit_waiting()
        main_round = 0
        while in_flight:
            ended = self._stream.collect()
            self.rounds += 1
            self._recording = record
            if record:
                self.events.append(("round", main_round))
                main_round += 1
            for g in groups:
                g.gained = False
            touched: set[int] = set()
            batch = []
            for request_id, segment in ended:
                traj = in_flight.pop(request_id)
                touched.add(traj.group)
                batch.append((by_gid[traj.group], traj, segment))
            self._advance(batch, allow_branch)
            if allow_branch:
                for g in groups:  # fill: a prompt with no active path gets fresh global samples
                    if g.count < g.target and all(t.done for t in g.trajs):
                        touched.add(g.gid)
                        while True:
                            self._new_trajectory(g)
                            g.fills += 1
                            self._event("fill", g.gid, len(g.trajs) - 1)
                            if cfg.fill != "all" or g.count >= g.target:
                                break
                # AEPO's l: consecutive steps in which the prompt gained a trajectory, over the prompts that had
                # an event this step (in a round, every prompt with an active path).
                if any(by_gid[gid].gained for gid in touched):
                    for gid in sorted(touched):
                        g = by_gid[gid]
                        g.run = g.run + 1 if g.gained else 0
                        self._event("run", gid, g.run)
            submit_waiting()
        self._recording = False

    def _event(self, *event: object) -> None:
        if self._recording:
            self.events.append(tuple(event))

    def _advance(self, batch: list[tuple[_Group, Trajectory, Segment]], allow_branch: bool) -> None:
        """Advance every trajectory whose segment ended: record it, step its env, branch. The env steps of the
        batch run concurrently with ``rollout.env_threads`` > 1 (a slow tool delays only its own trajectory);
        everything that draws from the branch RNG stays in the batch's order, so the decisions do not change."""
        prepared = [self._record_segment(g, t, seg, allow_branch) for g, t, seg in batch]
        actions = [(t, action) for (_, t, _), action in zip(batch, prepared, strict=True) if action is not None]
        results = dict(zip([id(t) for t, _ in actions], self._step_envs(actions), strict=True))
        for g, t, seg in batch:
            self._conclude(g, t, seg, results.get(id(t)), allow_branch)

    def _step_envs(self, actions: list[tuple[Trajectory, str]]) -> list[tuple]:
        # Envs that run their steps elsewhere (a Ray pool) say how many at once: the threads follow them.
        width = max([self.cfg.env_threads, *(_step_concurrency(t.env) for t, _ in actions)])
        threads = min(width, len(actions))
        if threads <= 1:
            return [t.env.step(action) for t, action in actions]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="aepo-env")
        return list(self._pool.map(lambda item: item[0].env.step(item[1]), actions))

    def _record_segment(self, g: _Group, t: Trajectory, seg: Segment, allow_branch: bool) -> str | None:
        """Append ``seg`` to ``t`` (cut to its budget); the action its env must step, or None (a length stop with
        budget left: the same action goes on in the next segment)."""
        cfg = self.cfg
        left = cfg.max_response_tokens - len(t.response_ids)  # t's tokens do not change while its segment runs
        tokens = list(seg.token_ids[:left])
        cut = len(tokens) < len(seg.token_ids)
        self.generated_tokens += len(tokens)
        h = self._entropy(seg.entropies[: len(tokens)])
        if t.h_initial is None:
            t.h_initial = h
        t.seg_entropies.append(h)
        if t.last_was_tool:
            t.after_tool_entropies.append(h)
        if allow_branch and self._after_tool and t.last_was_tool and not t.inherited_branch_point:
            self._maybe_branch(g, t, h)  # clones start right after the tool result, before this segment
        t.inherited_branch_point = False
        self._append(t, tokens, model=True, logprobs=seg.logprobs[: len(tokens)],
                     entropies=seg.entropies[: len(tokens)])
        t.num_segments += 1
        text = seg.text if not cut else self.tok.decode(tokens, skip_special_tokens=False)
        if seg.finish_reason == "length" and not cut and cfg.max_response_tokens > len(t.response_ids):
            t.pending_text += text  # the segment hit its token cap: keep generating the same action
            t.last_was_tool = False
            return None
        action, t.pending_text = t.pending_text + text, ""
        return action

    def _conclude(self, g: _Group, t: Trajectory, seg: Segment, result: tuple | None, allow_branch: bool) -> None:
        """Apply the env's answer to ``t`` (or its length continuation) and decide its branch."""
        cfg = self.cfg
        h = t.seg_entropies[-1]
        budget_left = cfg.max_response_tokens - len(t.response_ids)
        if result is None:  # continued after a length stop
            if allow_branch and not self._after_tool and cfg.branch_from == "active":
                self._maybe_branch(g, t, h)
            return
        obs, reward, terminated, truncated, info = result
        t.reward += reward
        if terminated or truncated:
            overrun = str(info.get("truncation_reason", "")).startswith(OVERRUN_PREFIX)
            if overrun and cfg.tool_overrun == "eos" and budget_left > 0 and self._eos is not None:
                # Released: a call over the limit ends the path with an EOS the policy is trained on. It was not
                # sampled, so it has no engine log-prob (NaN keeps it out of the engine/trainer gap).
                self._append(t, [int(self._eos)], model=True, logprobs=[math.nan], entropies=[0.0])
            reason = "answer" if terminated else ("tool_overrun" if overrun else "env_truncated")
            t.episode = _plain(info.get("episode"))
            self._finish(t, info.get("reward_components", {}), reason)
            return
        if seg.finish_reason == "eos" or budget_left <= 0:
            extra, comps = self._end_episode(t, "eos" if seg.finish_reason == "eos" else "max_response_tokens")
            t.reward += extra
            self._finish(t, comps, "eos_without_answer" if budget_left > 0 else "max_response_tokens")
            return
        self._append(t, self.tok.encode(obs, add_special_tokens=False)[:budget_left], model=False)
        t.last_was_tool = info.get("tool_name") is not None and info.get("tool_status") != "parse_error"
        if t.last_was_tool:
            t.tool_calls += 1
        if len(t.response_ids) >= cfg.max_response_tokens:
            extra, comps = self._end_episode(t, "max_response_tokens")
            t.reward += extra
            self._finish(t, comps, "max_response_tokens")
            return
        if allow_branch and not self._after_tool and (t.last_was_tool or cfg.branch_from == "active"):
            self._maybe_branch(g, t, h)

    def _end_episode(self, t: Trajectory, reason: str) -> tuple[float, dict[str, float]]:
        """End ``t``'s episode from outside; its terminal reward goes through the user's reward wrappers as a
        step's would (statistics wrappers do not see it)."""
        raw, components = end_episode(t.env, reason)
        return end_episode_reward(t.env, raw), components

    def _maybe_branch(self, g: _Group, t: Trajectory, h: float) -> None:
        cfg = self.cfg
        assert t.h_initial is not None
        delta = h - t.h_initial
        for _ in range(cfg.beam_size - 1):
            if g.count >= g.target:
                return
            if cfg.mode == "arpo":
                take = arpo_branch(self.rng, delta, tau=cfg.branch_probability, beta=cfg.entropy_weight)
            else:
                take = aepo_branch(
                    self.rng,
                    delta,
                    tau=cfg.branch_probability,
                    beta=cfg.entropy_weight,
                    slope=cfg.consecutive_penalty,
                    run=g.run,
                )
            if take:
                # after_tool: the clone starts at a branch point already decided, with the source's entropy
                # reference; previous_segment (released): its H_initial is its own first segment.
                clone = t.branch(self._next_traj, clone_env(t.env),
                                 at_decided_point=cfg.branch_entropy_source == "after_tool")
                self._next_traj += 1
                self._adopt(g, clone)
                self._event("branch", g.gid, g.trajs.index(t), len(g.trajs) - 1)

    def _finish(self, t: Trajectory, components: dict[str, float], reason: str) -> None:
        t.done = True
        t.components = dict(components)
        t.finish = reason
        t.env.close()

    def _new_seg_id(self) -> int:
        self._next_seg += 1
        return self._next_seg

    # ------------------------------------------------------------------------------------------ output
    def _rows(self, groups: list[_Group]) -> list[RolloutRow]:
        rows = []
        for g in groups:
            if len(g.trajs) != g.target:
                raise RuntimeError(f"group {g.gid} ended with {len(g.trajs)} trajectories, expected {g.target}")
            for t in g.trajs:
                rows.append(
                    RolloutRow(
                        group_id=g.gid,
                        task_id=g.task_id,
                        traj_id=t.traj_id,
                        parent_id=t.parent_id,
                        branch_step=t.branch_step,
                        prompt_ids=list(g.prompt_ids),
                        response_ids=t.response_ids,
                        loss_mask=t.loss_mask,
                        old_logprobs=t.logprobs,
                        entropies=t.entropies,
                        segment_ids=t.segment_ids,
                        reward=t.reward,
                        reward_components=t.components,
                        num_tool_calls=t.tool_calls,
                        finish=t.finish,
                        h_initial=t.h_initial,
                        segment_entropies=list(t.seg_entropies),
                        episode=t.episode,
                    )
                )
        return rows

    def _stats(self, groups: list[_Group]) -> dict[str, float]:
        trajs = [t for g in groups for t in g.trajs]
        branches = [sum(t.parent_id is not None for t in g.trajs) for g in groups]
        distinct = [len({tuple(t.response_ids) for t in g.trajs}) for g in groups]
        first = [t.seg_entropies[0] for t in trajs if t.parent_id is None and t.seg_entropies]
        after = [h for t in trajs for h in t.after_tool_entropies]
        return {
            "rollout/branches_per_tree": statistics.fmean(branches) if branches else 0.0,
            "rollout/fills_per_tree": statistics.fmean(g.fills for g in groups) if groups else 0.0,
            "rollout/distinct_trajectories": statistics.fmean(distinct) if distinct else 0.0,
            "rollout/tool_calls_per_traj": statistics.fmean(t.tool_calls for t in trajs) if trajs else 0.0,
            "rollout/entropy_initial": statistics.fmean(first) if first else 0.0,
            "rollout/entropy_after_tool": statistics.fmean(after) if after else 0.0,
            "rollout/reward_mean": statistics.fmean(t.reward for t in trajs) if trajs else 0.0,
            "rollout/response_tokens_mean": statistics.fmean(len(t.response_ids) for t in trajs) if trajs else 0.0,
            "rollout/generated_tokens": float(self.generated_tokens),
            "rollout/rounds": float(self.rounds),
            "rollout/continuous": float(self.schedule == "continuous"),
        }


def _step_concurrency(env: Any) -> int:
    """Steps the env's backend runs at once (``step_concurrency``, looked up through the wrappers), else 1."""
    lookup = getattr(env, "get_wrapper_attr", None)
    try:
        return int(lookup("step_concurrency")) if callable(lookup) else int(getattr(env, "step_concurrency", 1))
    except AttributeError:
        return 1


def _plain(episode: Any) -> dict[str, Any] | None:
    """RecordEpisodeStatistics' ``info["episode"]`` (numpy scalars) as plain floats."""
    if not isinstance(episode, dict):
        return None
    return {k: v.item() if hasattr(v, "item") else v for k, v in episode.items()}
