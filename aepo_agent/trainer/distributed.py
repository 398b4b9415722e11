"""Data-parallel training under torchrun: the process group and device mesh, FSDP2 sharding, the collectives the
trainer needs, and the full weights the rollout engines generate from.

Under ``torchrun --nproc-per-node K`` each rank rolls out its block of the step's prompts; the rows of all ranks
are then gathered, so every rank holds the one-process batch and computes its batch statistics (advantages,
whitening, entropy z-scores, dynamic sampling, normalizers) with the one-process code. Only the passes through the
model are divided: the micro-batches of each mini-batch are dealt round-robin to the ranks, whose gradients FSDP
sums. K ranks therefore take the step one process takes on the same rollout.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from aepo_agent.rollout.trajectory import RolloutResult

T = TypeVar("T")
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Rank r > 0 rolls out with seed + r * this (rank 0 keeps the one-process seed): disjoint per step below 1e9 steps.
RANK_SEED_STRIDE = 1_000_000_007


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher setting the env:// variables)."""
    return all(name in os.environ for name in _TORCHRUN_VARS)


@dataclass
class DistContext:
    """This rank's place in the job: rank, world size, its device and the 1-D data-parallel device mesh."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    mesh: Any  # torch.distributed.device_mesh.DeviceMesh
    owns_group: bool = True  # this context initialised the process group (and destroys it on close)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all_sum(self, *tensors: torch.Tensor) -> None:
        """Sum each tensor over the ranks, in place."""
        for tensor in tensors:
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            if moved is not tensor:
                tensor.copy_(moved)

    def share(self, items: Sequence[T]) -> tuple[list[T], int]:
        """This rank's items (dealt round-robin) and how many empty passes it adds so that every rank makes
        ceil(len / world) passes: FSDP runs collectives in each forward/backward, so the counts must match."""
        mine = list(items[self.rank :: self.world])
        return mine, math.ceil(len(items) / self.world) - len(mine)

    def prompt_block(self, count: int) -> slice:
        """The rank's contiguous block of a step's ``count`` prompts."""
        per = count // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def rollout_seed(self, seed: int) -> int:
        """The rank's rollout seed from the step's one-process seed (rank 0 keeps it)."""
        return seed + RANK_SEED_STRIDE * self.rank

    def close(self) -> None:
        """Destroy the process group if this context created it (after the models holding its mesh are gone)."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str, timeout_s: float) -> DistContext | None:
    """Under torchrun: the process group (gloo on CPU, NCCL on CUDA with ``cuda:LOCAL_RANK``), with a timeout on
    every collective, and its device mesh. Otherwise None: the one-process path."""
    if not under_torchrun():
        return None
    from torch.distributed.device_mesh import init_device_mesh

    local_rank = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"model.device={device!r} under torchrun, but CUDA is not available; set model.device=cpu")
        dev, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev, backend = torch.device("cpu"), "gloo"
    else:
        raise ValueError(f"model.device={device!r} under torchrun: use cpu (gloo) or cuda (NCCL, one GPU per rank)")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                device_id=dev if dev.type == "cuda" else None)
    mesh = init_device_mesh(dev.type, (dist.get_world_size(),), mesh_dim_names=("dp",))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, mesh, owns)


def check_divisible(prompts_per_step: int, world: int) -> None:
    """Each rank rolls out ``prompts_per_step / world`` prompts: refuse a remainder before any model loads."""
    if prompts_per_step % world:
        raise ValueError(f"train.prompts_per_step={prompts_per_step} must be a multiple of the world size {world} "
                         "(torchrun processes in all): each rank rolls out prompts_per_step / world prompts; set "
                         f"train.prompts_per_step to a multiple of {world}, or start a number of processes dividing it")


