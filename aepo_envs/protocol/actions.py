"""Parsed actions: a tool call, a final answer, or an invalid action with a reason for the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """The first tool call found in the model's text."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FinalAnswer:
    """The content of ``<answer>…</answer>``; ``prediction`` is its last ``\\boxed{}`` (None if absent)."""

    text: str
    prediction: str | None


@dataclass(frozen=True)
class InvalidAction:
    """Text that is neither a tool call nor an answer; ``reason`` is shown to the model. ``empty_call_tool``
    names the tool when the text closed a call of it with nothing inside (or without its opening tag): the
    released ARPO loop ends such a trajectory instead of answering it (``on_empty_tool_call``)."""

    reason: str
    empty_call_tool: str | None = None


Action = ToolCall | FinalAnswer | InvalidAction
