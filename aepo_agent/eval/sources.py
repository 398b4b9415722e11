"""Model sources of ``aepo eval``: a local HF dir or model name, a training run dir (+ checkpoint), an endpoint.

- a training run dir (its ``config.json`` is the trainer's): the model named by ``model.name``, with the weights of
  ``checkpoints/latest.json`` (or ``checkpoint``: a step dir, one-process or distributed (DCP), a ``model.pt``, or
  ``none`` for the base weights);
  its ``eval`` section supplies the defaults of the settings;
- a local HF dir or a model name (``aepo_agent.models.resolve_model``);
- ``openai:URL``: an OpenAI-compatible endpoint serving ``model_name``; ``tokenizer`` (a dir or name) renders
  the chat template and counts tokens.
Local models run on the HF engine (default) or vLLM.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ModelSource:
    """A ready engine, its tokenizer, a label naming the model, settings defaults, and how to release it."""

    engine: Any
    tokenizer: Any
    label: str
    defaults: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    checkpoint_label: str | None = None
    close: Callable[[], None] = lambda: None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a training run directory (the trainer's config.json, not a HF model config)."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return (path / "checkpoints").is_dir()
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("model"), dict) and "run_dir" in data


def pick_checkpoint(run_dir: Path, checkpoint: str) -> Path | None:
    """The weights to load: ``latest`` (None when the run has none), ``none``, a step dir or a file. A one-process
    step dir gives its ``model.pt``, a distributed one (DCP shards) the dir itself; ``load_weights`` reads both."""
    from aepo_agent.trainer.checkpoint import checkpoint_format, latest_checkpoint

    if checkpoint == "none":
        return None
    if checkpoint == "latest":
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            print(f"aepo eval: {run_dir} has no checkpoint yet; evaluating the base weights", file=sys.stderr)
            return None
        return ckpt if checkpoint_format(ckpt) == "dcp" else ckpt / "model.pt"
    path = Path(checkpoint)
    try:
        fmt = checkpoint_format(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {checkpoint!r}: no model.pt or distributed checkpoint there (use latest, "
                                "none, a step dir or a file)") from None
    return path if fmt == "dcp" or path.is_file() else path / "model.pt"


def checkpoint_label(weights: Path | None) -> str:
    """The step dir's name of ``pick_checkpoint``'s result (``base`` for None), naming the evaluated weights."""
    if weights is None:
        return "base"
    return weights.name if weights.is_dir() else weights.parent.name


def load_weights(weights: Path, module: Any) -> None:
    """Load checkpoint weights of either format into a one-process module."""
    from aepo_agent.trainer.dist_checkpoint import load_model_weights

    load_model_weights(weights, module)


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_source(model: str, *, checkpoint: str = "latest", engine: str = "hf", model_name: str | None = None,
                tokenizer: str | None = None, device: str = "cpu", dtype: str = "auto", seed: int = 0,
                engine_kwargs: dict[str, Any] | None = None) -> ModelSource:
    """Build the engine for ``model`` (see the module docstring)."""
    kwargs = dict(engine_kwargs or {})
    if model.startswith("openai:"):
        return _endpoint(model.removeprefix("openai:"), model_name, tokenizer, kwargs)
    path = Path(model).expanduser()
    if path.is_dir() and is_run_dir(path):
        return _run_dir(path, checkpoint, engine, device, dtype, seed, kwargs)
    return _local(model, engine, device, dtype, seed, kwargs)


def _endpoint(url: str, model_name: str | None, tokenizer: str | None, kwargs: dict[str, Any]) -> ModelSource:
    if not model_name or not tokenizer:
        raise ValueError("an openai:URL model needs --model-name (the served model) and --tokenizer (a dir or name "
                         "whose chat template renders the prompts)")
    from transformers import AutoTokenizer

    from aepo_agent.engines.openai_engine import OpenAIEngine  # lazily: an optional engine
    from aepo_agent.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
    eng = OpenAIEngine(url, model_name, tok, **kwargs)
    return ModelSource(eng, tok, f"openai:{url}#{model_name}", close=eng.close)


def _hf_or_vllm(model_dir: Path, module: Any | None, tok: Any, engine: str, device: str, dtype: str, seed: int,
                kwargs: dict[str, Any]) -> Any:
    """The engine on ``module`` (HF) or on ``model_dir`` with ``module``'s weights sent to it (vLLM)."""
    if engine == "hf":
        from aepo_agent.engines.hf_engine import HFEngine

        return HFEngine(module, tokenizer=tok, device=device, **kwargs)
    if engine != "vllm":
        raise ValueError(f"--engine must be hf or vllm, got {engine!r}")
    from aepo_agent.engines.vllm_engine import VLLMEngine

    eng = VLLMEngine(str(model_dir), dtype=dtype, seed=seed, **kwargs)
    if module is not None:
        eng.update_weights(module.named_parameters())
    return eng


def _load_hf(model_dir: Path, device: str, dtype: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    module = AutoModelForCausalLM.from_pretrained(model_dir, dtype=_dtype(dtype, device)).to(device).eval()
    return module, tok


def _local(model: str, engine: str, device: str, dtype: str, seed: int, kwargs: dict[str, Any]) -> ModelSource:
    from aepo_agent.models import resolve_model

    model_dir = resolve_model(model)
    if engine == "vllm":
        from transformers import AutoTokenizer

        eng = _hf_or_vllm(model_dir, None, None, engine, device, dtype, seed, kwargs)
        return ModelSource(eng, AutoTokenizer.from_pretrained(model_dir), f"{model_dir}", close=eng.close)
    module, tok = _load_hf(model_dir, device, dtype)
    eng = _hf_or_vllm(model_dir, module, tok, engine, device, dtype, seed, kwargs)
    return ModelSource(eng, tok, str(model_dir), close=eng.close)


def _run_dir(run_dir: Path, checkpoint: str, engine: str, device: str, dtype: str, seed: int,
             kwargs: dict[str, Any]) -> ModelSource:
    from aepo_agent.models import resolve_model

    cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8")) if (run_dir / "config.json").is_file() else {}
    model_cfg = cfg.get("model", {})
    model_dir = resolve_model(model_cfg.get("name", "smollm2-135m-instruct"))
    dtype = model_cfg.get("dtype", dtype) if dtype == "auto" else dtype
    module, tok = _load_hf(model_dir, device, dtype)
    weights = pick_checkpoint(run_dir, checkpoint)
    if weights is not None:
        load_weights(weights, module)
    ckpt_label = checkpoint_label(weights)
    eng = _hf_or_vllm(model_dir, module, tok, engine, device, dtype, seed, kwargs)
    return ModelSource(eng, tok, f"run:{run_dir.resolve()}@{ckpt_label}", defaults=run_eval_defaults(cfg),
                       run_dir=run_dir, checkpoint_label=ckpt_label, close=eng.close)


def run_eval_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """Settings defaults from a run's config: its ``eval`` section (what the run was sized for) and seed."""
    ev = dict(cfg.get("eval") or {})
    keys = ("n", "k", "limit", "temperature", "top_p", "top_k", "max_response_tokens", "success_threshold",
            "repetition_penalty")
    out = {key: ev[key] for key in keys if key in ev}
    if "k" in out:
        out["k"] = tuple(out["k"])
    segment = (cfg.get("rollout") or {}).get("segment_max_tokens")
    out["segment_max_tokens"] = segment
    if "seed" in cfg:
        out["seed"] = cfg["seed"]
    return out
