"""TRL adapters: train on any aepo env with TRL's ``GRPOTrainer``, through ``environment_factory`` or ``rollout_func``.

``environment_factory(env_id)`` gives the class TRL instantiates per rollout: its public methods are the env's
tools (typed, Google-style docstrings from the tool schemas) plus ``answer``; ``reset(**row)`` picks the row's task
and ``get_reward()`` is our env's reward. ``EnvRollout(env_id)`` is a ``rollout_func`` that plays the env in its own
protocol (ARPO tags by default) with the trainer's model or vLLM, tool results masked out of the loss.
torch, transformers, trl and datasets are imported only inside the functions that need them.
"""

from __future__ import annotations

import copy
import inspect
import json
import keyword
import math
import re
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from aepo_envs.contract import end_episode, end_episode_reward, env_stop_strings, env_tasks
from aepo_envs.protocol import JsonToolCallParser, restore_stop

__all__ = [
    "ANSWER_TOOL",
    "TOOL_SYSTEM_PROMPT",
    "EnvRollout",
    "TRLToolEnv",
    "env_reward",
    "environment_factory",
    "restore_stop",
    "task_dataset",
    "tool_method",
    "use_tool_chat_template",
]

ANSWER_TOOL = "answer"
TOOL_SYSTEM_PROMPT = (
    "You are a helpful assistant that solves the user's question step by step, calling the tools when they help. "
    f"When you know the result, call the `{ANSWER_TOOL}` tool with the exact final answer (a number or a short "
    "phrase); the episode ends there."
)
_RESERVED = frozenset({"reset", "get_reward", ANSWER_TOOL})
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict,
                              "array": list}
_RESPONSE_OPEN, _RESPONSE_CLOSE = JsonToolCallParser({}).format_result("", "\x00").split("\x00")


# ------------------------------------------------------------------------------------------ tools as methods
def tool_method(name: str, description: str, parameters: Mapping[str, Any]) -> Callable[..., str]:
    """A method ``name(self, **args) -> str`` whose signature, annotations and Google-style docstring restate the
    JSON schema, so ``transformers.utils.get_json_schema`` (what TRL renders into the prompt) gives it back.

    The body forwards every keyword to ``self._call_tool(name, args)``; unknown or mistyped arguments from the
    model reach the env's own validation, which answers with feedback instead of raising.
    """
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in _RESERVED:
        raise ValueError(f"tool name {name!r} cannot be a TRL tool method: it must be a public Python identifier other "
                         f"than {sorted(_RESERVED)}; rename the tool")
    props: Mapping[str, Any] = parameters.get("properties", {})
    required = set(parameters.get("required", []))
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_docs = []
    for arg in sorted(props, key=lambda a: a not in required):  # arguments with defaults go last
        if not arg.isidentifier() or keyword.iskeyword(arg):
            raise ValueError(f"tool {name!r}: argument {arg!r} is not a Python identifier; rename it in the schema")
        typ: Any = _PY_TYPES.get(props[arg].get("type", "string"), str)
        if arg not in required:
            typ = typ | None
        annotations[arg] = typ
        params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, annotation=typ,
                                        default=inspect.Parameter.empty if arg in required else None))
        arg_docs.append(f"    {arg}: {_one_line(props[arg].get('description') or f'The {arg} argument.')}")
    annotations["return"] = str

    def method(self: TRLToolEnv, **args: Any) -> str:
        return self._call_tool(name, {k: v for k, v in args.items() if v is not None})

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    args_block = "\n\nArgs:\n" + "\n".join(arg_docs) if arg_docs else ""
    method.__doc__ = f"{_one_line(description) or name}{args_block}\n\nReturns:\n    The tool's output."
    return method


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------ environment_factory
class TRLToolEnv:
    """One rollout's env for TRL's ``environment_factory``: subclasses made by ``environment_factory`` carry the
    env id, kwargs and one method per tool. Only tools are public functions (TRL exposes every one of them)."""

    env_id: str = ""
    env_kwargs: Mapping[str, Any] = {}

    def __init__(self) -> None:
        self.env: gym.Env | None = None  # made on the first reset; TRL's probe instance never needs one
        self.task_id: str | None = None
        self.tool_calls: Counter[str] = Counter()  # calls the model made this episode, by tool
        self.episode_return = 0.0
        self.done = True

    @classmethod
    def dataset(cls, limit: int | None = None) -> Any:
        """The env's tasks as a ``datasets.Dataset`` (``prompt`` with this adapter's system prompt, ``task_id``)."""
        return task_dataset(cls.env_id, limit=limit, **cls.env_kwargs)

    def reset(self, **row: Any) -> str | None:
        """Start the episode of ``row["task_id"]`` (or ``row["index"]``); without either, the env's next task, whose
        prompt is returned for TRL to append to the (placeholder) user message."""
        if self.env is None:
            self.env = gym.make(self.env_id, **self.env_kwargs)
            weakref.finalize(self, self.env.close)
        if row.get("task_id") is not None:
            options: dict[str, Any] | None = {"task_id": str(row["task_id"])}
        elif row.get("index") is not None:
            options = {"index": int(row["index"])}
        else:
            options = None
        prompt, info = self.env.reset(options=options)
        self.task_id = info["task_id"]
        self.tool_calls = Counter()
        self.episode_return, self.done = 0.0, False
        return None if options is not None else f"{info['messages'][0]['content']}\n\n{prompt}"

    def get_reward(self) -> float:
        """The episode's return from our env: its terminal reward, scored now if the model never answered."""
        if self.env is None:
            raise RuntimeError("get_reward() before reset(): TRL resets every env before its rollout")
        if not self.done:  # the model stopped without calling answer: the env scores it as ended from outside
            reward, _ = end_episode(self.env, "no_answer")
            self.episode_return += end_episode_reward(self.env, reward)
            self.done = True
        return self.episode_return

    def answer(self, answer: str) -> str:
        """Submit the final answer; the episode ends and is scored.

        Args:
            answer: The exact final answer, e.g. a number or a short phrase.

        Returns:
            A confirmation that the answer was recorded.
        """
        self.tool_calls[ANSWER_TOOL] += 1
        answer = str(answer)
        boxed = answer if "\\boxed{" in answer else "\\boxed{" + answer + "}"
        self._step(f"<answer>{boxed}</answer>")
        return "Answer recorded. The episode is over."

    def _call_tool(self, name: str, args: dict[str, Any]) -> str:
        self.tool_calls[name] += 1
        return self._step("<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>")

    def _step(self, action: str) -> str:
        if self.env is None or self.done:
            return "The episode is over; no more tool calls are run."
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        text = obs.removeprefix(_RESPONSE_OPEN).removesuffix(_RESPONSE_CLOSE)
        if terminated or truncated:
            self.done = True
            if truncated:
                text += f"\n(The episode ended: {info.get('truncation_reason', 'truncated')}.)"
        return text


