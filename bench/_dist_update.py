"""The trainer's update time on 1 rank vs 2 ranks (torchrun, gloo, FSDP2) at equal global batch on CPU.

Each variant runs in its own processes on the same fixed rollout batch (random tokens, rewards spread so every row
trains): ``Trainer.update`` once to warm up, then ``--reps`` timed updates, the median reported. 1 rank runs with
all the cores' threads and with one thread; 2 ranks with one thread each (torchrun's default). On a machine with
as many cores as ranks, 2 ranks can gain at most what the cores give; the ratio is what this machine shows.
Usage: python bench/_dist_update.py [--model smollm2-135m-instruct --groups 4 --n 2 --prompt-tokens 32
                                     --response-tokens 64 --micro-batch 2 --reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_ARGS_VAR = "AEPO_DIST_UPDATE_ARGS"  # set: this process is a variant's worker, with these settings


class _NoEngine:
    """The update needs no rollout engine; the Trainer wants one."""

    shares_weights = False

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def update_weights(self, named_tensors: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _rows(args: argparse.Namespace, vocab: int) -> list[Any]:
    """``groups`` prompt groups of ``n`` rows: random tokens, env text in the middle, distinct rewards."""
    import torch

    from aepo_agent.rollout.trajectory import RolloutRow

    gen = torch.Generator().manual_seed(0)
    rows = []
    for group in range(args.groups):
        prompt = torch.randint(10, vocab, (args.prompt_tokens,), generator=gen).tolist()
        for k in range(args.n):
            length = args.response_tokens
            mask = [1] * (length // 2) + [0] * 8 + [1] * (length - length // 2 - 8)
            rows.append(RolloutRow(
                group_id=group, task_id=f"t{group}", traj_id=len(rows), parent_id=None, branch_step=None,
                prompt_ids=prompt, response_ids=torch.randint(10, vocab, (length,), generator=gen).tolist(),
                loss_mask=mask, old_logprobs=[-2.0] * length, entropies=[1.0] * length,
                segment_ids=[len(rows) + 1] * length, reward=float(k), reward_components={}, num_tool_calls=0,
                finish="answer"))
    return rows


def _worker(args: argparse.Namespace) -> None:
    """One variant's process (one rank under torchrun): time ``Trainer.update``; rank 0 prints a JSON line."""
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aepo_agent.models import resolve_model
    from aepo_agent.trainer.config import TrainConfig
    from aepo_agent.trainer.trainer import Trainer

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    cfg = TrainConfig.model_validate({
        "run_dir": str(Path(args.run_dir) / f"world{os.environ.get('WORLD_SIZE', '1')}"),
        "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"world_kwargs": {"n_questions": 4}}},
        "rollout": {"mode": "flat", "n": args.n, "initial_rollouts": args.n, "max_response_tokens": args.response_tokens},
        "algo": {"loss": "aepo", "entropy_advantage": True, "entropy_stats": "batch"},
        "train": {"prompts_per_step": args.groups, "mini_batch_prompts": args.groups,
                  "micro_batch_size": args.micro_batch, "lr": 1e-7, "tensorboard": False, "plot": False},
    })
    trainer = Trainer(cfg, model=model, tokenizer=tokenizer, engine=_NoEngine(tokenizer))
    rows = _rows(args, len(tokenizer))
    trainer.update(rows)  # warm-up (allocator, FSDP buffers)
    times = []
    for _ in range(args.reps):
        started = time.perf_counter()
        trainer.update(rows)
        times.append(time.perf_counter() - started)
    if trainer.is_main:
        print("RESULT " + json.dumps({"update_s": statistics.median(times), "threads": torch.get_num_threads()}))
    trainer.close()


def _run(args: argparse.Namespace, ranks: int | None, threads: int) -> dict[str, Any]:
    """A variant: one plain process, or ``ranks`` processes under torchrun; ``threads`` torch threads each."""
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    env[_ARGS_VAR] = json.dumps(vars(args))  # not as flags: torchrun would take --n for its own abbreviations
    launch = [] if ranks is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    proc = subprocess.run([sys.executable, *launch, str(Path(__file__).resolve())], env=env, capture_output=True,
                          text=True, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"variant ranks={ranks} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows {part, variant, wall_s, rate, ratio} (ratio: time of 1 rank with all threads / time of the variant)."""
    cores = os.cpu_count() or 1
    variants = [(f"1 rank, {cores} threads", None, cores), ("1 rank, 1 thread", None, 1),
                ("2 ranks x 1 thread (torchrun)", 2, 1)]
    results = {name: _run(args, ranks, threads) for name, ranks, threads in variants}
    base = results[variants[0][0]]["update_s"]
    rows_per_update = args.groups * args.n
    return [{"part": "update", "variant": name, "wall_s": r["update_s"],
             "rate": f"{rows_per_update / r['update_s']:.2f} rows/s", "ratio": base / r["update_s"]}
            for name, r in results.items()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a model name or HF dir")
    parser.add_argument("--groups", type=int, default=4, help="prompt groups in the update (even: 2 ranks)")
    parser.add_argument("--n", type=int, default=2, help="rows per group")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--response-tokens", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=2, help="rows per forward/backward pass")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "bench_dist_update"))
    return parser


def main() -> int:
    if _ARGS_VAR in os.environ:
        _worker(argparse.Namespace(**json.loads(os.environ[_ARGS_VAR])))
        return 0
    args = _parser().parse_args()
    rows = measure(args)
    print(f"\nupdate of {args.groups * args.n} rows x {args.prompt_tokens}+{args.response_tokens} tokens, "
          f"{args.model}, micro-batch {args.micro_batch}, median of {args.reps}")
    print(f"{'variant':<34}{'update s':>10}{'rate':>14}{'x 1 rank':>10}")
    for row in rows:
        print(f"{row['variant']:<34}{row['wall_s']:>10.2f}{row['rate']:>14}{row['ratio']:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
