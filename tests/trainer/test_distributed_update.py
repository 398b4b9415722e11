"""Two gloo ranks (FSDP2 on a CPU mesh) take the update one process takes on the same fixed rollout batch:
parameters after it agree to 1e-5 for token-mean and seq-mean-token-mean, GRPO and REINFORCE++ advantages, with
the entropy-aware advantage on; the ranks split the passes through the model between them; an engine holding its
own weights (vLLM) gets the whole updated weights on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from local_services import free_port

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import dist_worker_update as worker  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _launch(out: Path, world: int | None) -> None:
    """The worker as one plain process (``world`` None) or as ``world`` ranks with the env:// variables."""
    base = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    base.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    ranks: list[dict[str, str]] = [{}] if world is None else [
        {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1"}
        for r in range(world)]
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, worker.__file__, str(out)],
                              env={**base, **extra, **({"MASTER_PORT": port} if extra else {})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for extra in ranks]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for rank, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        assert proc.returncode == 0, f"worker (world {world}, rank {rank}) failed:\n{log[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    _launch(one, None)
    _launch(two, 2)
    return {"one": one, "two": two}


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("case", list(worker.CASES))
def test_two_ranks_take_the_one_process_step(runs, case) -> None:
    one, two = _load(runs["one"] / f"{case}.pt"), _load(runs["two"] / f"{case}.pt")
    initial = worker.make_model().state_dict()
    assert one["params"].keys() == two["params"].keys() == initial.keys()
    moved = max(float((one["params"][k] - initial[k]).abs().max()) for k in initial)
    assert moved > 5e-4  # the step is large against the tolerance: AdamW at lr 1e-3 (one or two mini-batches move)
    for name, value in one["params"].items():
        assert torch.allclose(two["params"][name], value, atol=1e-5, rtol=0), name
    for name, value in one["exp_avg"].items():  # the gradients themselves: a rank mean, not the sum, fails here
        assert torch.allclose(two["exp_avg"][name], value, rtol=1e-4, atol=1e-7), name
    for key, value in one["metrics"].items():  # the logged update pools every rank's micro-batches
        assert two["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert two["metrics"]["dist/world_size"] == 2.0


@pytest.mark.parametrize("case", list(worker.CASES))
def test_the_ranks_split_the_passes_through_the_model(runs, case) -> None:
    one = json.loads((runs["one"] / f"{case}.rows.json").read_text())
    ranks = [json.loads((runs["two"] / f"{case}.rows{r}.json").read_text()) for r in range(2)]
    empty = _load(runs["two"] / f"{case}.pt")["metrics"]["dist/empty_passes"]
    assert len(ranks[0]) == len(ranks[1])  # FSDP: as many forward passes on every rank
    assert all(sum(rows) < sum(one) for rows in ranks)  # neither rank ran the whole batch
    assert sum(map(sum, ranks)) - empty == sum(one)  # each row ran on one rank; an empty pass runs one row


def test_every_rank_syncs_its_engine_with_the_whole_weights(runs) -> None:
    case = next(iter(worker.CASES))
    params = _load(runs["one"] / f"{case}.pt")["params"]
    expected = {name: float(value.double().sum()) for name, value in params.items()}
    for rank in range(2):
        synced = json.loads((runs["two"] / f"{case}.synced{rank}.json").read_text())
        assert synced.keys() == expected.keys()  # whole tensors by HF name, not this rank's shards
        assert all(synced[k] == pytest.approx(v, rel=1e-5, abs=1e-4) for k, v in expected.items())