def environment_factory(env_id: str, **env_kwargs: Any) -> type[TRLToolEnv]:
    """A ``TRLToolEnv`` subclass for ``env_id`` that TRL's ``GRPOTrainer(environment_factory=...)`` instantiates.

    The env runs with the JSON tool protocol (TRL emits ``<tool_call>`` JSON) and ``TOOL_SYSTEM_PROMPT`` unless
    ``system_prompt`` is given; other kwargs go to ``gym.make``. The class name is the reward column TRL logs.
    """
    if env_kwargs.setdefault("action_format", "json") != "json":
        raise ValueError("environment_factory drives the env with TRL's JSON tool calls; drop action_format "
                         f"(got {env_kwargs['action_format']!r}) or use EnvRollout for the tag protocol")
    env_kwargs.setdefault("system_prompt", TOOL_SYSTEM_PROMPT)
    probe = gym.make(env_id, **env_kwargs)
    try:
        tools = probe.get_wrapper_attr("tools")
        members: dict[str, Any] = {
            name: tool_method(name, tool.description, tool.parameters) for name, tool in tools.items()
        }
    finally:
        probe.close()
    members.update(env_id=env_id, env_kwargs=dict(env_kwargs), __module__=__name__)
    short = re.sub(r"\W", "", env_id.split("/")[-1].rsplit("-v", 1)[0]) or "Aepo"
    return type(f"{short}Env", (TRLToolEnv,), members)


def task_dataset(env_id: str, *, limit: int | None = None, **env_kwargs: Any) -> Any:
    """A ``datasets.Dataset`` with one row per task: ``prompt`` (the env's chat messages) and ``task_id``."""
    from datasets import Dataset

    env = gym.make(env_id, **env_kwargs)
    try:
        rows = list(env_tasks(env))[:limit]
        prompts = [env.reset(options={"task_id": row.task_id})[1]["messages"] for row in rows]
    finally:
        env.close()
    return Dataset.from_dict({"prompt": prompts, "task_id": [row.task_id for row in rows]})


