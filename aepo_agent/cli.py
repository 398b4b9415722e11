"""``aepo``: train, evaluate, and fetch models.

    aepo train CONFIG.yaml [--set section.key=value ...]
    aepo eval --model MODEL --envs IDS|SUITE [--n --k --limit --output --judge ...]   (see aepo eval -h)
    aepo eval CONFIG.yaml [--set ...] [--checkpoint latest|PATH]   (an eval YAML, or a training config)
    aepo sft CONFIG.yaml --out DIR [--set ...]     (the config's warm start alone, saved as a model dir)
    aepo models fetch NAME
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    from aepo_agent.trainer import Trainer, load_config

    cfg = load_config(args.config, args.overrides)
    if args.command == "sft" and cfg.warm_start.sft_steps == 0:
        print("aepo sft: warm_start.sft_steps is 0 in this config; set it, e.g. --set warm_start.sft_steps=5",
              file=sys.stderr)
        return 2
    trainer = Trainer(cfg)
    try:
        if args.command == "sft":
            losses = trainer.warm_start()
            trainer.model.save_pretrained(args.out)
            trainer.tokenizer.save_pretrained(args.out)
            print(f"SFT loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps; model saved to {args.out}")
            return 0
        if args.command == "train":
            step = trainer.maybe_resume()
            if step:
                print(f"resuming {cfg.run_dir} from step {step}", file=sys.stderr)
            trainer.train()
            print(f"run directory: {cfg.run_dir} (metrics.jsonl, training.png, tensorboard/, checkpoints/)")
            return 0
        raise AssertionError(f"unhandled command {args.command!r}")
    finally:
        trainer.close()


if __name__ == "__main__":
    sys.exit(main())
