"""Model text → actions (tool call, final answer, invalid), per protocol."""

from aepo_envs.protocol.actions import Action, FinalAnswer, InvalidAction, ToolCall
from aepo_envs.protocol.parsers import (
    PARSERS,
    ActionParser,
    JsonToolCallParser,
    TagParser,
    ToolSpec,
    make_parser,
)
from aepo_envs.protocol.text import restore_stop, sanitize, truncate_middle

__all__ = [
    "PARSERS",
    "Action",
    "ActionParser",
    "FinalAnswer",
    "InvalidAction",
    "JsonToolCallParser",
    "TagParser",
    "ToolCall",
    "ToolSpec",
    "make_parser",
    "restore_stop",
    "sanitize",
    "truncate_middle",
]
