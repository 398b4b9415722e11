"""``aepo``: train, evaluate, and fetch models.

    aepo train CONFIG.yaml [--set section.key=value ...]
    aepo eval --model MODEL --envs IDS|SUITE [--n --k --limit --output --judge ...]   (see aepo eval -h)
    aepo eval CONFIG.yaml [--set ...] [--checkpoint latest|PATH]   (an eval YAML, or a training config)
    aepo sft CONFIG.yaml --out DIR [--set ...]     (the config's warm start alone, saved as a model dir)
    aepo export RUN_DIR|STEP_DIR --out DIR [--base-model NAME]   (a checkpoint as a plain HF model dir)
    aepo models fetch NAME
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aepo", description="AEPO/ARPO training of tool-using LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "train a policy"),
                            ("sft", "run the config's warm start (cold-start SFT) and save the model")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config", help="YAML config (see examples/configs/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.steps=3")
        if name == "sft":
            p.add_argument("--out", required=True, help="directory for the fine-tuned model (usable as model.name)")
    from aepo_agent.eval.cli import add_eval_arguments

    add_eval_arguments(sub.add_parser("eval", help="evaluate a model or endpoint on benchmarks (Pass@k, tables)"))
    export = sub.add_parser("export", help="write a checkpoint (one-process or distributed) as a plain HF model dir")
    export.add_argument("checkpoint", help="a run dir (its latest checkpoint), a step dir or a model.pt")
    export.add_argument("--out", required=True, help="the HF model directory to write")
    export.add_argument("--base-model", help="the architecture and tokenizer (default: the run's model.name)")
    models = sub.add_parser("models", help="model cache")
    models.add_argument("action", choices=["fetch"])
    models.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "models":
        from aepo_agent.models import fetch_model

        print(fetch_model(args.name))
        return 0
    if args.command == "eval":
        from aepo_agent.eval.cli import eval_main

        return eval_main(args)
    if args.command == "export":
        return _export(args.checkpoint, args.out, args.base_model)
    from aepo_agent.trainer import Trainer, load_config

    cfg = load_config(args.config, args.overrides)
    if args.command == "sft" and cfg.warm_start.sft_steps == 0:
        print("aepo sft: warm_start.sft_steps is 0 in this config; set it, e.g. --set warm_start.sft_steps=5",
              file=sys.stderr)
        return 2
    trainer = Trainer(cfg)
    try:
        if args.command == "sft":
            from aepo_agent.trainer.dist_checkpoint import is_main_process, save_hf_model

            losses = trainer.warm_start()
            save_hf_model(trainer.model, trainer.tokenizer, Path(args.out))  # under torchrun: gathered, rank 0 writes
            if is_main_process():
                print(f"SFT loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps; "
                      f"model saved to {args.out}")
            return 0
        if args.command == "train":
            from aepo_agent.trainer.distributed import record_errors

            # Under torchrun @record hands the failing rank's traceback to torchrun's report.
            return (record_errors(_train) if trainer.dist else _train)(trainer)
        raise AssertionError(f"unhandled command {args.command!r}")
    finally:
        trainer.close()


def _train(trainer) -> int:
    """``aepo train``: resume from the run dir's last checkpoint, train; under torchrun rank 0 alone prints."""
    cfg = trainer.cfg
    step = trainer.maybe_resume()
    if step and trainer.is_main:
        print(f"resuming {cfg.run_dir} from step {step}", file=sys.stderr)
    trainer.train()
    if trainer.is_main:
        print(f"run directory: {cfg.run_dir} (metrics.jsonl, training.png, tensorboard/, checkpoints/)")
    return 0


def _export(checkpoint: str, out: str, base_model: str | None) -> int:
    """``aepo export``: the checkpoint (a run dir's latest, a step dir or a weights file) as an HF dir."""
    import json

    from aepo_agent.eval.sources import is_run_dir
    from aepo_agent.models import ModelResolutionError
    from aepo_agent.trainer.checkpoint import checkpoint_format, latest_checkpoint
    from aepo_agent.trainer.dist_checkpoint import export_hf_model

    path = Path(checkpoint)
    try:
        if path.is_dir() and is_run_dir(path):
            run_dir, step_dir = path, latest_checkpoint(path)
            if step_dir is None:
                raise FileNotFoundError(f"{path} has no checkpoint yet (checkpoints/latest.json)")
        else:
            step_dir = path
            checkpoint_format(path)  # a clear error when it is no checkpoint
            run_dir = (path.parent if path.is_file() else path).parent.parent
        if base_model is None:
            config = run_dir / "config.json"
            saved = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
            base_model = (saved.get("model") or {}).get("name")
            if not base_model:
                raise ValueError(f"no run config naming model.name at {config}: give --base-model NAME_OR_DIR "
                                 "(the model the run started from)")
        written = export_hf_model(step_dir, base_model, Path(out))
    except (FileNotFoundError, ValueError, ModelResolutionError) as exc:
        print(f"aepo export: {exc}", file=sys.stderr)
        return 2
    print(f"aepo export: {step_dir} -> {written} (an HF model dir: from_pretrained, vLLM, model.name)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
