"""``aepo eval``: a training config (the old path, now on run_eval), flags on a saved model dir, eval YAMLs,
and the real SmolLM2 on two tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from eval_toys import TOY_ID, ScriptedEngine

from aepo_agent import cli
from aepo_agent.eval.cli import YAML_KEYS, build_settings, build_specs

REPO = Path(__file__).resolve().parents[2]
torch = pytest.importorskip("torch")


class SyncedScripted(ScriptedEngine):
    """A scripted engine with its own weights: records what it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.synced: list[dict] = []

    def update_weights(self, named_tensors) -> None:
        self.synced.append({name: t.detach().clone() for name, t in named_tensors})


def _training_config(tmp_path: Path) -> Path:
    data = {"run_dir": str(tmp_path / "run"), "env": {"id": TOY_ID},
            "eval": {"n": 2, "k": [1, 2], "limit": 3, "max_response_tokens": 64}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_aepo_eval_training_config_scores_the_checkpoint(tmp_path, monkeypatch, capsys, tiny_llama) -> None:
    from char_tokenizer import CharTokenizer

    from aepo_agent.trainer import trainer as trainer_module
    from aepo_agent.trainer.checkpoint import save_checkpoint

    path = _training_config(tmp_path)
    trained = tiny_llama()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)
    save_checkpoint(tmp_path / "run", 1, trained, torch.optim.AdamW(trained.parameters()))
    engine = SyncedScripted()
    monkeypatch.setattr(trainer_module, "load_policy", lambda cfg: (tiny_llama(), CharTokenizer()))
    monkeypatch.setattr(trainer_module, "build_engine", lambda cfg, model, tok: engine)
    assert cli.main(["eval", str(path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex('{\n  "tasks"'):])
    assert summary["tasks"] == 3 and summary["n"] == 2 and summary["pass@1"] == 1.0 and "pass@2" in summary
    assert "eval/rollout_logprob_diff_mean" in summary
    assert all(torch.equal(engine.synced[-1][k], v) for k, v in trained.state_dict().items() if k in engine.synced[-1])
    (evaldir,) = (tmp_path / "run" / "eval").iterdir()
    assert evaldir.name.startswith("step_000001-") and (evaldir / "summary.md").is_file()
    calls = engine.calls
    assert cli.main(["eval", str(path)]) == 0  # the same command again: resumed, nothing sampled
    assert engine.calls == calls
    assert cli.main(["eval", str(path), "--set", "eval.n=3", "--set", "eval.k=[1,3]"]) == 0  # another dir
    assert len(list((tmp_path / "run" / "eval").iterdir())) == 2


def _tiny_model_dir(tmp_path: Path, tiny_llama) -> Path:
    from transformers import AutoTokenizer

    from aepo_agent.models import cached_model_path

    smol = cached_model_path("smollm2-135m-instruct")
    if smol is None:
        pytest.skip("needs the SmolLM2 tokenizer in the aepo cache")
    tok = AutoTokenizer.from_pretrained(smol)
    model_dir = tmp_path / "tiny"
    tiny_llama(vocab_size=len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return model_dir


def test_flags_on_a_saved_model_dir_resume_and_refuse(tmp_path, tiny_llama, capsys) -> None:
    model_dir = _tiny_model_dir(tmp_path, tiny_llama)
    out = tmp_path / "ev"
    args = ["eval", "--model", str(model_dir), "--envs", TOY_ID, "--n", "2", "--limit", "2", "--max-tokens", "8",
            "--output", str(out), "--no-progress", "--tool-budgets", "env"]
    assert cli.main(args) == 0
    printed = capsys.readouterr()
    assert "| Toy | 2 | 4 |" in printed.out and "4 new samples" in printed.err
    identity = json.loads((out / "eval_config.json").read_text())["identity"]
    assert identity["settings"]["n"] == 2 and identity["settings"]["k"] == [1, 2]  # k defaults to (1, n)
    assert identity["settings"]["temperature"] == 0.6 and identity["settings"]["repetition_penalty"] == 1.1
    assert cli.main(args) == 0
    assert "0 new samples" in capsys.readouterr().err
    assert cli.main([*args, "--temperature", "1.0"]) == 2
    assert "settings.temperature: stored 0.6, now 1.0" in capsys.readouterr().err


def test_a_run_dir_as_model_brings_its_eval_defaults(tmp_path, tiny_llama, capsys) -> None:
    from aepo_agent.eval.sources import is_run_dir, run_eval_defaults

    model_dir = _tiny_model_dir(tmp_path, tiny_llama)
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"run_dir": str(run), "seed": 3, "model": {"name": str(model_dir), "dtype": "float32"},
           "rollout": {"segment_max_tokens": None}, "eval": {"n": 4, "k": [1, 4], "limit": 1, "max_response_tokens": 8}}
    (run / "config.json").write_text(json.dumps(cfg))
    assert is_run_dir(run) and not is_run_dir(model_dir)
    assert run_eval_defaults(cfg)["seed"] == 3
    assert cli.main(["eval", "--model", str(run), "--envs", TOY_ID, "--n", "2", "--no-progress",
                     "--checkpoint", "none"]) == 0
    (evaldir,) = (run / "eval").iterdir()
    identity = json.loads((evaldir / "eval_config.json").read_text())["identity"]
    assert identity["settings"]["n"] == 2 and identity["settings"]["k"] == [1, 2]  # the run's k cut to --n
    assert identity["settings"]["limit"] == 1 and identity["settings"]["max_response_tokens"] == 8
    assert identity["model"].endswith("@base")
    capsys.readouterr()


@pytest.mark.parametrize("path", sorted((REPO / "examples" / "configs").glob("eval_*.yaml")), ids=lambda p: p.name)
def test_example_eval_configs_validate(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert "envs" in data and set(data) <= YAML_KEYS
    specs = build_specs(data)
    assert specs and all(s.env_id.startswith("AEPO/") for s in specs)
    build_settings({}, data)


def test_suites_and_short_names() -> None:
    from aepo_agent.eval import SUITES, resolve_envs

    assert resolve_envs(["paper"]) == list(SUITES["paper"]) and len(SUITES["paper"]) == 12
    assert resolve_envs(["gsm8k", "AEPO/GSM8K-v0", "math"])[:2] == ["AEPO/GSM8K-v0", "AEPO/AIME24-v0"]
    with pytest.raises(ValueError, match="unknown env or suite 'NoSuch'"):
        resolve_envs(["NoSuch"])
    assert cli.main(["eval", "--model", "x", "--envs", "NoSuch", "--output", "/nonexistent"]) == 2


def test_real_smollm_through_the_cli_on_two_tasks(tmp_path, smollm, capsys) -> None:
    out = tmp_path / "ev"
    args = ["eval", "--model", "smollm2-135m-instruct", "--envs", "AEPO/CalcQA-v0", "--n", "2", "--limit", "2",
            "--max-tokens", "48", "--output", str(out), "--no-progress"]
    assert cli.main(args) == 0
    lines = (out / "records" / "AEPO_CalcQA-v0.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4 and len({(r["task_id"], r["run"]) for r in records}) == 4
    assert all(r["tokens"]["generated"] > 0 and r["error"] is None for r in records)
    assert (out / "summary.csv").is_file() and (out / "pass_at_k.png").is_file()
    assert cli.main(args) == 0
    assert "0 new samples" in capsys.readouterr().err
