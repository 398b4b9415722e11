"""Named benchmark suites of the papers (algorithms.md §5.1) and the resolution of ``--envs`` entries."""

from __future__ import annotations

from collections.abc import Iterable

SUITES: dict[str, tuple[str, ...]] = {
    "deep_search": ("AEPO/GAIA-v0", "AEPO/HLE-v0", "AEPO/WebWalkerQA-v0", "AEPO/XBenchDeepSearch-v0"),
    "knowledge_qa": ("AEPO/HotpotQA-v0", "AEPO/2Wiki-v0", "AEPO/MuSiQue-v0", "AEPO/Bamboogle-v0"),
    "math": ("AEPO/AIME24-v0", "AEPO/AIME25-v0", "AEPO/MATH500-v0", "AEPO/GSM8K-v0"),
}
SUITES["paper"] = SUITES["deep_search"] + SUITES["knowledge_qa"] + SUITES["math"]


def resolve_envs(entries: Iterable[str]) -> list[str]:
    """Env ids for ``entries``: suite names, full ids (``AEPO/GSM8K-v0``, any registered gym id) or short names
    (``GSM8K``); duplicates dropped, order kept. Unknown names raise with the valid choices."""
    import gymnasium as gym

    import aepo_envs

    known = aepo_envs.list_envs()
    by_short = {env_id.split("/", 1)[-1].rsplit("-v", 1)[0].lower(): env_id for env_id in known}
    out: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry in SUITES:
            out.extend(SUITES[entry])
        elif entry in known or entry in gym.registry:
            out.append(entry)
        elif entry.lower() in by_short:
            out.append(by_short[entry.lower()])
        else:
            raise ValueError(f"unknown env or suite {entry!r}; suites: {', '.join(SUITES)}; envs: {', '.join(known)}")
    return list(dict.fromkeys(out))
