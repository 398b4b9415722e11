"""ToolUseEnv: a multi-turn LLM tool-use task as a ``gym.Env[str, str]`` (text in, text out)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from aepo_envs.envs.config import EnvConfig
from aepo_envs.protocol import (
    FinalAnswer,
    InvalidAction,
    ToolCall,
    ToolSpec,
    make_parser,
    sanitize,
    truncate_middle,
)
from aepo_envs.rewards import RewardInput, get_reward
from aepo_envs.spaces import UnicodeText
from aepo_envs.tasks.base import TaskRow
from aepo_envs.tools.base import Tool, ToolResult, ToolStatus, make_tool

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant that solves the user's question step by step, using tools when they help. "
    "Think inside <think> </think>. {tool_instructions}"
    "Give the final answer inside <answer> </answer>, with the exact answer in LaTeX \\boxed{{}}, e.g. "
    "<answer> The final answer is \\[ \\boxed{{answer here}} \\] </answer>."
)
_TAG_INSTRUCTIONS = {
    "search": "To search, write <search> query </search>; results come back in <result> </result>. ",
    "browse": "To read a web page, write <browse> URL </browse> (add page=N or find=text to navigate); "
    "the page comes back in <result> </result>. ",
    "python": "To run Python, write <python> code </python>; its output comes back in <result> </result>. ",
}


class ToolUseEnv(gym.Env[str, str]):
    """A benchmark or world task played over text turns with tools (search, browse, python, or any registered).

    ``reset`` returns the rendered user prompt; ``step(text)`` returns only the new env text (the tool result in
    the protocol's wrapper). Configuration comes from the env YAML (``base_config``) deep-merged with kwargs.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, base_config: Mapping[str, Any] | None = None, **overrides: Any):
        self.config = EnvConfig.from_kwargs(base_config, overrides)
        self.render_mode = self.config.render_mode
        self._closed = False
        self._world = None
        self._tasks = self._load_tasks()
        if not self._tasks:
            raise ValueError(f"env {self.config.name!r} has no tasks (limit={self.config.limit})")
        self._task_index = {row.task_id: i for i, row in enumerate(self._tasks)}
        self._tools: dict[str, Tool] = {}
        for tool_name in self.config.tools:
            tool_cfg = dict(self._world_tool_overrides().get(tool_name, {}))
            tool_cfg.update(self.config.tool_configs.get(tool_name, {}))
            self._tools[tool_name] = make_tool(tool_name, **tool_cfg)
        self._parser = make_parser(
            self.config.action_format,
            {n: ToolSpec(n, t.tag, t.primary_arg) for n, t in self._tools.items()},
        )
        self._reward_fn = get_reward(self.config.reward, **self.config.reward_config)
        self.observation_space = UnicodeText(self.config.max_context_chars + self.config.max_obs_chars + 1024)
        self.action_space = UnicodeText(self.config.max_action_chars * 64)
        self._cursor = 0
        self._order: list[int] | None = None
        self._reset_state(None)

    # ----------------------------------------------------------------------------------------- tasks
    def _load_tasks(self) -> list[TaskRow]:
        cfg = self.config
        if cfg.tasks is not None:
            rows = [_coerce_task(t, i) for i, t in enumerate(cfg.tasks)]
        elif cfg.world is not None:
            from aepo_envs.worlds import get_world

            self._world = get_world(cfg.world, **cfg.world_kwargs)
            rows = list(self._world.tasks)
        else:
            from aepo_envs.tasks import load_tasks

            rows = load_tasks(cfg.dataset, split=cfg.split, data_path=cfg.data_path, limit=cfg.limit)
        return rows[: cfg.limit] if cfg.limit is not None else rows

    def _world_tool_overrides(self) -> dict[str, dict[str, Any]]:
        return self._world.tool_overrides() if self._world is not None else {}

    @property
    def tasks(self) -> Sequence[TaskRow]:
        """The task rows this env draws from."""
        return tuple(self._tasks)

    @property
    def current_task(self) -> TaskRow | None:
        """The task of the current episode (None before the first reset); scripted agents read it."""
        return getattr(self, "_row", None)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Strings an engine should stop on (closing tags); the env expects them included in the action."""
        return self._parser.stop_strings

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The tools of this env, by name."""
        return dict(self._tools)

    # ----------------------------------------------------------------------------------------- prompt
    def system_prompt(self, row: TaskRow | None = None) -> str:
        """The system prompt: the row's own (ARPO parquet), the config's, or the default for the tools."""
        if self.config.system_prompt is not None:
            return self.config.system_prompt
        if row is not None and isinstance(row.meta.get("system_prompt"), str):
            return row.meta["system_prompt"]
        if self.config.action_format == "json":
            instr = (
                'To call a tool, write <tool_call>{"name": <tool>, "arguments": {...}}</tool_call>; the result comes '
                "back in <tool_response> </tool_response>. Available tools are described in the tool schemas. "
            )
        else:
            instr = "".join(_TAG_INSTRUCTIONS.get(n, "") for n in self._tools) or "No tools are available. "
            for name, tool in self._tools.items():
                if name not in _TAG_INSTRUCTIONS and tool.tag:
                    instr += f"To use {name} ({tool.description}), write <{tool.tag}> ... </{tool.tag}>. "
        return DEFAULT_SYSTEM_PROMPT.format(tool_instructions=instr)

    def tool_schemas(self) -> list[dict[str, Any]]:
        """OpenAI-style schemas of the tools."""
        return [tool.openai_schema() for tool in self._tools.values()]

    # ----------------------------------------------------------------------------------------- gym API
    def _reset_state(self, row: TaskRow | None) -> None:
        self._row = row
        self._turn = 0
        self._calls: dict[str, int] = {}
        self._transcript: list[dict[str, str]] = []
        self._response_parts: list[str] = []
        self._context_chars = 0
        self._done = row is None
        self._final: FinalAnswer | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self._check_open()
        row = self._tasks[self._select_index(seed, options or {})]
        self._reset_state(row)
        for tool in self._tools.values():
            tool.reset()
        prompt = self.config.prompt_template.format(question=row.question)
        system = self.system_prompt(row)
        self._transcript = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        self._context_chars = len(system) + len(prompt)
        info: dict[str, Any] = {
            "task_id": row.task_id,
            "messages": copy.deepcopy(self._transcript),
            "tools": self.tool_schemas(),
            "benchmark": self.config.name,
            "stop_strings": list(self.stop_strings),
        }
        if self.config.expose_answer:
            info["answers"] = list(row.answers)
        return prompt, info

    def _select_index(self, seed: int | None, options: Mapping[str, Any]) -> int:
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        if "task_id" in options:
            task_id = str(options["task_id"])
            if task_id not in self._task_index:
                raise KeyError(f"unknown task_id {task_id!r}; see env.unwrapped.tasks for the ids of this env")
            return self._task_index[task_id]
        if "index" in options:
            index = options["index"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self._tasks):
                raise IndexError(f"options['index'] must be an int in [0, {len(self._tasks)}), got {index!r}")
            return index
        if seed is not None:  # a seed starts a new shuffled pass; later unseeded resets continue it
            self._order = [int(i) for i in self.np_random.permutation(len(self._tasks))]
            self._cursor = 0
        index = self._order[self._cursor % len(self._tasks)] if self._order else self._cursor % len(self._tasks)
        self._cursor += 1
        return index

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(f"action must be a str (the model's text), got {type(action).__name__}")
        self._check_open()
        if self._done:
            raise RuntimeError("the episode is over (terminated or truncated); call reset() before step()")
        text = truncate_middle(sanitize(action), self.config.max_action_chars)
        self._turn += 1
        self._transcript.append({"role": "assistant", "content": text})
        self._response_parts.append(text)
        self._context_chars += len(text)
        parsed = self._parser.parse(text)
        info: dict[str, Any] = {"turn": self._turn, "tool_name": None, "tool_args": None}
        reward, terminated, truncated, obs = 0.0, False, False, ""
        components: dict[str, float] = {}

        if isinstance(parsed, FinalAnswer):
            self._final = parsed
            status = ToolStatus.OK
            terminated = True
            info["final_answer"] = parsed.prediction
        elif isinstance(parsed, InvalidAction) and parsed.empty_call_tool and self.config.on_empty_tool_call == "end":
            # Released ARPO: a call over the limit is an overrun even when empty; otherwise the path stops silently.
            over = self._over_budget(parsed.empty_call_tool)
            status = ToolStatus.BUDGET_EXCEEDED if over else ToolStatus.PARSE_ERROR
            if over and self.config.on_tool_budget == "feedback":
                obs = self._parser.format_result(parsed.empty_call_tool, over.text)
            else:
                truncated = True
                info["truncation_reason"] = (f"max_tool_calls[{parsed.empty_call_tool}]" if over
                                             else "empty_tool_call")
        elif isinstance(parsed, InvalidAction):
            status = ToolStatus.PARSE_ERROR
            obs = self._parser.format_feedback(parsed.reason)
            if self.config.format_penalty:
                components["format_penalty"] = -abs(self.config.format_penalty)
                reward += components["format_penalty"]
        else:
            info["tool_name"], info["tool_args"] = parsed.name, _json_safe(parsed.arguments)
            result = self._run_tool(parsed)
            status = result.status
            obs = self._parser.format_result(parsed.name, truncate_middle(result.text, self.config.max_obs_chars))
            if status == ToolStatus.BUDGET_EXCEEDED and self.config.on_tool_budget == "truncate":
                truncated, obs = True, ""
                info["truncation_reason"] = f"max_tool_calls[{parsed.name}]"

        if obs:
            self._response_parts.append(obs)
            self._context_chars += len(obs)
            role = "tool" if self.config.action_format == "json" and info["tool_name"] else "user"
            message = {"role": role, "content": obs}
            self._transcript.append(message)
            info["new_messages"] = [dict(message)]
        else:
            info["new_messages"] = []

        if not terminated and not truncated:
            if self._turn >= self.config.max_turns:
                truncated, info["truncation_reason"] = True, "max_turns"
            elif self._context_chars >= self.config.max_context_chars:
                truncated, info["truncation_reason"] = True, "max_context_chars"
        if terminated or truncated:
            self._done = True
            outcome = self._score()
            reward += outcome.reward
            components.update(outcome.components)
        info.update(
            tool_status=str(status),
            num_tool_calls=sum(self._calls.values()),
            reward_components=components,
        )
        return obs, float(reward), terminated, truncated, info

    def end_episode(self, reason: str) -> tuple[float, dict[str, float]]:
        """End the episode from outside (a trainer's token budget ran out, or the model stopped without an
        answer) and return the terminal reward and its components, as a truncating step would."""
        self._check_open()
        if self._done:
            raise RuntimeError("the episode is already over; call reset() first")
        if not isinstance(reason, str):
            raise TypeError("reason must be a str")
        self._done = True
        outcome = self._score()
        return float(outcome.reward), dict(outcome.components)

    @property
    def done(self) -> bool:
        """Whether the current episode has ended (or none was started)."""
        return self._done

    def _over_budget(self, tool: str) -> ToolResult | None:
        """The budget-exceeded result if one more ``tool`` call is over its own or the total limit, else None."""
        budget = self.config.tool_budget(tool)
        total = self.config.max_tool_calls_total
        if budget is not None and self._calls.get(tool, 0) >= budget:
            limit = f"The {tool} call limit ({budget})"
        elif total is not None and sum(self._calls.values()) >= total:
            limit = f"The tool call limit ({total})"
        else:
            return None
        return ToolResult(f"{limit} for this episode is exceeded. Answer with the information you have.",
                          ToolStatus.BUDGET_EXCEEDED)

    def _run_tool(self, call: ToolCall) -> ToolResult:
        over = self._over_budget(call.name)
        if over is not None:
            return over
        self._calls[call.name] = self._calls.get(call.name, 0) + 1
        result = self._tools[call.name](call.arguments)
        return ToolResult(sanitize(result.text), result.status, result.meta)

    def _score(self):
        row = self._row
        assert row is not None
        prediction = self._final.prediction if self._final is not None else None
        return self._reward_fn(
            RewardInput(
                prediction=prediction,
                golds=tuple(row.answers),
                response="".join(self._response_parts),
                question=row.question,
                meta=dict(row.meta),
            )
        )

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{m['role']}]\n{m['content']}" for m in self._transcript) + "\n"

    @property
    def transcript(self) -> list[dict[str, str]]:
        """The chat so far: system, user, then assistant actions and env messages."""
        return copy.deepcopy(self._transcript)

    def clone(self) -> ToolUseEnv:
        """An independent env in the same state (same task, turn, transcript, tool state, RNG)."""
        self._check_open()
        new = copy.copy(self)
        new._transcript = copy.deepcopy(self._transcript)
        new._response_parts = list(self._response_parts)
        new._calls = dict(self._calls)
        new._np_random = copy.deepcopy(self._np_random)
        new.observation_space = copy.deepcopy(self.observation_space)
        new.action_space = copy.deepcopy(self.action_space)
        new._tools = {name: tool.clone() for name, tool in self._tools.items()}
        if self._world is not None:
            from aepo_envs.worlds import get_world

            new._world = get_world(self.config.world, **self.config.world_kwargs)
        return new

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for tool in self._tools.values():
            tool.close()
        if self._world is not None:
            from aepo_envs.worlds import release_world

            release_world(self._world)
            self._world = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this env is closed; create a new one with gym.make(...)")


def _coerce_task(task: Any, index: int) -> TaskRow:
    if isinstance(task, TaskRow):
        return task
    if not isinstance(task, Mapping) or "question" not in task:
        raise TypeError(f"tasks[{index}] must be a TaskRow or a dict with 'question' and 'answers', got {task!r}")
    answers = task.get("answers", task.get("answer", ()))
    if isinstance(answers, str | int | float):
        answers = (answers,)
    return TaskRow(
        task_id=str(task.get("task_id", f"task-{index}")),
        question=str(task["question"]),
        answers=tuple(str(a) for a in answers),
        meta=dict(task.get("meta", {})),
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)
