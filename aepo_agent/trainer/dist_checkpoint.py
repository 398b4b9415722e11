"""Sharded checkpoints with torch.distributed.checkpoint (DCP): any world size saves, any world size loads.

A step dir (``checkpoints/step_N``, the same layout and ``latest.json`` as ``checkpoint.py``) holds the DCP shards
of ``{"model": ..., "optim": ...}`` (FQN-keyed, from ``get_state_dict``, so FSDP2 DTensors and plain modules save the
same keys), ``rng/rank_R.pt`` per rank and ``meta.json`` (step, world size, the caller's ``extra``: the data
position). The run dir must be on a filesystem every rank sees (one node, or a shared mount across nodes).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)

from aepo_agent.trainer.checkpoint import (
    checkpoint_format,
    load_checkpoint,
    publish_checkpoint,
    rng_state,
    set_rng_state,
    step_paths,
)

META_FILE = "meta.json"
RNG_DIR = "rng"
_RESERVED = frozenset({"step", "world_size", "rng_restored"})
__all__ = ["checkpoint_format", "checkpoint_state_dict", "export_hf_model", "is_main_process", "load_model_weights",
           "load_sharded_checkpoint", "save_hf_model", "save_sharded_checkpoint", "write_hf_dir"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if _distributed() else (0, 1)


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that prints and writes shared files."""
    return _rank_world()[0] == 0


def _barrier() -> None:
    if _distributed():
        dist.barrier()


@contextmanager
def _local_io() -> Iterator[bool]:
    """Yields DCP's ``no_dist`` (no process group here), silencing its warning that it assumes one process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield not _distributed()


def save_sharded_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                            extra: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step_N`` with DCP; collective on every rank (also works with no process group).

    Every rank writes its shards and RNG into a temp dir; after a barrier rank 0 renames it, points ``latest.json``
    at it and prunes to ``keep`` checkpoints, so a kill at any moment leaves the previous checkpoint current."""
    clash = _RESERVED & set(extra)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} are reserved by the checkpoint; rename them")
    try:
        meta = json.dumps({"step": step, "world_size": _rank_world()[1], "extra": extra})
    except TypeError as exc:
        raise TypeError(f"extra must be JSON-serializable (the data position as numbers, strings, lists): {exc}") from exc
    rank, _ = _rank_world()
    tmp, final = step_paths(Path(run_dir), step)
    if rank == 0:
        final.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / RNG_DIR).mkdir(parents=True)
    _barrier()
    unstepped = not optimizer.state
    model_sd, optim_sd = get_state_dict(model, optimizer)  # initializes an unstepped optimizer's state (step 1)
    with _local_io() as no_dist:
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp, no_dist=no_dist)
    if unstepped:  # the live run goes on as if no checkpoint had been taken
        optimizer.state.clear()
    torch.save(rng_state(), tmp / RNG_DIR / f"rank_{rank:05d}.pt")
    if rank == 0:
        (tmp / META_FILE).write_text(meta)
    _barrier()
    if rank == 0:
        publish_checkpoint(tmp, final, step, keep)
    _barrier()
    return final


