"""Distributed checkpoints: 2 gloo ranks (FSDP2 on a CPU mesh) save and reload exactly; 1 process loads the
2-rank checkpoint and 2 ranks load 1-process ones; saves are atomic; ``aepo eval`` and ``aepo export`` read them."""

from __future__ import annotations

import json
import os
import shutil
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

import dcp_worker  # noqa: E402
from torch.distributed.checkpoint.state_dict import get_state_dict  # noqa: E402

from aepo_agent.trainer import dist_checkpoint as dc  # noqa: E402
from aepo_agent.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _equal(a: Any, b: Any) -> bool:
    """Nested state dicts equal: same keys, bitwise-equal tensors, equal other values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu())
    return a == b


def _states(model: Any, optimizer: Any) -> dict[str, Any]:
    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints saved by one process (DCP and torch format), then the 2-rank worker run (dcp_worker.py)."""
    root = tmp_path_factory.mktemp("dcp")
    model = dcp_worker.make_model(0)
    opt = dcp_worker.make_optimizer(model)
    dcp_worker.train_step(model, opt)
    one_dcp = dc.save_sharded_checkpoint(root / "one_dcp", 1, model, opt, extra={"data_position": 2}, keep=2)
    one_torch = save_checkpoint(root / "one_torch", 1, model, opt)
    torch.save(_states(model, opt), root / "one_saved.pt")
    out = root / "out"
    for attempt in range(2):  # a second try only when another process took the rendezvous port meanwhile
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(root / "run", ignore_errors=True)
        out.mkdir()
        codes, logs = _launch_ranks(out, root / "run", one_dcp, one_torch)
        if any(codes) and attempt == 0 and any("Address already in use" in log for log in logs):
            continue
        for rank, (code, log) in enumerate(zip(codes, logs, strict=True)):
            assert code == 0, f"rank {rank} failed:\n{log[-4000:]}"
        break
    return {"root": root, "out": out, "run": root / "run", "one_dcp": one_dcp}


