"""One figure, a panel per benchmark: our Pass@k readings as bars, the papers' numbers as hatched bars."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_PUBLISHED = 6  # published bars per panel (the primary ones first)


def plot_summaries(summaries: Sequence[dict[str, Any]], ks: Sequence[int], path: Path) -> None:
    """Save the bar plot of ``summaries`` to ``path`` (PNG, matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aepo_agent.eval.report import pass_keys, reading_name

    cols = min(3, len(summaries))
    rows = math.ceil(len(summaries) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, sm in zip(axes.flat, summaries, strict=False):
        keys = pass_keys(sm, tuple(ks))
        labels = [reading_name(k, sm["n"]).replace(" (", "\n(") for k in keys]
        values = [100 * sm[k] for k in keys]
        colors = ["#1f77b4"] * len(keys)
        hatches = [""] * len(keys)
        published = sorted(sm["published"], key=lambda p: p["source"] != "P")[:MAX_PUBLISHED]
        for p in published:
            labels.append(f"{p['system']}\n{p['metric'].replace('pass', 'Pass')} ({p['source']})")
            values.append(p["value"])
            colors.append("#bbbbbb" if p["source"] == "S" else "#888888")
            hatches.append("//")
        bars = ax.bar(range(len(values)), values, color=colors, hatch=None)
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        for i, v in enumerate(values):
            ax.text(i, v + 1, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        title = f"{sm['name']} ({sm['samples']}/{sm['tasks'] * sm['n']} samples)"
        ax.set_title(title if sm["complete"] else title + ", partial", fontsize=9)
    for ax in list(axes.flat)[len(summaries):]:
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