def load_sharded_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load a step dir into this world's model and optimizer (resharded to any world size); collective.

    The RNG of this rank is restored only when the checkpoint's world size is this one (``rng_restored`` in the
    result says which). A one-process ``torch`` step dir also loads (its full state sharded onto the ranks).
    Returns ``{"step", "world_size", "rng_restored", **extra}``."""
    path = Path(path)
    rank, world = _rank_world()
    if checkpoint_format(path) == "torch":
        return _load_torch_format(path, model, optimizer, world)
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with _local_io() as no_dist:
        dcp.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=path, no_dist=no_dist)
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
    restored = int(meta["world_size"]) == world
    if restored:
        set_rng_state(torch.load(path / RNG_DIR / f"rank_{rank:05d}.pt", weights_only=False))
    return {**meta["extra"], "step": int(meta["step"]), "world_size": int(meta["world_size"]),
            "rng_restored": restored}


def _load_torch_format(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       world: int) -> dict[str, Any]:
    """A one-process checkpoint: as saved without a process group; under one, its full state sharded on each rank."""
    if not _distributed():
        state = load_checkpoint(path, model, optimizer)
        return {"step": int(state["step"]), "world_size": 1, "rng_restored": True}
    full = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, torch.load(path / "model.pt", map_location="cpu", weights_only=True), options=full)
    saved = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    set_optimizer_state_dict(model, optimizer, _fqn_keyed(model, optimizer, saved), options=full)
    step = int(torch.load(path / "state.pt", weights_only=False)["step"])
    return {"step": step, "world_size": 1, "rng_restored": world == 1}


def _fqn_keyed(model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> dict[str, Any]:
    """``optimizer.state_dict()`` (params by position) re-keyed by parameter name, as ``set_optimizer_state_dict``
    takes it: the i-th saved parameter is the i-th parameter of this optimizer (the same model and config)."""
    names = {id(p): name for name, p in model.named_parameters()}
    current = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in saved["param_groups"] for i in group["params"]]
    if len(ids) != len(current):
        raise ValueError(f"the checkpoint's optimizer has {len(ids)} parameters, this one {len(current)}: "
                         "resume with the model and config the run was saved with")
    fqn = dict(zip(ids, current, strict=True))
    return {"state": {fqn[i]: s for i, s in saved["state"].items()},
            "param_groups": [{**g, "params": [fqn[i] for i in g["params"]]} for g in saved["param_groups"]]}


def checkpoint_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The full model state dict (parameter name -> CPU tensor) of a step dir of either format, or a weights
    file; read in this process alone (no process group needed or used)."""
    checkpoint = Path(checkpoint)
    if checkpoint_format(checkpoint) == "torch":
        file = checkpoint if checkpoint.is_file() else checkpoint / "model.pt"
        return torch.load(file, map_location="cpu", weights_only=True)
    metadata = dcp.FileSystemReader(checkpoint).read_metadata().state_dict_metadata
    model_sd = {key.removeprefix("model."): torch.empty(meta.size, dtype=meta.properties.dtype)
                for key, meta in metadata.items()
                if key.startswith("model.") and isinstance(meta, TensorStorageMetadata)}
    with _local_io():
        dcp.load({"model": model_sd}, checkpoint_id=checkpoint, no_dist=True)
    return model_sd


def load_model_weights(checkpoint: Path, module: torch.nn.Module) -> None:
    """Load a checkpoint's weights (either format) into a plain one-process module, strictly."""
    module.load_state_dict(checkpoint_state_dict(checkpoint))


def write_hf_dir(config: Any, state_dict: dict[str, torch.Tensor], out_dir: Path, tokenizer: Any = None,
                 generation_config: Any = None) -> Path:
    """A plain HF model dir (config, safetensors, tokenizer) of ``config``'s architecture with ``state_dict``'s
    weights, in their dtype; built on the meta device, so the weights are held once."""
    from transformers import AutoModelForCausalLM

    dtype = next(iter(state_dict.values())).dtype
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    _, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    model.tie_weights()
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing or unexpected:
        raise ValueError(f"the checkpoint does not match the base model's architecture (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}): pass the base model the run trained")
    if generation_config is not None:
        model.generation_config = generation_config
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def export_hf_model(checkpoint: Path, base_model: str | Path, out_dir: Path) -> Path:
    """A plain HF dir (loadable by ``from_pretrained`` and vLLM) from a checkpoint of either format; ``base_model``
    (a dir or a name ``resolve_model`` knows: the run's ``model.name``) gives the architecture and tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from aepo_agent.models import resolve_model

    base = resolve_model(base_model)
    try:
        generation = GenerationConfig.from_pretrained(base)
    except OSError:  # the base dir has no generation_config.json
        generation = None
    return write_hf_dir(AutoConfig.from_pretrained(base), checkpoint_state_dict(checkpoint), out_dir,
                        AutoTokenizer.from_pretrained(base), generation)


def save_hf_model(model: torch.nn.Module, tokenizer: Any, out_dir: Path) -> Path:
    """Save a (possibly FSDP-sharded) HF model as one plain HF dir (with ``tokenizer`` unless None); collective:
    the full state is gathered to rank 0, which alone writes."""
    if not _distributed():
        model.save_pretrained(out_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(out_dir)
        return Path(out_dir)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:
        write_hf_dir(model.config, full, out_dir, tokenizer, getattr(model, "generation_config", None))
    _barrier()
    return Path(out_dir)
