"""``aepo eval``: flags, an eval YAML (the same keys, ``envs:`` marks it), or a training config.

    aepo eval --model runs/quickstart --envs AEPO/CalcQA-v0,GSM8K --n 2 --limit 10
    aepo eval --model openai:http://127.0.0.1:8000/v1 --model-name Qwen3-8B --tokenizer Qwen/Qwen3-8B --envs paper
    aepo eval examples/configs/eval_quickstart.yaml [--n 3 ...]   (flags override the file)
    aepo eval examples/configs/quickstart.yaml [--set eval.n=8]   (a training config: its run, env, eval section)

Precedence of a setting: flag, then the eval YAML, then the run dir's ``eval`` section, then the papers' default
(``EvalSettings``). Without ``--output`` the directory is derived from the model and settings, so the same command
resumes the same evaluation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

_SETTING_KEYS = ("n", "k", "limit", "temperature", "top_p", "top_k", "repetition_penalty", "max_response_tokens",
                 "segment_max_tokens", "seed", "success_threshold", "tool_budgets", "tasks_per_call", "retry_errors", "env_threads")
_SOURCE_KEYS = ("model", "checkpoint", "model_name", "tokenizer", "engine", "engine_kwargs", "device", "dtype")
YAML_KEYS = frozenset(_SETTING_KEYS + _SOURCE_KEYS + ("envs", "env_kwargs", "output", "judge", "progress"))


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """The ``aepo eval`` arguments (every default None: unset flags fall through to the file and defaults)."""
    p.add_argument("config", nargs="?", help="an eval YAML (keys as the flags) or a training config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training config only: override a value, e.g. --set eval.n=8")
    src = p.add_argument_group("model")
    src.add_argument("--model", help="a run dir, a local HF dir, a model name, or openai:URL")
    src.add_argument("--checkpoint", help="run dir: latest (default), none (base weights), a step dir "
                     "(one-process or distributed) or model.pt")
    src.add_argument("--model-name", help="openai: the served model's name")
    src.add_argument("--tokenizer", help="openai: a tokenizer dir or name for the chat template")
    src.add_argument("--engine", choices=["hf", "vllm"], help="local models: hf (default) or vllm")
    src.add_argument("--engine-kwargs", type=json.loads, help="JSON object passed to the engine constructor")
    src.add_argument("--device", help="cpu (default) or cuda")
    src.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="auto: fp32 on CPU, bf16 on GPU")
    ben = p.add_argument_group("benchmarks")
    ben.add_argument("--envs", help="comma list of env ids, short names or suites "
                     "(deep_search, knowledge_qa, math, paper)")
    ben.add_argument("--env-kwargs", action="append", metavar="[ENV_ID=]JSON",
                     help="kwargs for one env (ENV_ID={...}) or all ({...}); repeatable")
    ben.add_argument("--limit", type=int, help="first N tasks per benchmark")
    st = p.add_argument_group("sampling and scoring (defaults: the papers')")
    st.add_argument("--n", type=int, help="runs per task (5)")
    st.add_argument("--k", type=lambda s: tuple(int(x) for x in s.split(",")), help="comma list (1,n)")
    st.add_argument("--temperature", type=float)
    st.add_argument("--top-p", type=float)
    st.add_argument("--top-k", type=int)
    st.add_argument("--repetition-penalty", type=float)
    st.add_argument("--max-tokens", dest="max_response_tokens", type=int, help="response budget per trajectory")
    st.add_argument("--segment-tokens", dest="segment_max_tokens", type=_int_or_none,
                    help="cap per engine call, or none")
    st.add_argument("--seed", type=int)
    st.add_argument("--success-threshold", type=float, help="env reward counted as correct without a judge (1.0)")
    st.add_argument("--tool-budgets", type=_budgets, help="python=5,search=10 (default) or env (the env's own)")
    st.add_argument("--tasks-per-call", type=int, help="tasks sampled together in one rollout call (8)")
    st.add_argument("--env-threads", type=int, help="env steps (tool calls) run in this many threads (8)")
    st.add_argument("--judge", help="openai:URL[#model]: the papers' LLM judge decides success")
    st.add_argument("--retry-errors", action="store_true", default=None, help="sample again the engine-error samples")
    out = p.add_argument_group("output")
    out.add_argument("--output", help="evaluation directory (resumed when it exists)")
    out.add_argument("--no-progress", dest="progress", action="store_false", default=None)


def _int_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "0") else int(text)


def _budgets(text: str) -> dict[str, int] | str:
    if text.lower() in ("env", "none"):
        return "env"
    try:
        return {name.strip(): int(value) for name, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"tool budgets look like python=5,search=10 or env, got {text!r}") from None


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a YAML mapping")
    return data


def eval_main(args: argparse.Namespace) -> int:
    """Run ``aepo eval``; returns the exit status."""
    from aepo_agent.eval.records import EvalConfigMismatch
    from aepo_agent.models import ModelResolutionError

    try:
        return _eval(args)
    except (EvalConfigMismatch, ModelResolutionError, ValueError, FileNotFoundError) as exc:
        print(f"aepo eval: {exc}", file=sys.stderr)
        return 2


def _eval(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if value is not None}
    file: dict[str, Any] = {}
    training = None
    if args.config:
        data = _load_yaml(args.config)
        if "envs" in data:
            unknown = sorted(set(data) - YAML_KEYS)
            if unknown:
                raise ValueError(f"unknown key(s) {unknown} in {args.config}; valid: {sorted(YAML_KEYS)}")
            file = data
        else:
            from aepo_agent.trainer import load_config

            training = load_config(args.config, args.overrides)
    elif args.overrides:
        raise ValueError("--set applies to a training config")
    merged = {**file, **{k: v for k, v in flags.items() if k not in ("config", "overrides")}}
    if training is not None:
        return _eval_training(training, merged)
    if "model" not in merged:
        raise ValueError("give --model (a run dir, HF dir, model name or openai:URL) or a config file")
    from aepo_agent.eval.sources import load_source

    specs = build_specs(merged)  # before the model loads: a bad env name fails at once
    source = load_source(str(merged["model"]), checkpoint=merged.get("checkpoint", "latest"),
                         engine=merged.get("engine", "hf"), model_name=merged.get("model_name"),
                         tokenizer=merged.get("tokenizer"), device=merged.get("device", "cpu"),
                         dtype=merged.get("dtype", "auto"), seed=int(merged.get("seed", 0)),
                         engine_kwargs=merged.get("engine_kwargs"))
    try:
        settings = build_settings(source.defaults, merged)
        output = _output_dir(merged, source, specs, settings)
        report = _run(source.engine, source.tokenizer, specs, settings, merged, output, source.label)
    finally:
        source.close()
    print(f"aepo eval: {report.sampled} new samples; results in {output}", file=sys.stderr)
    print((output / "summary.md").read_text(encoding="utf-8"))
    return 0


def _run(engine: Any, tokenizer: Any, specs: list, settings: Any, merged: dict[str, Any], output: Path,
         label: str, on_rows: Any = None) -> Any:
    from aepo_agent.eval.runner import run_eval

    return run_eval(engine, tokenizer, specs, settings, output_dir=output, judge=merged.get("judge"),
                    progress=merged.get("progress", True), model_label=label, on_rows=on_rows)


def build_settings(defaults: dict[str, Any], merged: dict[str, Any]) -> Any:
    """EvalSettings from the run's defaults and the file/flag values. An inherited k is cut to the chosen n."""
    from aepo_agent.eval.settings import EvalSettings

    values = {**defaults, **{key: merged[key] for key in _SETTING_KEYS if key in merged}}
    if values.get("tool_budgets") == "env":
        values["tool_budgets"] = None
    if "k" not in merged:
        n = int(values.get("n", EvalSettings.n))
        inherited = values.get("k", EvalSettings.k)
        values["k"] = tuple(sorted({k for k in inherited if k <= n} | {1, n}))
    if "k" in values:
        values["k"] = tuple(values["k"])
    return EvalSettings(**values)