# ---------------------------------------------------------------------------------------------- FSDP2
def _fsdp_modules(model: torch.nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def shard_model(model: torch.nn.Module, ctx: DistContext, *, bf16_compute: bool = False) -> torch.nn.Module:
    """FSDP2 ``fully_shard`` on each decoder layer (the model's ``_no_split_modules``), then on the root, over the
    mesh; ``bf16_compute`` keeps fp32 parameter shards and runs in bf16 with fp32 gradient reduction. Gradients are
    summed over ranks (not averaged): each rank's loss is its share of the global sum."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kwargs: dict[str, Any] = {"mesh": ctx.mesh}
    if bf16_compute:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(model).__name__} names no decoder-layer class in _no_split_modules, so FSDP2 has no "
                         "layers to shard: use a transformers causal LM (Llama, Qwen, SmolLM, ...)")
    for layer in layers:
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    set_gradient_divisor(model, 1.0)
    return model


def reshard(model: torch.nn.Module) -> None:
    """Put every FSDP2 module of ``model`` back in its sharded state (local, no collective). The root stays
    unsharded after a forward without a backward (FSDP2's heuristic), e.g. the old log-probs' no-grad passes; a
    mini-batch step that then runs no pass of its own must reshard before it touches gradients."""
    for module in _fsdp_modules(model):
        module.reshard()


def set_gradient_divisor(model: torch.nn.Module, factor: float) -> None:
    """FSDP's gradient reduction divides the rank sum by ``factor`` (1: sum; the world size: mean). Sum-only
    collectives: gloo has no pre-multiplied sum."""
    for module in _fsdp_modules(model):
        module.set_gradient_divide_factor(factor)
        module.set_force_sum_reduction_for_comms(True)


@contextmanager
def mean_gradients(model: torch.nn.Module, ctx: DistContext | None) -> Iterator[None]:
    """Average gradients over ranks meanwhile: for a phase where every rank computes the whole batch's gradient
    (the warm start), so the mean is the one-process gradient."""
    if ctx is None:
        yield
        return
    set_gradient_divisor(model, float(ctx.world))
    try:
        yield
    finally:
        set_gradient_divisor(model, 1.0)


def as_float(value: Any) -> float:
    """A scalar tensor (a DTensor from ``clip_grad_norm_`` over sharded gradients: the full norm) as a float."""
    full = getattr(value, "full_tensor", None)
    return float(full() if callable(full) else value)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict of a sharded (or plain) model on every rank, on the model's device; collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def load_full_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a whole state dict into a sharded model (each rank keeps its shard); collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def full_named_parameters(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, whole tensor) of each parameter, a tied weight once (as ``named_parameters``), for an engine's
    ``update_weights``; collective."""
    state = full_state_dict(model)
    return [(name, state[name]) for name, _ in model.named_parameters()]


class GenerationCopy:
    """An unsharded copy of the policy for the HF engine: the full weights are gathered into it for a rollout and
    freed after. Memory while loaded: one whole copy of the weights in ``dtype`` (plus the fp32 gather when the
    shards are fp32 and ``dtype`` is not); between rollouts only the buffers stay."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.dtype = dtype
        self._params = dict(self.module.named_parameters())  # a tied weight is one entry and stays tied
        self.free()

    def free(self) -> None:
        for param in self._params.values():
            param.data = torch.empty(0, dtype=self.dtype, device=param.device)

    @contextmanager
    def loaded(self, sharded: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The copy holding ``sharded``'s current weights (gathered from all ranks: collective)."""
        state = full_state_dict(sharded)
        for name, param in self._params.items():
            param.data = state[name].detach().to(self.dtype)
        del state
        try:
            yield self.module
        finally:
            self.free()


# ---------------------------------------------------------------------------------------------- rollouts
_SUMMED = frozenset({"rollout/generated_tokens"})
_MAXED = frozenset({"rollout/rounds", "rollout/continuous"})


def merge_rollouts(parts: Sequence[RolloutResult]) -> RolloutResult:
    """The step's rollout from the ranks' parts (rank r rolled out the r-th block of prompts): group ids become
    positions in the step, trajectory and segment ids stay unique across ranks (ARPO hard attribution keys on
    them), rows keep group then trajectory order. Statistics: counts summed, rounds the maximum, the rest (per
    tree or per trajectory, over equal shares) averaged."""
    rows, groups, trajs, segs = [], 0, 0, 0
    for part in parts:
        for row in part.rows:
            rows.append(dataclasses.replace(
                row, group_id=row.group_id + groups, traj_id=row.traj_id + trajs,
                parent_id=None if row.parent_id is None else row.parent_id + trajs,
                segment_ids=[s + segs for s in row.segment_ids]))
        if part.rows:
            groups += 1 + max(r.group_id for r in part.rows)
            trajs += 1 + max(r.traj_id for r in part.rows)
            segs += max((s for r in part.rows for s in r.segment_ids), default=0)
    return RolloutResult(rows, merge_stats([p.stats for p in parts]))


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One statistics dict from the ranks' (see ``merge_rollouts``); non-numbers are taken from rank 0."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        values = [p[key] for p in parts if key in p]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = values[0]
        elif key in _SUMMED:
            out[key] = float(sum(values))
        elif key in _MAXED:
            out[key] = float(max(values))
        else:
            out[key] = statistics.fmean(values)
    return out


def combine_mini_batches(per_rank: Sequence[Sequence[tuple[float, list[dict[str, float]], float]]]
                         ) -> list[tuple[float, list[dict[str, float]], float]]:
    """Per mini-batch (loss, micro-batch metrics, grad norm) of all ranks: losses summed, metrics pooled (every
    micro-batch ran on exactly one rank), the grad norm (already the full norm) kept."""
    return [(sum(r[0] for r in recs), [m for r in recs for m in r[1]], recs[0][2])
            for recs in zip(*per_rank, strict=True)]


def record_errors(fn: Callable[..., T]) -> Callable[..., T | None]:
    """``fn`` under torch.distributed.elastic's ``@record``: torchrun reports the failing rank's traceback."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(fn)


def quiet_libraries() -> None:
    """On a rank other than 0: no progress bars of the libraries (transformers' weight loading) either."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class QuietLogger:
    """The run log of a rank other than 0: rank 0 alone writes metrics, events and TensorBoard."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def log_event(self, name: str, index_key: str, index: int, metrics: dict[str, Any]) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass
