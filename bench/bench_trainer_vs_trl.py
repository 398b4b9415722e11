"""Policy-update step time of aepo's Trainer vs TRL's GRPOTrainer on the same model and batch, in one run.

Both sides optimise one fixed batch (same prompt and completion tokens, same group advantages) in fp32 on CPU,
with the same micro-batch size, thread count, learning rate and grad clip, into one optimizer step. Generation is
excluded from both: a step is log-prob recompute + loss + backward + grad clip + optimizer step.
Usage: python bench/bench_trainer_vs_trl.py [--groups 2 --group-size 4 --prompt-tokens 100 --completion-tokens 128
       --micro-batch 4 --reps 5 --threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OURS = "aepo Trainer.update"
TRL_ON, TRL_OLD = "TRL GRPOTrainer (on-policy)", "TRL GRPOTrainer + old-logp pass"
FILLER = ("A train leaves the station at nine and travels at sixty miles per hour; a second one follows an hour "
          "later at eighty. Work out when the second catches up, using the python tool if you need it. ")


def _build_batch(tok: Any, args: argparse.Namespace, vocab: int) -> dict[str, Any]:
    """Prompts of exactly P tokens (chat template kept at the end), completions of exactly C tokens, rewards."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    prompts, completions, rewards, groups = [], [], [], []
    for g in range(args.groups):
        msg = f"Question {g}: " + FILLER * (1 + args.prompt_tokens // 40)
        ids = list(tok.apply_chat_template([{"role": "user", "content": msg}], add_generation_prompt=True,
                                           tokenize=True, return_dict=False))
        prompt = ids[-args.prompt_tokens:]
        for i in range(args.group_size):
            prompts.append(prompt)
            completions.append(torch.randint(0, vocab, (args.completion_tokens,), generator=gen).tolist())
            # every group has both outcomes, so no advantage is zero
            rewards.append(float(i % 2) if i < 2 else float(torch.rand((), generator=gen) < 0.5))
            groups.append(g)
    return {"prompts": prompts, "completions": completions, "rewards": rewards, "groups": groups}


def _ours(model: Any, tok: Any, batch: dict[str, Any], args: argparse.Namespace, run_dir: str):
    """aepo's Trainer in a GRPO/DAPO-equivalent setting (token-mean, symmetric clip 0.2, no KL, one mini-batch)."""
    from aepo_agent.rollout.trajectory import RolloutRow
    from aepo_agent.trainer import Trainer, load_config

    c = args.completion_tokens
    cfg = load_config(None, [
        f"run_dir={run_dir}", f"seed={args.seed}", "env.id=AEPO/CalcQA-v0",
        "env.kwargs={world_kwargs: {n_questions: 4}}",
        f"rollout.n={args.group_size}", f"rollout.initial_rollouts={args.group_size}",
        f"rollout.max_response_tokens={c}", "rollout.temperature=1.0",
        "algo.advantage=grpo", "algo.norm_by_std=true", "algo.attribution=soft", "algo.entropy_advantage=false",
        "algo.loss=dapo", "algo.clip_low=0.2", "algo.clip_high=0.2", "algo.dual_clip_c=null",
        "algo.agg=token-mean", "algo.kl_coef=0.0",
        f"train.prompts_per_step={args.groups}", f"train.mini_batch_prompts={args.groups}",
        f"train.micro_batch_size={args.micro_batch}", "train.ppo_epochs=1", f"train.lr={args.lr}",
        "train.weight_decay=0.01", "train.grad_clip=1.0", "train.tensorboard=false", "train.plot=false",
    ])
    trainer = Trainer(cfg, model=model, tokenizer=tok)
    rows = [
        RolloutRow(group_id=g, task_id=f"task{g}", traj_id=i, parent_id=None, branch_step=None, prompt_ids=p,
                   response_ids=r, loss_mask=[1] * len(r), old_logprobs=[0.0] * len(r), entropies=[0.0] * len(r),
                   segment_ids=[0] * len(r), reward=rew, reward_components={}, num_tool_calls=0, finish="stop")
        for i, (p, r, rew, g) in enumerate(zip(batch["prompts"], batch["completions"], batch["rewards"],
                                               batch["groups"], strict=True))
    ]
    return trainer, lambda: float(trainer.update(rows)["train/grad_norm"])


def _trl(model: Any, tok: Any, batch: dict[str, Any], args: argparse.Namespace, out_dir: str):
    """TRL's GRPOTrainer (loss_type=dapo, beta=0) fed the same tokens and advantages, bypassing its generation."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from aepo_agent.algos import grpo_advantages

    b = len(batch["prompts"])
    config = GRPOConfig(
        output_dir=out_dir, per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=b // args.micro_batch, num_generations=args.group_size,
        max_completion_length=args.completion_tokens, beta=0.0, loss_type="dapo", epsilon=0.2,
        learning_rate=args.lr, weight_decay=0.01, max_grad_norm=1.0, temperature=1.0, use_cpu=True, bf16=False,
        fp16=False, report_to=[], logging_steps=1, save_strategy="no", seed=args.seed,
    )
    dataset = Dataset.from_dict({"prompt": [tok.decode(p) for p in batch["prompts"]]})
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=config,
                          train_dataset=dataset, processing_class=tok)
    trainer.create_optimizer_and_scheduler(num_training_steps=10_000)
    trainer._prepare_inputs = lambda inputs: inputs  # the inputs below are already a generated, scored batch
    prompt_ids = torch.tensor(batch["prompts"])
    completion_ids = torch.tensor(batch["completions"])
    rewards = torch.tensor(batch["rewards"])
    advantages = grpo_advantages(rewards, batch["groups"], norm_by_std=True)  # identical to ours
    full = {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
            "completion_ids": completion_ids, "completion_mask": torch.ones_like(completion_ids),
            "advantages": advantages, "num_items_in_batch": torch.tensor(float(completion_ids.numel()))}
    mb = args.micro_batch
    model = trainer.model

    def step(with_old_logps: bool) -> float:
        micro = [{k: (v[s:s + mb] if v.dim() else v) for k, v in full.items()} for s in range(0, b, mb)]
        if with_old_logps:  # what _generate_and_score_completions adds when samples may be off-policy
            with torch.no_grad():
                old, _, _ = trainer._get_per_token_logps_and_entropies(
                    model, torch.cat([prompt_ids, completion_ids], 1), torch.ones(b, prompt_ids.shape[1] +
                                                                                  completion_ids.shape[1]),
                    completion_ids.shape[1], batch_size=mb)
            for i, part in enumerate(micro):
                part["old_per_token_logps"] = old[i * mb:(i + 1) * mb]
        trainer.current_gradient_accumulation_steps = len(micro)
        for part in micro:
            trainer.training_step(model, part, None)
        grad_norm = float(trainer._clip_grad_norm(model))
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        model.zero_grad()
        return grad_norm

    return trainer, step


def _profile(name: str, fn: Callable[[], Any], rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    print(f"\n--- profile: {name} (top ops by self CPU time) ---")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--groups", type=int, default=2, help="prompts per step (GRPO groups)")
    parser.add_argument("--group-size", type=int, default=4, help="completions per prompt")
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--completion-tokens", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table per side")
    args = parser.parse_args()
    b = args.groups * args.group_size
    if b % args.micro_batch:
        parser.error(f"--micro-batch must divide groups * group-size = {b}")

    sys.path.insert(0, str(REPO))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aepo_agent.models import resolve_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    path = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    ours_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    trl_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)  # TRL patches its model's forward
    batch = _build_batch(tok, args, ours_model.config.vocab_size)

    with tempfile.TemporaryDirectory() as tmp:
        ours_trainer, ours_step = _ours(ours_model, tok, batch, args, f"{tmp}/ours")
        trl_trainer, trl_step = _trl(trl_model, tok, batch, args, f"{tmp}/trl")
        sides: dict[str, Callable[[], float]] = {
            OURS: ours_step,
            TRL_ON: lambda: trl_step(False),
            TRL_OLD: lambda: trl_step(True),
        }
        warm = {name: fn() for name, fn in sides.items()}  # first two start from identical weights
        times: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[: rep % len(names)]:  # rotate to spread neighbour noise
                gc.collect()
                t0 = time.perf_counter()
                sides[name]()
                times[name].append(time.perf_counter() - t0)
        if args.profile:
            for name in names:
                _profile(name, sides[name], rows=18)
        trl_optim = f"{type(trl_trainer.optimizer).__name__} ({trl_trainer.args.optim})"
        ours_optim = type(ours_trainer.optimizer).__name__
        ours_trainer.close()

    med = {name: statistics.median(ts) for name, ts in times.items()}
    ours = med[OURS]
    tokens = b * (args.prompt_tokens + args.completion_tokens)
    print(f"\nModel {args.model} fp32 on CPU, {args.threads} threads; batch {args.groups} groups x "
          f"{args.group_size} = {b} sequences of {args.prompt_tokens} prompt + {args.completion_tokens} completion "
          f"tokens ({tokens} tokens), micro-batch {args.micro_batch}, one optimizer step; median of {args.reps} "
          "interleaved reps after one warm-up each.")
    print(f"{'side':34s} {'median s':>9s} {'min s':>7s} {'max s':>7s} {'tokens/s':>9s} {'ours / side':>11s}")
    for name in names:
        ts = times[name]
        print(f"{name:34s} {med[name]:9.2f} {min(ts):7.2f} {max(ts):7.2f} {tokens / med[name]:9.1f} "
              f"{ours / med[name]:10.2f}x")
    print(f"Same objective check (identical start weights, batch and advantages): warm-up grad norm "
          f"aepo {warm[OURS]:.6f} vs TRL {warm[TRL_ON]:.6f}")
    target = med[TRL_ON]
    verdict = "meets" if ours <= target else "misses"
    print(f"\nours / TRL (on-policy, as TRL runs this config) = {ours / target:.2f}x -> {verdict} the <= 1.0x target")
    print("Included on every side: log-prob recompute of the batch, loss, backward, grad clip (1.0), AdamW step.\n"
          "Both sides skip the no-grad old-log-prob pass for an on-policy single-epoch update (pi_old = pi_theta);\n"
          "the third row adds that pass to TRL, as TRL runs it when samples may be off-policy. Both compute logits\n"
          "for completion positions only. Excluded: generation, reward scoring, TRL's dataloader and logging\n"
          "callbacks. Caveats: shared CPU (other processes add noise; medians of interleaved reps), completions are\n"
          f"random token ids of one length (no padding); optimizers: TRL its default {trl_optim}, aepo "
          f"{ours_optim} (fused).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
