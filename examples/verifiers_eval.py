"""Evaluate a model on any AEPO env with verifiers' own eval runner (verifiers 0.4.0, v1 API).

    bash scripts/setup_verifiers.sh        # builds .venv-verifiers (verifiers pins its own openai/mcp)
    .venv-verifiers/bin/python examples/verifiers_eval.py --env AEPO/CalcQA-v0 \\
        --base-url http://127.0.0.1:8000/v1 --model NAME --limit 5

The model sits behind any OpenAI-compatible chat endpoint (vLLM's server, llama.cpp, ...). Each episode plays our
gym env turn by turn (tools run in our sandbox), the agent runs in verifiers' local subprocess runtime, and the
env's reward is on each trace as ``aepo_reward``; the run directory holds verifiers' ``traces.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os

from aepo_envs.integrations.verifiers import REWARD_NAME, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="AEPO/CalcQA-v0")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="gym.make kwargs as JSON")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL"))
    parser.add_argument("--limit", type=int, default=3, help="the first N tasks")
    parser.add_argument("--rollouts", type=int, default=1, help="episodes per task")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--max-tokens", type=int, default=1024, help="per turn")
    parser.add_argument("--output-dir", default="outputs/verifiers")
    args = parser.parse_args()
    if not args.model:
        parser.error("--model (or OPENAI_MODEL) is required")
    episodes = evaluate(args.env, base_url=args.base_url, model=args.model, env_kwargs=args.env_kwargs,
                        limit=args.limit, num_rollouts=args.rollouts, output_dir=args.output_dir,
                        sampling={"temperature": args.temperature, "max_tokens": args.max_tokens})
    rewards = []
    for episode in episodes:
        reward = episode.traces[0].rewards.get(REWARD_NAME) if episode.traces else None
        rewards.append(reward.score if reward is not None else 0.0)
        errors = "; ".join(e.message for e in episode.errors) or "-"
        print(f"{episode.task.data.name}: reward {rewards[-1]:.3f}, turns {episode.num_turns}, errors {errors}")
    if rewards:
        print(f"mean reward {sum(rewards) / len(rewards):.3f} over {len(rewards)} episodes")


if __name__ == "__main__":
    main()
