"""A finished trajectory read back with its env's own action parser: the prediction and the tool calls by tool.

The model's actions are the maximal runs of model tokens (loss mask 1) of the response: the rollout hands each
such run to ``env.step`` (a segment cut at its token cap is continued in the same action), so parsing them with
the parser the env built from its config and tools gives the same tool calls and final answer the env saw.
Counted calls are attempted ones (a call over its budget is answered with the limit message), like the
rollout's ``num_tool_calls``; a call on the step that ended the episode is counted here and not there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aepo_agent.rollout import RolloutRow


@dataclass
class Trace:
    """What a trajectory did: its final prediction (None: no answer) and tool calls by tool name."""

    prediction: str | None = None
    tool_calls: dict[str, int] = field(default_factory=dict)
    response: str = ""


def env_parser(env: Any) -> Any | None:
    """The action parser of an aepo_envs ``ToolUseEnv`` (through any wrappers), or None for another env."""
    from aepo_envs.protocol import ToolSpec, make_parser

    inner = getattr(env, "unwrapped", env)
    config, tools = getattr(inner, "config", None), getattr(inner, "tools", None)
    if config is None or tools is None:
        return None
    specs = {name: ToolSpec(name, tool.tag, tool.primary_arg) for name, tool in tools.items()}
    return make_parser(config.action_format, specs)


def model_spans(row: RolloutRow) -> list[list[int]]:
    """The response's maximal runs of model tokens, in order."""
    spans: list[list[int]] = []
    current: list[int] = []
    for token, mask in zip(row.response_ids, row.loss_mask, strict=True):
        if mask:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans


def read_trace(row: RolloutRow, tokenizer: Any, parser: Any | None) -> Trace:
    """The prediction and tool calls of ``row`` as the env's ``parser`` reads its actions."""
    from aepo_envs.protocol import FinalAnswer, ToolCall, sanitize

    trace = Trace(response=tokenizer.decode(row.response_ids, skip_special_tokens=True))
    if parser is None:
        return trace
    for span in model_spans(row):
        action = parser.parse(sanitize(tokenizer.decode(span, skip_special_tokens=True)))
        if isinstance(action, ToolCall):
            trace.tool_calls[action.name] = trace.tool_calls.get(action.name, 0) + 1
        elif isinstance(action, FinalAnswer):
            trace.prediction = action.prediction
            break
    return trace
