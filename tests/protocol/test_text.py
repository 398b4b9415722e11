"""aepo_envs.protocol.text: putting back the stop string an OpenAI-style server stripped."""

from __future__ import annotations

import pytest

from aepo_envs.protocol import restore_stop


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<python>print(1)", "<python>print(1)</python>"),  # stripped by an OpenAI-style stop
        ("<python>print(1)</python>", "<python>print(1)</python>"),  # kept
        ("<python>x</python> then <answer>\\boxed{3}", "<python>x</python> then <answer>\\boxed{3}</answer>"),
        ("<answer>x <python>y", "<answer>x <python>y</python>"),  # the tag opened last is the one cut
        ('<tool_call>{"name": "python"}', '<tool_call>{"name": "python"}</tool_call>'),
        ("no tags at all", "no tags at all"),
    ],
)
def test_restore_stop_puts_back_the_closing_tag_of_the_open_call(text: str, expected: str) -> None:
    assert restore_stop(text, ("</python>", "</answer>", "</tool_call>")) == expected