def _launch_ranks(*args: Path) -> tuple[list[int], list[str]]:
    """Run dcp_worker.py as ranks 0 and 1 of a gloo group on 127.0.0.1; their exit codes and output."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(Path(dcp_worker.__file__)), *map(str, args)],
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    return [p.returncode for p in procs], logs


def _load(runs: dict[str, Path], name: str) -> Any:
    return torch.load(runs["out"] / name, weights_only=False)


def _note(runs: dict[str, Path], name: str, rank: int) -> Any:
    return json.loads((runs["out"] / f"{name}_rank{rank}.json").read_text())


def test_two_ranks_resume_exactly(runs) -> None:
    saved, loaded = _load(runs, "a_saved.pt"), _load(runs, "b_loaded.pt")
    fresh = dcp_worker.make_model(123).state_dict()
    assert not _equal(saved["model"], fresh)  # the loaded model started from other weights
    assert _equal(loaded, saved)  # model and AdamW state (step, exp_avg, exp_avg_sq) equal
    assert _equal(_load(runs, "b_step2.pt"), _load(runs, "a_step2.pt"))  # the next step continues exactly
    draws = [_note(runs, "draws_a", r) for r in range(2)]
    assert draws[0] != draws[1]  # each rank has its own RNG ...
    for rank in range(2):  # ... and gets it back
        assert _note(runs, "draws_b", rank) == draws[rank]
        assert _note(runs, "result_b", rank) == {"step": 1, "world_size": 2, "rng_restored": True,
                                                 "data_position": 5, "epoch": 0}
    assert latest_checkpoint(runs["run"]) == runs["run"] / "checkpoints" / "step_000001"
    assert sorted(p.name for p in (latest_checkpoint(runs["run"]) / "rng").iterdir()) == [
        "rank_00000.pt", "rank_00001.pt"]


def test_one_process_loads_the_two_rank_checkpoint(runs) -> None:
    saved = _load(runs, "a_saved.pt")
    for load in (dc.load_sharded_checkpoint, load_checkpoint):  # the one-process trainer's own entry point too
        model = dcp_worker.make_model(55)
        opt = dcp_worker.make_optimizer(model)
        state = load(latest_checkpoint(runs["run"]), model, opt)
        assert state == {"step": 1, "world_size": 2, "rng_restored": False, "data_position": 5, "epoch": 0}
        assert _equal(_states(model, opt), saved)


def test_two_ranks_load_one_process_checkpoints(runs) -> None:
    one = torch.load(runs["root"] / "one_saved.pt", weights_only=False)
    assert _equal(_load(runs, "c_dcp.pt"), one)
    assert _equal(_load(runs, "c_torch.pt"), one)
    for rank in range(2):
        assert _note(runs, "result_c_dcp", rank) == {"step": 1, "world_size": 1, "rng_restored": False,
                                                      "data_position": 2}
        assert _note(runs, "result_c_torch", rank) == {"step": 1, "world_size": 1, "rng_restored": False}


def test_formats_are_detected(runs, tmp_path) -> None:
    assert dc.checkpoint_format(runs["one_dcp"]) == "dcp"
    torch_dir = latest_checkpoint(runs["root"] / "one_torch")
    assert dc.checkpoint_format(torch_dir) == "torch"
    assert dc.checkpoint_format(torch_dir / "model.pt") == "torch"
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        dc.checkpoint_format(tmp_path)


def test_save_is_atomic_and_keeps_the_last(tmp_path, monkeypatch) -> None:
    model = dcp_worker.make_model(0)
    opt = dcp_worker.make_optimizer(model)
    run = tmp_path / "run"
    first = dc.save_sharded_checkpoint(run, 1, model, opt, extra={}, keep=2)
    leftover = run / "checkpoints" / ".tmp_step_000002"
    (leftover / "rng").mkdir(parents=True)
    (leftover / "__0_0.distcp").write_bytes(b"half a shard")
    assert latest_checkpoint(run) == first  # a temp dir is never a checkpoint

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(dc.dcp, "save", crash)
    dcp_worker.train_step(model, opt)
    with pytest.raises(KeyboardInterrupt):
        dc.save_sharded_checkpoint(run, 2, model, opt, extra={}, keep=2)
    assert latest_checkpoint(run) == first and not (run / "checkpoints" / "step_000002").exists()
    monkeypatch.undo()
    for step in (2, 3):  # the leftover is replaced; keep=2 prunes step 1
        dc.save_sharded_checkpoint(run, step, model, opt, extra={"data_position": step}, keep=2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step_000002", "step_000003"]
    fresh = dcp_worker.make_model(9)
    state = dc.load_sharded_checkpoint(latest_checkpoint(run), fresh, dcp_worker.make_optimizer(fresh))
    assert state["step"] == 3 and state["data_position"] == 3 and state["rng_restored"]
    assert _equal(fresh.state_dict(), model.state_dict())


def test_bad_extra_is_refused_before_writing(tmp_path) -> None:
    model = dcp_worker.make_model(0)
    opt = dcp_worker.make_optimizer(model)
    with pytest.raises(ValueError, match="reserved"):
        dc.save_sharded_checkpoint(tmp_path, 1, model, opt, extra={"step": 3}, keep=1)
    with pytest.raises(TypeError, match="JSON-serializable"):
        dc.save_sharded_checkpoint(tmp_path, 1, model, opt, extra={"position": object()}, keep=1)
    assert not (tmp_path / "checkpoints").exists()


@pytest.fixture
def base_dir(tmp_path) -> Path:
    """The run's "base model": a tiny Llama of the trained architecture, with the SmolLM2 tokenizer."""
    from transformers import AutoTokenizer

    from aepo_agent.models import cached_model_path

    smol = cached_model_path("smollm2-135m-instruct")
    if smol is None:
        pytest.skip("needs the SmolLM2 tokenizer in the aepo cache (scripts/setup.sh)")
    path = tmp_path / "base"
    dcp_worker.make_model(77).save_pretrained(path)
    AutoTokenizer.from_pretrained(smol).save_pretrained(path)
    return path


def _run_config(run: Path, base: Path) -> None:
    (run / "config.json").write_text(json.dumps({"run_dir": str(run), "model": {"name": str(base),
                                                                                 "dtype": "float32"}}))


