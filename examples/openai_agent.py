"""Play episodes of any AEPO env with a model behind an OpenAI-compatible chat endpoint (vLLM, llama.cpp, ...).

    python examples/openai_agent.py --env AEPO/CalcQA-v0 --base-url http://127.0.0.1:8000/v1 --model NAME

Flags fall back to the env vars OPENAI_BASE_URL, OPENAI_MODEL and OPENAI_API_KEY.
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import requests

import aepo_envs  # noqa: F401  (registers the ids)
from aepo_envs.protocol import restore_stop


def complete(base_url: str, model: str, messages: list[dict], stop: list[str], api_key: str | None) -> str:
    """One chat completion; the stop string is restored when the server strips it."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "messages": messages, "stop": stop, "temperature": 0.6, "max_tokens": 2048}
    resp = requests.post(f"{base_url.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=300)
    resp.raise_for_status()
    choice = resp.json()["choices"][0]
    text = choice["message"].get("content") or ""
    stop_hit = choice.get("stop_reason")
    if isinstance(stop_hit, str) and not text.endswith(stop_hit):
        return text + stop_hit
    return restore_stop(text, stop) if choice.get("finish_reason") == "stop" else text


def play(env: gym.Env, base_url: str, model: str, api_key: str | None, index: int) -> float:
    """Run one episode and return its reward."""
    obs, info = env.reset(options={"index": index})
    messages = info["messages"]
    stop = info["stop_strings"]
    total = 0.0
    while True:
        action = complete(base_url, model, messages, stop, api_key)
        obs, reward, terminated, truncated, step_info = env.step(action)
        total += reward
        messages.append({"role": "assistant", "content": action})
        messages.extend(step_info["new_messages"])
        if terminated or truncated:
            return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="AEPO/CalcQA-v0")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL"))
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    if not args.model:
        parser.error("--model (or OPENAI_MODEL) is required")
    env = gym.make(args.env, render_mode="ansi")
    try:
        for i in range(args.episodes):
            reward = play(env, args.base_url, args.model, os.environ.get("OPENAI_API_KEY"), i)
            print(f"episode {i}: reward {reward:.3f}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
