"""Atomic checkpoints with everything exact resume needs: weights, optimizer, step, RNG states.

Two formats share ``checkpoints/step_N`` and ``latest.json``: ``torch`` (this module: one process, whole
``model.pt``/``optimizer.pt``/``state.pt``) and ``dcp`` (``dist_checkpoint``: torch.distributed.checkpoint shards).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch, and CUDA when in use), for exact resume."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _ckpt_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_paths(run_dir: Path, step: int) -> tuple[Path, Path]:
    """(temp dir, final dir) of step ``step``'s checkpoint: written into the first, renamed to the second."""
    root = _ckpt_dir(run_dir)
    return root / f".tmp_step_{step:06d}", root / f"step_{step:06d}"


def save_checkpoint(
    run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, keep: int = 2
) -> Path:
    """Write ``checkpoints/step_N`` via a temp dir + rename, then point ``latest.json`` at it atomically."""
    tmp, final = step_paths(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model.state_dict(), tmp / "model.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"step": step, **rng_state()}, tmp / "state.pt")
    publish_checkpoint(tmp, final, step, keep)
    return final


def publish_checkpoint(tmp: Path, final: Path, step: int, keep: int) -> None:
    """Rename the complete ``tmp`` dir to ``final``, point ``latest.json`` at it atomically, keep ``keep`` dirs."""
    root = final.parent
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / "latest.json.tmp"
    pointer.write_text(json.dumps({"step": step, "path": final.name}))
    os.replace(pointer, root / "latest.json")
    for old in sorted(p for p in root.glob("step_*") if p != final)[: -max(keep - 1, 0) or None]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_format(path: Path) -> Literal["dcp", "torch"]:
    """``dcp`` for a torch.distributed.checkpoint step dir, ``torch`` for a one-process step dir or a weights file."""
    path = Path(path)
    if path.is_file():
        return "torch"
    if (path / ".metadata").is_file():
        return "dcp"
    if (path / "model.pt").is_file():
        return "torch"
    raise FileNotFoundError(f"{path} is not a checkpoint: a step dir holds .metadata (distributed) or model.pt "
                            "(one process); give a step dir under checkpoints/, a model.pt, or a run dir")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest.json`` points at, if any."""
    pointer = _ckpt_dir(run_dir) / "latest.json"
    if not pointer.is_file():
        return None
    path = _ckpt_dir(run_dir) / json.loads(pointer.read_text())["path"]
    return path if path.is_dir() else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states; returns the saved state (with ``step``). A distributed (DCP)
    checkpoint is resharded into this process's model (``dist_checkpoint.load_sharded_checkpoint``)."""
    if checkpoint_format(path) == "dcp":
        from aepo_agent.trainer.dist_checkpoint import load_sharded_checkpoint

        return load_sharded_checkpoint(path, model, optimizer)
    model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    state = torch.load(path / "state.pt", weights_only=False)
    set_rng_state(state)
    return state
