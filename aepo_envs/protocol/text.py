"""Text hygiene for model output and tool results: valid UTF-8, head+tail truncation with a marker, and the stop
string an OpenAI-style server stripped put back."""

from __future__ import annotations

from collections.abc import Sequence


def sanitize(text: str) -> str:
    """Replace lone surrogates and NULs so the text encodes as UTF-8 everywhere downstream."""
    if text.isascii() and "\x00" not in text:
        return text
    cleaned = text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    return cleaned.replace("\x00", "\ufffd")


def truncate_middle(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` keeping head and tail, with an explicit marker in between."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    marker = f"\n[…truncated {len(text) - max_chars} chars…]\n"
    keep = max(max_chars - len(marker), 0)
    head = keep // 2 + keep % 2
    tail = keep // 2
    return text[:head] + marker + (text[len(text) - tail :] if tail else "")


def restore_stop(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` with the closing tag an OpenAI-style ``stop`` stripped put back: a turn that ended on a stop but
    does not end with a stop string gets the closing tag (a ``</tag>`` stop string) of its last opened, unclosed
    ``<tag>``, so the env parses the call. Call it only for turns that finished on a stop (not EOS or length)."""
    if any(text.endswith(stop) for stop in stop_strings):
        return text
    best, best_at = None, -1
    for stop in stop_strings:
        if stop.startswith("</") and stop.endswith(">"):
            at = text.rfind("<" + stop[2:])
            if at > best_at and stop not in text[at:]:
                best, best_at = stop, at
    return text + best if best is not None else text
