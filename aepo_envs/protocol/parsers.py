"""Parse model text into an Action, per protocol: ARPO/AEPO tags or JSON tool calls.

Only the first tool call of an action runs; text after it is ignored, as in ARPO and Search-R1.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aepo_envs.protocol.actions import Action, FinalAnswer, InvalidAction, ToolCall
from aepo_envs.rewards.extract import last_boxed

ANSWER_TAG = "answer"
# Tags of the ARPO family that a model may emit although this env does not offer the tool.
KNOWN_TOOL_TAGS = ("search", "python", "browse")
_FENCE_RE = re.compile(r"^```[a-zA-Z0-9_+-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class ToolSpec:
    """What a parser needs to know of a tool: its name, tag and the argument its tag body fills."""

    name: str
    tag: str | None
    primary_arg: str


def strip_code_fence(code: str) -> str:
    """Remove a surrounding markdown code fence, which models often put inside ``<python>``."""
    match = _FENCE_RE.match(code.strip())
    return match.group(1) if match else code


class ActionParser(abc.ABC):
    """Turns model text into an Action and wraps tool results for the model."""

    name: str = ""

    def __init__(self, tools: Mapping[str, ToolSpec]):
        self.tools = dict(tools)

    @property
    @abc.abstractmethod
    def stop_strings(self) -> tuple[str, ...]:
        """Strings on which an engine should stop generating (the closing tags), included in the output."""

    @abc.abstractmethod
    def parse(self, text: str) -> Action:
        """Parse one action. Never raises on any str."""

    @abc.abstractmethod
    def format_result(self, tool_name: str, text: str) -> str:
        """The observation text for a tool result."""

    def format_feedback(self, reason: str) -> str:
        """The observation text for an invalid action."""
        return self.format_result("", f"Invalid action: {reason}")

    def protocol_hint(self) -> str:
        """One line telling the model the expected format (appended to parse-error feedback)."""
        return ""

    def _answer(self, body: str) -> FinalAnswer:
        return FinalAnswer(text=body.strip(), prediction=last_boxed(body))


class TagParser(ActionParser):
    """ARPO/AEPO tags: ``<search>q</search>``, ``<python>code</python>``, ``<answer>…\\boxed{x}…</answer>``."""

    name = "tags"

    def __init__(self, tools: Mapping[str, ToolSpec]):
        super().__init__(tools)
        self._by_tag = {spec.tag: spec for spec in self.tools.values() if spec.tag}

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return tuple(f"</{tag}>" for tag in self._by_tag) + (f"</{ANSWER_TAG}>",)

    def protocol_hint(self) -> str:
        calls = ", ".join(f"<{tag}>…</{tag}>" for tag in self._by_tag) or "no tools"
        return f"Use one tool call ({calls}) or give the final answer as <answer>… \\boxed{{…}} …</answer>."

    def parse(self, text: str) -> Action:
        candidates = [*self._by_tag, *KNOWN_TOOL_TAGS, ANSWER_TAG]
        first_tag, first_pos = None, len(text)
        for tag in dict.fromkeys(candidates):
            pos = text.find(f"<{tag}>")
            if 0 <= pos < first_pos:
                first_tag, first_pos = tag, pos
        if first_tag is None:
            tags = "|".join(re.escape(t) for t in dict.fromkeys([*self._by_tag, *KNOWN_TOOL_TAGS, ANSWER_TAG]))
            stray = re.search(rf"</({tags})>", text)
            if stray:
                spec = self._by_tag.get(stray.group(1))
                return InvalidAction(f"found {stray.group(0)} without its opening tag. {self.protocol_hint()}",
                                     empty_call_tool=spec.name if spec else None)
            return InvalidAction(f"no tool call and no final answer found. {self.protocol_hint()}")
        open_tag, close_tag = f"<{first_tag}>", f"</{first_tag}>"
        start = first_pos + len(open_tag)
        end = text.find(close_tag, start)
        if end < 0:
            return InvalidAction(f"{open_tag} is not closed with {close_tag}. {self.protocol_hint()}")
        body = text[start:end]
        if open_tag in body:
            return InvalidAction(f"nested {open_tag} tags are not allowed. {self.protocol_hint()}")
        if first_tag == ANSWER_TAG:
            return self._answer(body)
        spec = self._by_tag.get(first_tag)
        if spec is None:
            offered = ", ".join(f"<{t}>" for t in self._by_tag) or "none"
            return InvalidAction(f"the tool <{first_tag}> is not available here (available: {offered}).")
        arg = body.strip()
        if spec.primary_arg == "code":
            arg = strip_code_fence(arg).strip()
        if not arg:
            return InvalidAction(f"empty {open_tag} call. {self.protocol_hint()}", empty_call_tool=spec.name)
        return ToolCall(spec.name, {spec.primary_arg: arg})

    def format_result(self, tool_name: str, text: str) -> str:
        return f" <result>\n{text}\n</result>"


class JsonToolCallParser(ActionParser):
    """Hermes/Qwen style ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``; answers in ``<answer>``."""

    name = "json"
    _OPEN, _CLOSE = "<tool_call>", "</tool_call>"

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return (self._CLOSE, f"</{ANSWER_TAG}>")

    def protocol_hint(self) -> str:
        return (
            'Call a tool as <tool_call>{"name": "<tool>", "arguments": {…}}</tool_call> or answer with '
            "<answer>… \\boxed{…} …</answer>."
        )

    def parse(self, text: str) -> Action:
        call_pos = text.find(self._OPEN)
        ans_pos = text.find(f"<{ANSWER_TAG}>")
        if ans_pos >= 0 and (call_pos < 0 or ans_pos < call_pos):
            end = text.find(f"</{ANSWER_TAG}>", ans_pos)
            if end < 0:
                return InvalidAction(f"<answer> is not closed with </answer>. {self.protocol_hint()}")
            return self._answer(text[ans_pos + len(ANSWER_TAG) + 2 : end])
        if call_pos < 0:
            return InvalidAction(f"no tool call and no final answer found. {self.protocol_hint()}")
        end = text.find(self._CLOSE, call_pos)
        if end < 0:
            return InvalidAction(f"<tool_call> is not closed with </tool_call>. {self.protocol_hint()}")
        payload = text[call_pos + len(self._OPEN) : end].strip()
        try:
            obj = json.loads(payload)
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nesting too deep"
            return InvalidAction(f"the tool call is not valid JSON ({msg}). {self.protocol_hint()}")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return InvalidAction(f'the tool call must be an object with a string "name". {self.protocol_hint()}')
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # OpenAI sends arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except (json.JSONDecodeError, RecursionError):
                return InvalidAction('"arguments" is a string that is not valid JSON.')
        if not isinstance(args, dict):
            return InvalidAction('"arguments" must be a JSON object.')
        if obj["name"] not in self.tools:
            offered = ", ".join(self.tools) or "none"
            return InvalidAction(f"unknown tool {obj['name']!r} (available: {offered}).")
        return ToolCall(obj["name"], args)

    def format_result(self, tool_name: str, text: str) -> str:
        return f"<tool_response>\n{text}\n</tool_response>"


PARSERS: dict[str, type[ActionParser]] = {"tags": TagParser, "json": JsonToolCallParser}


def make_parser(action_format: str, tools: Mapping[str, ToolSpec]) -> ActionParser:
    """The parser for ``action_format`` ("tags" or "json")."""
    if action_format not in PARSERS:
        raise ValueError(f"action_format must be one of {sorted(PARSERS)}, got {action_format!r}")
    return PARSERS[action_format](tools)
