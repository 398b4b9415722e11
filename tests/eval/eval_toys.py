"""A toy benchmark env and scripted engines for the eval tests (no model; the tests and a subprocess import it)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: char_tokenizer for a subprocess

from char_tokenizer import CharTokenizer  # noqa: E402

from aepo_agent.engines.base import SamplingParams, Segment  # noqa: E402

TOY_ID = "AEPOTest/Toy-v0"
TOY_TOOL_ID = "AEPOTest/ToyTools-v0"
_QUESTION = re.compile(r"Q(\d+)")


def register_toys(n_tasks: int = 6) -> None:
    """Register the toy envs: questions ``Q0..`` whose answer is ``yes``, exact-match reward; one without tools,
    one with a python tool."""
    tasks = [{"task_id": f"t{i}", "question": f"Q{i} is it yes?", "answers": ["yes"]} for i in range(n_tasks)]
    base = {"name": "Toy", "tasks": tasks, "tools": [], "reward": "em", "max_turns": 4}
    if TOY_ID not in gym.registry:
        gym.register(TOY_ID, entry_point="aepo_envs.envs.tool_use_env:ToolUseEnv", kwargs={"base_config": base})
    if TOY_TOOL_ID not in gym.registry:
        tools = {**base, "name": "ToyTools", "tools": ["python"],
                 "tool_configs": {"python": {"backend": "auto", "timeout_s": 10, "prestart": 0}}}
        gym.register(TOY_TOOL_ID, entry_point="aepo_envs.envs.tool_use_env:ToolUseEnv",
                     kwargs={"base_config": tools})


def register_named(name: str, n_tasks: int = 4) -> str:
    """A toy env registered as ``AEPOTest/<name>-v0`` (its short name picks the papers' numbers); its id."""
    env_id = f"AEPOTest/{name}-v0"
    if env_id not in gym.registry:
        tasks = [{"task_id": f"t{i}", "question": f"Q{i} is it yes?", "answers": ["yes"]} for i in range(n_tasks)]
        base = {"name": name, "tasks": tasks, "tools": [], "reward": "em", "max_turns": 4}
        gym.register(env_id, entry_point="aepo_envs.envs.tool_use_env:ToolUseEnv", kwargs={"base_config": base})
    return env_id


def _segment(tok: CharTokenizer, text: str, stop: str | None = "</answer>") -> Segment:
    ids = tok.encode(text)
    return Segment(ids, [-0.1] * len(ids), [0.5] * len(ids), text, "stop", stop)


class ScriptedEngine:
    """Answers each question at once; run r of question q (its r-th copy in a call) is correct iff
    ``correct[q][r]``. Counts calls and the prefixes it was asked for."""

    entropy_estimator = "exact"

    def __init__(self, correct: dict[int, list[bool]] | None = None, delay_s: float = 0.0,
                 error_on: set[tuple[int, int]] | None = None) -> None:
        self.tokenizer = CharTokenizer()
        self.correct = correct or {}
        self.delay_s = delay_s
        self.error_on = error_on or set()
        self.calls = 0
        self.prefixes = 0

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        self.calls += 1
        self.prefixes += len(prefixes)
        time.sleep(self.delay_s)
        seen: dict[int, int] = {}
        out = []
        for prefix in prefixes:
            q = int(_QUESTION.search(self.tokenizer.decode(prefix)).group(1))
            r = seen[q] = seen.get(q, -1) + 1
            if (q, r) in self.error_on:
                out.append([Segment([], [], [], "", "stop", None, {"error": f"HTTP 503 for Q{q} run {r}"})])
                continue
            ok = self.correct.get(q, [True] * 64)[r]
            out.append([_segment(self.tokenizer, f"<answer>\\boxed{{{'yes' if ok else 'no'}}}</answer>")])
        return out

    def update_weights(self, named_tensors) -> None:
        pass

    def close(self) -> None:
        pass


class ToolThenAnswer(ScriptedEngine):
    """Calls python once (odd questions: twice), then answers correctly."""

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        self.calls += 1
        out = []
        for prefix in prefixes:
            text = self.tokenizer.decode(prefix)
            q = int(_QUESTION.search(text).group(1))
            calls = text.count("<python>")
            if calls < 1 + q % 2:
                out.append([_segment(self.tokenizer, "<python>print(6 * 7)</python>", "</python>")])
            else:
                out.append([_segment(self.tokenizer, "<answer>\\boxed{yes}</answer>")])
        return out
