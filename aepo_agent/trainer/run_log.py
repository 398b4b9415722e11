"""Run logs a newcomer can read: metrics.jsonl, TensorBoard events, and a PNG of reward/entropy/branching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RunLogger:
    """Appends one JSON line per step; mirrors scalars to TensorBoard when available."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True):
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps > ``step`` (written after the checkpoint we resume from), held-out evals included:
        the resumed run evaluates again from there."""
        for path in (self.path, self.run_dir / "heldout.jsonl"):
            if not path.exists():
                continue
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **metrics}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def log_event(self, name: str, index_key: str, index: int, metrics: dict[str, Any]) -> None:
        """Append ``{index_key: index, **metrics}`` to ``<name>.jsonl``: phases outside the RL steps (the warm
        start), kept out of metrics.jsonl so its step numbering stays the RL step's."""
        with (self.run_dir / f"{name}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({index_key: index, **metrics}) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(key, value, index)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl."""
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plot_run(run_dir: Path) -> Path | None:
    """Write ``training.png``: reward, entropy before/after tool results, and branch statistics per step."""
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heldout = read_metrics(run_dir / "heldout.jsonl")
    panels = [
        ("reward", ["rollout/reward_mean"]),
        ("entropy (normalised segment)", ["rollout/entropy_initial", "rollout/entropy_after_tool"]),
        ("branching", ["rollout/branches_per_tree", "rollout/fills_per_tree", "rollout/distinct_trajectories"]),
        ("tool calls / trajectory", ["rollout/tool_calls_per_traj"]),
    ]
    if heldout:
        panels.append(("held-out tasks (x: RL updates)", ["heldout/pass@1", "heldout/reward_mean"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        source = heldout if title.startswith("held-out") else records
        for key in keys:
            ax.plot([r["step"] for r in source], [r.get(key, float("nan")) for r in source], marker="o",
                    label=key.split("/")[-1])
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = run_dir / "training.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
