"""The typed configuration of a ToolUseEnv: YAML defaults deep-merged with ``gym.make`` kwargs."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    """Every knob of a tool-use env. Unknown keys raise a TypeError that lists the valid ones."""

    name: str = "custom"
    # Task source: exactly one of dataset / tasks / world.
    dataset: str | None = None
    split: str | None = None
    data_path: str | None = None
    tasks: list[dict[str, Any]] | None = None
    world: str | None = None
    world_kwargs: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    # Tools and protocol.
    tools: list[str] = field(default_factory=lambda: ["search", "python"])
    tool_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    action_format: str = "tags"
    system_prompt: str | None = None
    prompt_template: str = "{question}"
    # Reward.
    reward: str = "f1"
    reward_config: dict[str, Any] = field(default_factory=dict)
    format_penalty: float = 0.0
    # Budgets.
    max_turns: int = 16
    max_tool_calls: int | dict[str, int] | None = None
    max_tool_calls_total: int | None = None  # all tools together (the released ARPO call_limit)
    on_tool_budget: str = "feedback"
    on_empty_tool_call: str = "feedback"  # "end": an empty call ends the episode silently (released ARPO)
    max_context_chars: int = 200_000
    max_action_chars: int = 32_000
    max_obs_chars: int = 8_000
    # Info.
    expose_answer: bool = False
    render_mode: str | None = None

    @classmethod
    def from_kwargs(cls, base: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> EnvConfig:
        """Deep-merge ``overrides`` over ``base`` and validate the result."""
        merged = deep_merge(dict(base or {}), dict(overrides))
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - valid)
        if unknown:
            raise TypeError(
                f"unknown env option(s) {unknown}; valid options are: {sorted(valid)}. "
                "Tool settings go under tool_configs={'<tool>': {...}}."
            )
        cfg = cls(**merged)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise a precise error for a bad value."""
        sources = [s for s in ("dataset", "tasks", "world") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError(
                f"a ToolUseEnv needs exactly one task source among dataset=, tasks=, world= (got {sources or 'none'})"
            )
        if not isinstance(self.tools, list | tuple) or not all(isinstance(t, str) for t in self.tools):
            raise TypeError(f"tools must be a list of tool names, got {self.tools!r}")
        self.tools = list(self.tools)
        if self.action_format not in ("tags", "json"):
            raise ValueError(f"action_format must be 'tags' or 'json', got {self.action_format!r}")
        if self.on_tool_budget not in ("feedback", "truncate"):
            raise ValueError(f"on_tool_budget must be 'feedback' or 'truncate', got {self.on_tool_budget!r}")
        if self.on_empty_tool_call not in ("feedback", "end"):
            raise ValueError(f"on_empty_tool_call must be 'feedback' or 'end', got {self.on_empty_tool_call!r}")
        total = self.max_tool_calls_total
        if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
            raise ValueError(f"max_tool_calls_total must be None or an int >= 0, got {total!r}")
        for key in ("max_turns", "max_context_chars", "max_action_chars", "max_obs_chars"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if self.render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {self.render_mode!r}")
        if not isinstance(self.tool_configs, Mapping):
            raise TypeError("tool_configs must be a mapping {tool_name: {option: value}}")
        unknown_tools = sorted(set(self.tool_configs) - set(self.tools))
        if unknown_tools:
            raise ValueError(f"tool_configs names tools {unknown_tools} that are not in tools={self.tools}")
        if "{question}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{question}'")

    def tool_budget(self, tool: str) -> int | None:
        """The call limit for ``tool`` (None = unlimited)."""
        if isinstance(self.max_tool_calls, Mapping):
            return self.max_tool_calls.get(tool, self.max_tool_calls.get("*"))
        return self.max_tool_calls


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge mappings; values in ``over`` win, nested dicts merge."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def apply_overrides(data: Mapping[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """``key.sub=value`` items applied to a copy of ``data``: dotted keys nest, values are parsed as YAML
    (``world_kwargs.seed=3``, ``kinds=[product]``); the CLI's ``--set`` of ``aepo train`` and ``aepo-envs serve``."""
    import yaml

    out = copy.deepcopy(dict(data))
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like key=value (dotted keys nest: section.key=value)")
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return out