def test_export_and_eval_read_the_two_rank_checkpoint(runs, base_dir, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from aepo_agent import cli
    from aepo_agent.eval.sources import load_source, pick_checkpoint

    trained = _load(runs, "a_saved.pt")["model"]
    run = runs["run"]
    _run_config(run, base_dir)
    step_dir = latest_checkpoint(run)
    assert pick_checkpoint(run, "latest") == step_dir and pick_checkpoint(run, str(step_dir)) == step_dir
    source = load_source(str(run), checkpoint=str(step_dir))
    try:
        assert source.checkpoint_label == "step_000001"
        assert _equal(source.engine.model.state_dict(), trained)
    finally:
        source.close()

    assert cli.main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0  # the run dir: its latest
    assert cli.main(["export", str(step_dir), "--out", str(tmp_path / "hf2")]) == 0
    for out in (tmp_path / "hf", tmp_path / "hf2"):
        assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
        assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
        exported = AutoModelForCausalLM.from_pretrained(out)
        assert _equal(exported.state_dict(), trained)


def test_export_of_a_torch_checkpoint_and_errors(runs, base_dir, tmp_path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    from aepo_agent import cli

    one = torch.load(runs["root"] / "one_saved.pt", weights_only=False)["model"]
    step_dir = latest_checkpoint(runs["root"] / "one_torch")
    out = dc.export_hf_model(step_dir, base_dir, tmp_path / "hf")
    assert _equal(AutoModelForCausalLM.from_pretrained(out).state_dict(), one)
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "x")]) == 2  # no checkpoint there
    assert "checkpoint" in capsys.readouterr().err
    assert cli.main(["export", str(step_dir), "--out", str(tmp_path / "y")]) == 2  # no run config: no base model
    assert "--base-model" in capsys.readouterr().err
    assert cli.main(["export", str(step_dir), "--base-model", str(base_dir), "--out", str(tmp_path / "y")]) == 0


def test_rank0_saves_the_sharded_model_as_one_hf_dir(runs) -> None:
    from transformers import AutoModelForCausalLM

    out = runs["out"] / "hf_sft"
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert _equal(AutoModelForCausalLM.from_pretrained(out).state_dict(), _load(runs, "b_step2.pt")["model"])


@pytest.fixture
def sft_config(base_dir, tmp_path) -> Any:
    """A warm-start config over a tiny Llama with the SmolLM2 vocabulary; the factory takes the run dir name."""
    import yaml
    from transformers import AutoTokenizer

    base = tmp_path / "sft_base"
    tok = AutoTokenizer.from_pretrained(base_dir)
    dcp_worker.make_model(3, vocab_size=len(tok)).save_pretrained(base)
    tok.save_pretrained(base)

    def make(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "run_dir": str(tmp_path / name), "model": {"name": str(base)},
            "env": {"id": "AEPO/CalcQA-v0", "kwargs": {"max_turns": 2, "world_kwargs": {"n_questions": 4}}},
            "train": {"prompts_per_step": 2, "tensorboard": False, "plot": False},
            "warm_start": {"sft_steps": 2, "demos": 4, "batch_size": 2, "micro_batch_size": 1, "lr": 1e-2}}))
        return path

    make.base = base  # type: ignore[attr-defined]
    return make


def test_sft_out_under_torchrun_saves_one_hf_dir(sft_config, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from aepo_agent import cli

    assert cli.main(["sft", str(sft_config("one")), "--out", str(tmp_path / "m1")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(free_port()), "-m", "aepo_agent.cli", "sft",
                           str(sft_config("two")), "--out", str(tmp_path / "m2")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("model saved to") == 1  # rank 0 alone reports
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    one = AutoModelForCausalLM.from_pretrained(tmp_path / "m1").state_dict()
    two = AutoModelForCausalLM.from_pretrained(tmp_path / "m2").state_dict()
    base = AutoModelForCausalLM.from_pretrained(sft_config.base).state_dict()
    assert one.keys() == two.keys()
    assert all(torch.allclose(one[k], two[k], atol=1e-5) for k in one)  # the gathered model is the SFT'd one
    assert not all(torch.allclose(one[k], base[k], atol=1e-3) for k in one)  # and SFT moved it


def test_saving_before_the_first_step_leaves_the_optimizer_alone(tmp_path) -> None:
    model, twin = dcp_worker.make_model(0), dcp_worker.make_model(0)
    opt, twin_opt = dcp_worker.make_optimizer(model), dcp_worker.make_optimizer(twin)
    dc.save_sharded_checkpoint(tmp_path, 0, model, opt, extra={}, keep=1)
    assert not opt.state  # DCP initialises optimizer state to save it; the live run must not see that
    dcp_worker.train_step(model, opt)
    dcp_worker.train_step(twin, twin_opt)
    assert _equal(model.state_dict(), twin.state_dict())