def build_specs(merged: dict[str, Any]) -> list:
    """The benchmarks of ``envs`` (ids, short names, suites; in a file also {env_id, env_kwargs,
    success_threshold} mappings) with ``env_kwargs`` (a mapping by env id, or ID=JSON / JSON flag entries)."""
    from aepo_agent.eval.settings import BenchmarkSpec
    from aepo_agent.eval.suites import resolve_envs

    entries = merged.get("envs")
    if not entries:
        raise ValueError("give --envs (env ids, short names or suites: deep_search, knowledge_qa, math, paper)")
    if isinstance(entries, str):
        entries = entries.split(",")
    extra = _env_kwargs(merged.get("env_kwargs"))
    specs: list = []
    for entry in entries:
        if isinstance(entry, dict):
            (env_id,) = resolve_envs([entry["env_id"]])
            kwargs = {**extra.get("*", {}), **extra.get(env_id, {}), **entry.get("env_kwargs", {})}
            specs.append(BenchmarkSpec(env_id, kwargs, entry.get("success_threshold")))
            continue
        for env_id in resolve_envs([str(entry)]):
            specs.append(BenchmarkSpec(env_id, {**extra.get("*", {}), **extra.get(env_id, {})}))
    return specs


def _env_kwargs(value: Any) -> dict[str, dict[str, Any]]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {key: dict(val) for key, val in value.items()}
    out: dict[str, dict[str, Any]] = {}
    for item in value:
        key, sep, text = item.partition("=") if not item.lstrip().startswith("{") else ("*", "=", item)
        if not sep:
            raise ValueError(f"--env-kwargs looks like ENV_ID={{...}} or {{...}}, got {item!r}")
        out.setdefault(key.strip(), {}).update(json.loads(text))
    return out


