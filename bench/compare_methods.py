"""AEPO vs ARPO vs GRPO: K training steps each on CalcQA over several seeds, from the same pristine weights.

Prints mean reward and branch statistics per method (mean ± std across seeds).
Usage: python bench/compare_methods.py [--steps 2 --seeds 0,1,2 --prompts 1 --n 4 --threads 1]
       python bench/compare_methods.py --model DIR --response-prefix "" --branch-source previous_segment
(DIR from ``aepo sft examples/configs/quickstart.yaml --out DIR``: a warm-started model that calls tools itself)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FORCED_TOOL_CALL = "<python>print(6 * 7)</python>"
METHODS: dict[str, list[str]] = {
    "aepo": ["rollout.mode=aepo", "algo.loss=aepo", "algo.entropy_advantage=true"],
    "arpo": ["rollout.mode=arpo", "algo.loss=ppo", "algo.entropy_advantage=false"],
    # The released GRPO baseline: flat sampling, PPO-clip loss with token-mean aggregation.
    "grpo": ["rollout.mode=flat", "algo.loss=ppo", "algo.agg=token-mean", "algo.entropy_advantage=false"],
}
COLUMNS = [  # (metric key, title)
    ("rollout/branches_per_tree", "br/tree"),
    ("rollout/fills_per_tree", "fills"),
    ("rollout/distinct_trajectories", "distinct"),
    ("rollout/tool_calls_per_traj", "tools/traj"),
    ("rollout/entropy_initial", "H init"),
    ("rollout/entropy_after_tool", "H tool"),
    ("train/adv_abs_mean", "|adv|"),
    ("time/rollout_s", "rollout s"),
    ("time/step_s", "s/step"),
]


def _overrides(method: str, seed: int, args: argparse.Namespace, run_dir: Path) -> list[str]:
    return METHODS[method] + [
        f"seed={seed}",
        f"run_dir={json.dumps(str(run_dir))}",
        f"train.steps={args.steps}",
        f"train.prompts_per_step={args.prompts}",
        "train.mini_batch_prompts=1",
        "train.tensorboard=false",
        "train.plot=false",
        f"rollout.n={args.n}",
        f"rollout.initial_rollouts={max(1, args.n // 2)}",
        f"rollout.max_response_tokens={args.max_response_tokens}",
        f"rollout.segment_max_tokens={'null' if args.segment_max_tokens is None else args.segment_max_tokens}",
        f"rollout.branch_entropy_source={args.branch_source}",
        f"rollout.response_prefix={json.dumps(args.response_prefix)}",
    ]


def _run(method: str, seed: int, args: argparse.Namespace, model: Any, tokenizer: Any,
         pristine: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """K steps of one method and seed from the pristine weights (fresh optimizer); per-step metrics."""
    from aepo_agent.trainer import Trainer, load_config

    cfg = load_config(args.config, _overrides(method, seed, args, root / f"{method}-seed{seed}"))
    model.load_state_dict(pristine)
    trainer = Trainer(cfg, model=model, tokenizer=tokenizer)
    history = []
    try:
        for step in range(cfg.train.steps):  # train_step, not train(): no checkpoint I/O inside the timing
            started = time.perf_counter()
            metrics = trainer.train_step(step)
            metrics["time/step_s"] = time.perf_counter() - started
            history.append(metrics)
    finally:
        trainer.close()
    return history


def _pm(values: list[float], fmt: str = ".3f") -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {std:{fmt}}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "examples" / "configs" / "quickstart.yaml"))
    parser.add_argument("--methods", default="aepo,arpo,grpo")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2, help="K training steps per run")
    parser.add_argument("--prompts", type=int, default=1, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="trajectories per prompt (trees: n/2 global samples)")
    parser.add_argument("--max-response-tokens", type=int, default=64)
    parser.add_argument("--segment-max-tokens", type=int, default=None,
                        help="cap on one segment (default: none, the released rule)")
    parser.add_argument("--branch-source", default="after_tool", choices=["previous_segment", "after_tool"],
                        help="after_tool (default here) branches at the forced tool result; previous_segment (the "
                        "released rule) only after a tool call the model wrote itself, which SmolLM2 never does")
    parser.add_argument("--response-prefix", default=FORCED_TOOL_CALL)
    parser.add_argument("--model", default=None, help="model name or dir (default: the config's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default because the machine is shared (raise it on an idle one)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(METHODS)}")

    sys.path.insert(0, str(REPO))
    import torch

    from aepo_agent.trainer import load_config
    from aepo_agent.trainer.trainer import load_policy

    torch.set_num_threads(args.threads)
    base = load_config(args.config, [f"model.name={json.dumps(args.model)}"] if args.model else [])
    model, tokenizer = load_policy(base)
    pristine = {k: v.detach().clone() for k, v in model.state_dict().items()}
    print(f"{args.config}: {', '.join(methods)} x seeds {seeds}, K={args.steps} steps, {args.prompts} prompts/step "
          f"x n={args.n}, max_response_tokens={args.max_response_tokens}, {args.threads} threads, "
          f"model {base.model.name}, env {base.env.id} {base.env.kwargs}")
    if args.response_prefix:
        print(f"response_prefix={args.response_prefix!r}: a forced, complete first tool call (run by the env's "
              "real sandbox, masked out of the loss), so tool results and branching happen.")
    print(f"Branch source {args.branch_source}. Every run starts from the same pristine weights; a seed sees the "
          "same prompts under every method.")
    started = time.perf_counter()
    results: dict[str, list[list[dict[str, Any]]]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="aepo-compare-") as tmp:
        for seed in seeds:
            for method in methods:
                history = _run(method, seed, args, model, tokenizer, pristine, Path(tmp))
                results[method].append(history)
                rewards = ", ".join(f"{h['rollout/reward_mean']:.3f}" for h in history)
                print(f"  {method} seed {seed}: reward per step [{rewards}], "
                      f"{sum(h['time/step_s'] for h in history):.0f}s "
                      f"(rollout {sum(h['time/rollout_s'] for h in history):.0f}s)", flush=True)
    total = time.perf_counter() - started

    print(f"\n{'method':<7}{'mean reward':>17}{'last reward':>17}" + "".join(f"{t:>11}" for _, t in COLUMNS))
    for method in methods:
        runs = results[method]
        mean_r = [statistics.fmean(h["rollout/reward_mean"] for h in run) for run in runs]
        last_r = [run[-1]["rollout/reward_mean"] for run in runs]
        cells = [statistics.fmean(h[key] for run in runs for h in run) for key, _ in COLUMNS]
        print(f"{method:<7}{_pm(mean_r):>17}{_pm(last_r):>17}" + "".join(f"{c:>11.2f}" for c in cells))
    print(f"(rewards: mean ± std across {len(seeds)} seeds of the per-run value; other columns: mean over all steps "
          f"and seeds; H = normalized segment entropy, initial = first segment of a global sample, tool = first "
          f"segment after a tool result; |adv| = mean absolute token advantage, 0 when every trajectory of a group "
          f"got the same reward, so the step does not change the policy)\ntotal wall time {total:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
