"""One rank of the distributed-checkpoint tests: a tiny Llama sharded with FSDP2 on a gloo CPU mesh.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python dcp_worker.py OUT RUN_DIR ONE_DCP ONE_TORCH

A: one AdamW step, ``save_sharded_checkpoint`` (run dir RUN_DIR), the next random draws, a second step.
B: a fresh model and optimizer (other seeds, RNG scrambled) loads A's checkpoint, draws, takes the second step.
   Then ``save_hf_model`` writes it as one HF dir from rank 0 (``aepo sft --out`` under torchrun).
C: fresh models load ONE_DCP / ONE_TORCH, checkpoints saved by one process.
Rank 0 writes the gathered full states to OUT; every rank writes its draws and load results.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch


def make_model(seed: int = 0, vocab_size: int = 256) -> Any:
    """A seeded tiny Llama (head_dim 32)."""
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(cfg)


def batch() -> torch.Tensor:
    """The fixed training batch every rank and the one-process run use."""
    return torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(7))


def train_step(model: Any, optimizer: torch.optim.Optimizer) -> None:
    """One AdamW step on ``batch()``, then the learning rate halves (a schedule the checkpoint must carry)."""
    ids = batch()
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for group in optimizer.param_groups:
        group["lr"] /= 2


def make_optimizer(model: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def draws() -> list[float]:
    """The next python, numpy and torch random numbers (what a restored RNG must reproduce)."""
    return [random.random(), float(np.random.rand()), *torch.rand(2).tolist()]


def _sharded(seed: int) -> tuple[Any, torch.optim.Optimizer]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = make_model(seed)
    mesh = init_device_mesh("cpu", (int(os.environ["WORLD_SIZE"]),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, make_optimizer(model)


def _gathered(model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {"model": model_sd, "optim": optim_sd}


def main(out: Path, run_dir: Path, one_dcp: Path, one_torch: Path) -> None:
    import torch.distributed as dist

    from aepo_agent.trainer.dist_checkpoint import (
        load_sharded_checkpoint,
        save_hf_model,
        save_sharded_checkpoint,
    )

    dist.init_process_group("gloo")
    rank = dist.get_rank()

    def dump(name: str, obj: Any) -> None:
        if rank == 0:
            torch.save(obj, out / name)

    def note(name: str, obj: Any) -> None:
        (out / f"{name}_rank{rank}.json").write_text(json.dumps(obj))

    model, opt = _sharded(0)
    train_step(model, opt)
    seed = 100 + rank  # each rank's RNG differs, so restoring the wrong rank's file would show
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    save_sharded_checkpoint(run_dir, 1, model, opt, extra={"data_position": 5, "epoch": 0}, keep=2)
    dump("a_saved.pt", _gathered(model, opt))
    note("draws_a", draws())
    train_step(model, opt)
    dump("a_step2.pt", _gathered(model, opt))

    random.seed(999)
    np.random.seed(999)
    torch.manual_seed(999)
    model, opt = _sharded(123)
    note("result_b", load_sharded_checkpoint(run_dir / "checkpoints" / "step_000001", model, opt))
    note("draws_b", draws())
    dump("b_loaded.pt", _gathered(model, opt))
    train_step(model, opt)
    dump("b_step2.pt", _gathered(model, opt))

    save_hf_model(model, None, out / "hf_sft")  # what `aepo sft --out` does under torchrun

    for name, path in (("c_dcp", one_dcp), ("c_torch", one_torch)):
        model, opt = _sharded(321)
        note(f"result_{name}", load_sharded_checkpoint(path, model, opt))
        dump(f"{name}.pt", _gathered(model, opt))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:5]))