def use_tool_chat_template(tokenizer: Any) -> Any:
    """Give a ChatML tokenizer without tool support (SmolLM2) TRL's Qwen2.5 tool template, which TRL parses.

    The template emits ``<tool_call>{"name", "arguments"}</tool_call>`` and wraps results in ``<tool_response>``,
    our JSON protocol; TRL's own response template for it then finds the calls. Returns the tokenizer.
    """
    from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling

    if supports_tool_calling(tokenizer):
        return tokenizer
    if tokenizer.convert_tokens_to_ids("<|im_start|>") in (None, tokenizer.unk_token_id):
        raise ValueError("the tokenizer's chat template has no tool calling and it is not ChatML (<|im_start|>): set "
                         "tokenizer.chat_template to a tool-calling template TRL supports (trl/chat_templates/)")
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


# ------------------------------------------------------------------------------------------ rollout_func
def env_reward(completions: list, env_reward: list[float], **_: Any) -> list[float]:
    """TRL reward function for ``EnvRollout``: the env's episode returns, passed through as an extra field."""
    return [float(r) for r in env_reward]


class EnvRollout:
    """A TRL ``rollout_func``: plays ``env_id`` on each prompt with the trainer's own generation (its model under
    ``unwrap_model_for_generation``, or ``trainer.vllm_generation``), in rounds: generate to a stop string, step
    the env, append its text (``env_mask`` 0, log-prob 0), until the episode ends or ``max_completion_length``.

    Returns ``prompt_ids``, ``completion_ids``, ``logprobs`` (of the sampling distribution), ``env_mask`` and the
    extra fields ``env_reward`` (use ``reward_funcs=env_reward``) and ``tool_calls``. Prompts must be the env's
    own messages for a task (``dataset()``). vLLM: set ``GRPOConfig(generation_kwargs=vllm_generation_kwargs)``.
    One training process: ranks would run different numbers of rounds, and vLLM server mode generates collectively.
    """

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs)
        self._envs: list[gym.Env] = []
        self._task_by_prompt: dict[str, str] = {}
        self.episodes: list[dict[str, Any]] = []  # the last call's episodes: task, return, tool calls, transcript

    def dataset(self, limit: int | None = None) -> Any:
        """The env's tasks as TRL rows (``prompt`` = the env's messages, ``task_id``)."""
        data = task_dataset(self.env_id, limit=limit, **self.env_kwargs)
        self._task_by_prompt.update({p[-1]["content"]: t for p, t in zip(data["prompt"], data["task_id"], strict=True)})
        return data

    @property
    def vllm_generation_kwargs(self) -> dict[str, Any]:
        """vLLM sampling options that stop on the env's closing tags and keep them in the output."""
        return {"stop": list(self._stop_strings()), "include_stop_str_in_output": True}

    def close(self) -> None:
        """Close the pooled envs (sandboxes, world servers)."""
        for env in self._envs:
            env.close()
        self._envs.clear()

    def _stop_strings(self) -> tuple[str, ...]:
        return env_stop_strings(self._env(0))

    def _env(self, i: int) -> gym.Env:
        while len(self._envs) <= i:
            env = gym.make(self.env_id, **self.env_kwargs)
            weakref.finalize(self, env.close)
            self._envs.append(env)
        return self._envs[i]

    def _task_id(self, prompt: Any) -> str:
        key = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        if key not in self._task_by_prompt:
            env = self._env(0)
            for row in env_tasks(env):
                messages = env.reset(options={"task_id": row.task_id})[1]["messages"]
                self._task_by_prompt.setdefault(messages[-1]["content"], row.task_id)
        if key not in self._task_by_prompt:
            raise ValueError(f"{self.env_id}: the prompt {key[:80]!r} is none of the env's tasks; build the "
                             "train dataset with EnvRollout.dataset() (same env kwargs)")
        return self._task_by_prompt[key]

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        tok = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
        budget = int(trainer.max_completion_length)
        n = len(prompts)
        envs = [self._env(i) for i in range(n)]
        for env, prompt in zip(envs, prompts, strict=True):
            env.reset(options={"task_id": self._task_id(prompt)})
        stops = env_stop_strings(envs[0])
        prompt_ids = [_chat_ids(tok, p) for p in prompts]
        ids: list[list[int]] = [[] for _ in range(n)]
        mask: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        returns, calls = [0.0] * n, [0] * n
        active = list(range(n))
        while active:
            room = {i: budget - len(ids[i]) for i in active}
            segments = _generate(trainer, tok, [prompt_ids[i] + ids[i] for i in active], max(room.values()), stops)
            still = []
            for i, (seg, seg_lp, finish) in zip(active, segments, strict=True):
                if len(seg) >= room[i]:
                    seg, seg_lp, finish = seg[: room[i]], seg_lp[: room[i]], "length"
                text = tok.decode(seg, skip_special_tokens=True)
                if finish == "stop" and (restored := restore_stop(text, stops)) != text:
                    extra = tok.encode(restored[len(text):], add_special_tokens=False)
                    seg, seg_lp, text = seg + extra, seg_lp + [math.nan] * len(extra), restored
                ids[i] += seg
                mask[i] += [1] * len(seg)
                logps[i] += seg_lp
                if finish != "stop":  # EOS without an action, or the token budget: the episode ends from outside
                    reward, _ = end_episode(envs[i], finish)
                    returns[i] += end_episode_reward(envs[i], reward)
                    continue
                obs, reward, terminated, truncated, info = envs[i].step(text)
                returns[i] += float(reward)
                calls[i] = int(info.get("num_tool_calls", calls[i]))
                if terminated or truncated:
                    continue
                obs_ids = tok.encode(obs, add_special_tokens=False)
                if len(ids[i]) + len(obs_ids) >= budget:  # no room left to act on the result
                    reward, _ = end_episode(envs[i], "length")
                    returns[i] += end_episode_reward(envs[i], reward)
                    continue
                ids[i] += obs_ids
                mask[i] += [0] * len(obs_ids)
                logps[i] += [0.0] * len(obs_ids)
                still.append(i)
            active = still
        self.episodes = [
            {"task_id": env.get_wrapper_attr("current_task").task_id, "return": r, "tool_calls": c,
             "transcript": env.get_wrapper_attr("transcript")}
            for env, r, c in zip(envs, returns, calls, strict=True)
        ]
        return {"prompt_ids": prompt_ids, "completion_ids": ids, "logprobs": logps, "env_mask": mask,
                "env_reward": returns, "tool_calls": calls}


