"""pass@k over n samples per task (the unbiased estimator of Chen et al. 2021) and the eval runner."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from aepo_agent.trainer.batch import LogprobGap


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}; raise eval.n or lower eval.k")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _add_gap(trainer: Any, rows: list, gap: LogprobGap, *, temperature: float) -> None:
    """Add the engine/model log-prob gap of ``rows`` (the model's log-probs at the sampling temperature; an
    engine sampling with top-p/top-k reports its filtered distribution, so the gap is exact only without them)."""
    import torch

    from aepo_agent.trainer.batch import collate, policy_logprobs

    if temperature <= 0:
        return  # greedy: no distribution to compare
    rows = [r for r in rows if r.response_ids]
    model, size = trainer.model, trainer.cfg.train.micro_batch_size
    model.eval()
    with torch.no_grad():
        for s in range(0, len(rows), size):
            part = collate(rows[s : s + size], trainer.pad_id)
            logp, _ = policy_logprobs(model, part, temperature=temperature, with_entropy=False)
            gap.add(part, logp)


def evaluate(trainer: Any, *, output: Path | None = None) -> dict[str, Any]:
    """Sample ``eval.n`` trajectories per task with the eval sampling settings; report mean reward and pass@k."""
    from aepo_agent.rollout import RolloutConfig, TreeRollout
    from aepo_envs.contract import env_tasks

    cfg = trainer.cfg
    ev = cfg.eval
    tasks = [row.task_id for row in env_tasks(trainer.envs[0])]
    if ev.limit is not None:
        tasks = tasks[: ev.limit]
    rcfg = RolloutConfig(
        mode="flat", n=ev.n, initial_rollouts=ev.n, temperature=ev.temperature, top_p=ev.top_p, top_k=ev.top_k,
        max_response_tokens=ev.max_response_tokens, segment_max_tokens=cfg.rollout.segment_max_tokens,
        seed=cfg.seed,
    )
    per_task: dict[str, list[float]] = defaultdict(list)
    gap = LogprobGap()
    envs = trainer.envs
    for start in range(0, len(tasks), len(envs)):
        chunk = tasks[start : start + len(envs)]
        result = TreeRollout(trainer.engine, rcfg).run(envs[: len(chunk)], [{"task_id": t} for t in chunk])
        for row in result.rows:
            per_task[row.task_id].append(row.reward)
        _add_gap(trainer, result.rows, gap, temperature=ev.temperature)
    summary: dict[str, Any] = {
        "tasks": len(per_task),
        "n": ev.n,
        "reward_mean": statistics.fmean(r for rs in per_task.values() for r in rs) if per_task else 0.0,
        # |engine - evaluated model| log-prob of the sampled tokens: ~0 when the engine scores the loaded weights
        **{k.replace("train/", "eval/"): v for k, v in gap.metrics().items()},
    }
    for k in ev.k:
        scores = [pass_at_k(len(rs), sum(r >= ev.success_threshold for r in rs), k) for rs in per_task.values()]
        summary[f"pass@{k}"] = statistics.fmean(scores) if scores else 0.0
    if output is not None:
        with output.open("w", encoding="utf-8") as fh:
            for task_id, rs in per_task.items():
                fh.write(json.dumps({"task_id": task_id, "rewards": rs}) + "\n")
            fh.write(json.dumps({"summary": summary}) + "\n")
    return summary
