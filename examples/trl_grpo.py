"""Train SmolLM2-135M-Instruct on CalcQA with TRL's own GRPOTrainer (CPU, no vLLM), our env as the environment.

    python examples/trl_grpo.py [--mode tools|rollout] [--steps 2] [--env AEPO/CalcQA-v0]

``--mode tools`` (default): TRL's ``environment_factory``; the env's tools (sandboxed python) and ``answer`` are
methods TRL calls from the model's ``<tool_call>`` JSON; the reward is the env's (``get_reward``).
``--mode rollout``: a ``rollout_func`` that plays the env in its ARPO tag protocol (``<python>``, ``<answer>``)
with the trainer's model; env text is masked out of the loss (``env_mask``). Prints TRL's metrics per step.

The stock SmolLM2 knows neither protocol, so its first steps make no tool calls and earn no reward (GRPO then has
no signal). A model that already uses the tag protocol learns from step one: ``aepo sft
examples/configs/quickstart.yaml --out runs/sft`` then ``--mode rollout --model runs/sft --env-kwargs
'{"world_kwargs": {"kinds": ["product", "modpow"], "levels": [1, 2]}, "max_turns": 4}'``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import aepo_envs  # noqa: F401  (registers the ids)
from aepo_envs.integrations.trl import EnvRollout, env_reward, environment_factory, use_tool_chat_template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["tools", "rollout"], default="tools")
    parser.add_argument("--env", default="AEPO/CalcQA-v0")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, help="gym.make kwargs as JSON")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a known name, HF id or local dir")
    parser.add_argument("--steps", "--max-steps", dest="steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--num-generations", type=int, default=2)
    parser.add_argument("--max-completion-length", type=int, default=192)
    parser.add_argument("--tasks", type=int, default=32, help="how many of the env's tasks form the dataset")
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--output-dir", default="runs/trl_grpo")
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from aepo_agent.models import resolve_model

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    env_kwargs: dict[str, Any] = args.env_kwargs or (
        {"world_kwargs": {"n_questions": max(args.tasks, 1)}} if "CalcQA" in args.env else {})
    config = GRPOConfig(
        output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=args.prompts *
        args.num_generations, num_generations=args.num_generations, max_completion_length=args.max_completion_length,
        learning_rate=args.lr, beta=0.0, use_cpu=True, bf16=False, activation_checkpointing=False, report_to=[],
        logging_steps=1, save_strategy="no", max_tool_calling_iterations=4, seed=0,
    )
    if args.mode == "tools":
        factory = environment_factory(args.env, **env_kwargs)
        trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), args=config,
                              train_dataset=factory.dataset(args.tasks), environment_factory=factory,
                              processing_class=use_tool_chat_template(tokenizer))
        reward_key = f"rewards/{factory.__name__}/mean"
    else:
        rollout = EnvRollout(args.env, **env_kwargs)
        trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), args=config,
                              train_dataset=rollout.dataset(args.tasks), rollout_func=rollout,
                              reward_funcs=env_reward, processing_class=tokenizer)
        reward_key = "rewards/env_reward/mean"
    trainer.train()
    for row in trainer.state.log_history:
        if "step" in row and reward_key in row:
            calls = f", tool calls per rollout {row['tools/call_frequency']:.2f}" if "tools/call_frequency" in row else ""
            print(f"step {row['step']}: env reward {row[reward_key]:.3f}, loss {row['loss']:.4f}, "
                  f"model tokens per completion {row['completions/mean_length']:.0f}{calls}, "
                  f"{row.get('step_time', float('nan')):.1f} s")
    if args.mode == "rollout":
        episodes = rollout.episodes
        print(f"last step: tool calls per rollout {sum(e['tool_calls'] for e in episodes) / len(episodes):.2f}, "
              f"returns {[e['return'] for e in episodes]}")
        rollout.close()


if __name__ == "__main__":
    main()