def _chat_ids(tokenizer: Any, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt, add_special_tokens=False))
    out = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(out)


def _generate(trainer: Any, tok: Any, prefixes: list[list[int]], max_new: int,
              stops: Sequence[str]) -> list[tuple[list[int], list[float], str]]:
    """One segment per prefix: (token ids, log-probs, finish in stop/eos/length), cut after the first stop."""
    eos = set(trainer.eos_token_ids)
    if trainer.use_vllm:
        _, outs, lps, _ = trainer.vllm_generation.generate(prompts=prefixes, images=None, num_generations=1)
        lps = [[lp[0] for lp in seq] for seq in lps]
        limit = trainer.max_completion_length
    else:
        outs, lps = _hf_generate(trainer, tok, prefixes, max_new, stops)
        limit = max_new
    segments = []
    for seg, lp in zip(outs, lps, strict=True):
        seg, lp, finish = _cut(tok, list(seg), [float("nan") if x is None else float(x) for x in lp], eos, stops)
        if finish == "length" and len(seg) < limit:  # vLLM ended on a stop it stripped
            finish = "stop"
        segments.append((seg, lp, finish))
    return segments


def _cut(tok: Any, seg: list[int], lp: list[float], eos: set[int],
         stops: Sequence[str]) -> tuple[list[int], list[float], str]:
    """Cut at the first completed stop string (kept) or the first EOS (kept), whichever comes first."""
    end = next((k for k, t in enumerate(seg) if t in eos), None)
    body = seg if end is None else seg[:end]
    if any(s in tok.decode(body, skip_special_tokens=True) for s in stops):
        lo, hi = 1, len(body)  # smallest prefix that contains a stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in tok.decode(body[:mid], skip_special_tokens=True) for s in stops):
                hi = mid
            else:
                lo = mid + 1
        return seg[:lo], lp[:lo], "stop"
    if end is not None:
        return seg[: end + 1], lp[: end + 1], "eos"
    return seg, lp, "length"


def _hf_generate(trainer: Any, tok: Any, prefixes: list[list[int]], max_new: int,
                 stops: Sequence[str]) -> tuple[list[list[int]], list[list[float]]]:
    """The trainer's model and generation config (sampling, ``generation_kwargs``) plus the env's stop strings."""
    import torch
    from trl.models.utils import unwrap_model_for_generation

    width = max(len(p) for p in prefixes)
    pad = tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prefixes], device=trainer.accelerator.device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prefixes],
                             device=trainer.accelerator.device)
    config = copy.deepcopy(trainer.generation_config)
    config.max_new_tokens = max_new
    config.stop_strings = list(stops)
    config.return_dict_in_generate = True
    config.output_scores = True
    with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                      generation_kwargs=trainer.generation_kwargs) as model, torch.no_grad()):
        out = model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config, tokenizer=tok)
    new = out.sequences[:, width:]
    logps = torch.stack([torch.log_softmax(s.float(), -1).gather(1, new[:, t:t + 1]).squeeze(1)
                         for t, s in enumerate(out.scores)], 1)
    return new.tolist(), logps.tolist()