def _output_dir(merged: dict[str, Any], source: Any, specs: list, settings: Any) -> Path:
    from aepo_agent.eval.settings import eval_identity, identity_hash

    if merged.get("output"):
        return Path(merged["output"])
    digest = identity_hash(eval_identity(source.label, specs, settings, merged.get("judge")))
    if source.run_dir is not None:
        return Path(source.run_dir) / "eval" / f"{source.checkpoint_label}-{digest}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.label.rstrip("/").rsplit("/", 1)[-1])[-60:]
    return Path("evals") / f"{slug}-{digest}"


def _eval_training(cfg: Any, merged: dict[str, Any]) -> int:
    """A training config: its run's checkpoint through its own model/engine builders, its env, its eval section;
    prints the legacy JSON summary (with the engine/model log-prob gap) last on stdout."""
    from aepo_agent.eval.gap import GapProbe
    from aepo_agent.eval.settings import BenchmarkSpec
    from aepo_agent.eval.sources import ModelSource, checkpoint_label, load_weights, pick_checkpoint
    from aepo_agent.eval.trainer_eval import legacy_summary, settings_from_config
    from aepo_agent.trainer import trainer as trainer_module

    model, tok = trainer_module.load_policy(cfg)
    run_dir = Path(cfg.run_dir)
    weights = pick_checkpoint(run_dir, merged.get("checkpoint", "latest"))
    if weights is not None:
        load_weights(weights, model)
    engine = trainer_module.build_engine(cfg, model, tok)
    shares = bool(getattr(engine, "shares_weights", False)) and getattr(engine, "model", None) is model
    if not shares:
        engine.update_weights(model.named_parameters())  # an engine with its own weights must score the checkpoint
    ckpt_label = checkpoint_label(weights)
    label = f"run:{run_dir.resolve()}@{ckpt_label}"
    base = settings_from_config(cfg).identity()
    settings = build_settings({**base, "k": tuple(base["k"])}, merged)
    specs = build_specs(merged) if merged.get("envs") else [BenchmarkSpec(cfg.env.id, dict(cfg.env.kwargs))]
    source = ModelSource(engine, tok, label, run_dir=run_dir, checkpoint_label=ckpt_label)
    output = _output_dir(merged, source, specs, settings)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    probe = GapProbe(model, pad, temperature=settings.temperature, micro_batch=cfg.train.micro_batch_size)
    try:
        report = _run(engine, tok, specs, settings, merged, output, label, on_rows=probe)
    finally:
        if not shares:
            engine.close()
    print(f"aepo eval: {report.sampled} new samples; results in {output}", file=sys.stderr)
    print((output / "summary.md").read_text(encoding="utf-8"), file=sys.stderr)
    if len(report.benchmarks) == 1:
        print(json.dumps(legacy_summary(report, probe.metrics()), indent=2))
    else:
        print(json.dumps(report.metrics("eval/"), indent=2))
    return 0
