"""The training config: YAML validated into typed sections, with ``a.b=value`` overrides from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aepo_agent.rollout.config import RolloutConfig
from aepo_envs.envs.config import apply_overrides


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    name: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"
    gradient_checkpointing: bool = False


class EngineSection(_Section):
    kind: Literal["hf", "vllm"] = "hf"
    max_batch: int = 64
    reuse_kv: bool = True  # hf: keep each sequence's KV between rollout rounds (memory: one round's contexts)
    # hf, rollout.schedule continuous: an engine call ends once this share of its rows ended
    stream_exit_fraction: float = Field(0.5, gt=0, le=1)
    vllm_kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvWorkersSection(_Section):
    """Where the rollout's envs run: in this process (local) or in Ray actors (ray), behind the same env contract."""

    backend: Literal["local", "ray"] = "local"
    num_workers: int = Field(4, ge=1, description="ray: actors; root envs (one per prompt) are spread over them, "
                             "a clone stays on its source's actor")
    address: str = Field("local", pattern=r"^(local|auto|ray://.+)$",
                         description="ray: local (start Ray here), auto (join the running cluster) or ray://host:port; "
                         "a Ray already initialised in the process is used as is")
    max_concurrency: int = Field(32, ge=1, description="ray: env calls one actor runs at once (threads)")
    max_restarts: int = Field(3, ge=0, description="ray: restarts of a dead actor; its envs are rebuilt by replay")
    num_cpus: float | None = Field(None, ge=0, description="ray: CPUs reserved per actor (None: Ray's actor default)")

    @model_validator(mode="after")
    def _ray_installed(self) -> EnvWorkersSection:
        import importlib.util

        if self.backend == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("env.workers.backend: ray needs Ray: pip install 'aepo[distributed]'")
        return self


class EnvSection(_Section):
    id: str = "AEPO/CalcQA-v0"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    workers: EnvWorkersSection = Field(default_factory=EnvWorkersSection)


class AlgoSection(_Section):
    advantage: Literal["grpo", "reinforce_pp", "reinforce_pp_baseline"] = "grpo"
    norm_by_std: bool = True
    attribution: Literal["soft", "hard"] = "soft"
    entropy_advantage: bool = True  # AEPO entropy-aware advantage (computed for real, Appendix C.2)
    entropy_advantage_coef: float = 0.2
    entropy_stats: Literal["batch", "group", "micro_batch"] = "micro_batch"
    loss: Literal["ppo", "grpo", "dapo", "gppo", "cispo", "aepo"] = "aepo"
    clip_low: float = 0.2
    clip_high: float | None = 0.2
    dual_clip_c: float | None = 3.0
    agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm",
                 "seq-mean-token-sum-norm-rows"] = Field(
        "token-mean",
        description="seq-mean-token-sum-norm: verl/released, token sums / the padded response length "
        "(rollout.max_response_tokens); -rows: Dr. GRPO, also divided by the rows",
    )
    log_ratio_clamp: float | None = Field(
        20.0, gt=0, description="clamp of log(pi/pi_old) (and of the KL log-ratio) before exp; None = released"
    )
    reinforce_reset_at_masked: bool = Field(
        False, description="REINFORCE++ returns restart at tool-result tokens (verl's loop over the loss mask)"
    )
    cispo_eps_high: float = 4.0
    kl_coef: float = 0.0
    kl_kind: Literal["low_var_kl", "k1", "k2", "k3"] = "low_var_kl"
    dynamic_sampling: bool = False
    overlong_cache_tokens: int = 0  # DAPO overlong shaping buffer; 0 disables


class TrainSection(_Section):
    steps: int = 10
    prompts_per_step: int = 2
    mini_batch_prompts: int = 1
    micro_batch_size: int = 4
    ppo_epochs: int = 1
    micro_batch_weighting: Literal["mini_batch", "released"] = Field(
        "mini_batch",
        description="mini_batch: one denominator over the mini-batch (its token count for token-mean); released: "
        "each micro-batch's own mean, scaled by its rows / the mini-batch's rows (verl dp_actor)",
    )
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # Rows whose advantage is 0 on every token (a group with equal rewards) add exactly nothing to a
    # policy-gradient loss: skip their forward/backward (not with a KL term, which they still feed).
    skip_zero_advantage: bool = True
    save_every: int = 5
    keep_checkpoints: int = 2
    data_shuffle: bool = True
    tensorboard: bool = True
    plot: bool = True
    collective_timeout_s: float = Field(
        1800.0, gt=0, description="under torchrun: a collective waiting longer fails the job (a rank stuck in a "
        "rollout, a dead peer) instead of hanging; above the slowest rank's rollout of a step")


class WarmStartSection(_Section):
    """Cold-start SFT on oracle demonstrations of the env's world before RL (off when ``sft_steps`` is 0)."""

    sft_steps: int = Field(default=0, ge=0)
    demos: int = Field(default=64, ge=1)  # oracle episodes played for the demonstration set
    lr: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    micro_batch_size: int = Field(default=4, ge=1)
    # Merged over env.kwargs for the demonstration env; the default world seed keeps RL's tasks unseen.
    env_kwargs: dict[str, Any] = Field(default_factory=lambda: {"world_kwargs": {"seed": 1}})


class EvalSection(_Section):
    """`aepo eval CONFIG` settings, and the held-out evaluation during training (``every`` > 0)."""

    every: int = Field(0, ge=0, description="held-out eval every k RL steps, also before the first and after the "
                       "last (0 = off); logged as heldout/* in metrics.jsonl, heldout.jsonl, TensorBoard, the plot")
    held_out_env_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"world_kwargs": {"seed": 2}},
        description="merged over env.kwargs for the held-out tasks: another world seed than training (0) and the "
        "warm start's demonstrations (1), so the tasks are unseen",
    )
    held_out_limit: int = Field(8, ge=1, description="held-out tasks per evaluation")
    n: int = 4
    k: list[int] = Field(default_factory=lambda: [1, 4])
    limit: int | None = 20
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    max_response_tokens: int = 512
    success_threshold: float = 1.0
    output: str = "eval.jsonl"

    @model_validator(mode="after")
    def _k_within_n(self) -> EvalSection:
        if not self.k or min(self.k) < 1 or max(self.k) > self.n:
            raise ValueError(f"eval.k values must be in [1, eval.n={self.n}], got {self.k}")
        return self


class TrainConfig(_Section):
    """The whole run; ``run_dir`` holds checkpoints, logs, plots."""

    run_dir: str = "runs/default"
    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    engine: EngineSection = Field(default_factory=EngineSection)
    env: EnvSection = Field(default_factory=EnvSection)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algo: AlgoSection = Field(default_factory=AlgoSection)
    train: TrainSection = Field(default_factory=TrainSection)
    warm_start: WarmStartSection = Field(default_factory=WarmStartSection)
    eval: EvalSection = Field(default_factory=EvalSection)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.train.prompts_per_step % self.train.mini_batch_prompts:
            raise ValueError("train.prompts_per_step must be a multiple of train.mini_batch_prompts")
        if self.rollout.seed is not None:
            raise ValueError("rollout.seed is derived per step from the run's seed; set the top-level seed instead")
        return self


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply overrides, and validate. Errors name the bad key."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must contain a YAML mapping")
    data = apply_overrides(data, overrides or [])
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid training config{f' {path}' if path else ''}:\n{exc}") from None
