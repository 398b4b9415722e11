"""The trainer: rollout → rewards → advantages → mini-batch policy updates, with exact resume. One process, or
data-parallel under torchrun with FSDP2 (``distributed``: K ranks take the step one process takes)."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import aepo_envs  # noqa: F401  (registers the env ids)
from aepo_agent.algos import dynamic_sampling_filter, entropy_aware_advantages, policy_loss
from aepo_agent.engines.base import Engine
from aepo_agent.rollout import RolloutResult, RolloutRow, TreeRollout
from aepo_agent.rollout.env_workers import make_envs, worker_metrics
from aepo_agent.trainer.batch import (
    LogprobGap,
    collate,
    policy_logprobs,
    sequence_rewards,
    token_advantages,
)
from aepo_agent.trainer.checkpoint import (
    checkpoint_format,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from aepo_agent.trainer.config import TrainConfig
from aepo_agent.trainer.distributed import (
    DistContext,
    GenerationCopy,
    QuietLogger,
    as_float,
    check_divisible,
    combine_mini_batches,
    full_named_parameters,
    full_state_dict,
    init_distributed,
    load_full_state_dict,
    mean_gradients,
    merge_rollouts,
    quiet_libraries,
    reshard,
    shard_model,
)
from aepo_agent.trainer.optim import make_optimizer
from aepo_agent.trainer.run_log import RunLogger, plot_run
from aepo_envs.contract import env_tasks
from aepo_envs.envs.config import deep_merge

REFERENCE_FILE = "reference.pt"  # the KL reference weights when a warm start changed them
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_policy(cfg: TrainConfig) -> tuple[torch.nn.Module, Any]:
    """The trainable model and its tokenizer, resolved from the config's model name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aepo_agent.models import resolve_model

    path = resolve_model(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_DTYPES[cfg.model.dtype])
    model.to(cfg.model.device)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, tokenizer


def build_engine(cfg: TrainConfig, model: torch.nn.Module, tokenizer: Any) -> Engine:
    """The rollout engine; the HF engine runs ``model`` (the trainer's module on one device, so no weight sync)."""
    if cfg.engine.kind == "hf":
        from aepo_agent.engines.hf_engine import HFEngine

        return HFEngine(model, tokenizer=tokenizer, device=cfg.model.device, max_batch=cfg.engine.max_batch,
                        reuse_kv=cfg.engine.reuse_kv, stream_exit_fraction=cfg.engine.stream_exit_fraction)
    from aepo_agent.engines.vllm_engine import VLLMEngine
    from aepo_agent.models import resolve_model

    # vLLM's "auto" dtype is the checkpoint's (bf16 for SmolLM2): sample in the trainer's dtype unless told otherwise.
    kwargs = {"dtype": cfg.model.dtype, "seed": cfg.seed, **cfg.engine.vllm_kwargs}
    return VLLMEngine(str(resolve_model(cfg.model.name)), **kwargs)


class DataOrder:
    """The task order: a seeded permutation per epoch, so step k always sees the same prompts (exact resume)."""

    def __init__(self, task_ids: Sequence[str], seed: int, shuffle: bool):
        self.task_ids = list(task_ids)
        self.seed = seed
        self.shuffle = shuffle

    def batch(self, step: int, size: int) -> list[str]:
        out = []
        for pos in range(step * size, (step + 1) * size):
            epoch, idx = divmod(pos, len(self.task_ids))
            order = list(range(len(self.task_ids)))
            if self.shuffle:
                random.Random(self.seed * 7919 + epoch).shuffle(order)
            out.append(self.task_ids[order[idx]])
        return out


class Trainer:
    """AEPO / ARPO / GRPO-family training of a causal LM against an aepo_envs env."""

    def __init__(self, cfg: TrainConfig, *, model: torch.nn.Module | None = None, tokenizer: Any = None,
                 engine: Engine | None = None):
        # Under torchrun: this rank's process group and device; None is the one-process path.
        self.dist: DistContext | None = init_distributed(cfg.model.device, cfg.train.collective_timeout_s)
        if self.dist is not None:
            check_divisible(cfg.train.prompts_per_step, self.dist.world)
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": str(self.dist.device)})})
        self.cfg = cfg
        self.is_main = self.dist is None or self.dist.is_main
        if not self.is_main:
            quiet_libraries()
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)
        if model is None:
            model, tokenizer = load_policy(cfg)
        self.model, self.tokenizer = model, tokenizer
        self._ref_model: torch.nn.Module | None = None
        if cfg.algo.kl_coef:  # the reference policy is the one RL starts from (after any warm start), frozen
            import copy

            self._ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self._gen: GenerationCopy | None = None  # the HF engine's unsharded copy, under torchrun
        if self.dist is not None:
            self._shard(engine)
        self.engine = engine or build_engine(self._engine_config(), self._gen.module if self._gen else self.model,
                                             tokenizer)
        self.optimizer = make_optimizer([p for p in self.model.parameters() if p.requires_grad], cfg.train.lr,
                                        cfg.train.weight_decay)
        world = self.dist.world if self.dist else 1
        self.envs = make_envs(cfg.env, cfg.train.prompts_per_step // world)
        task_ids = [row.task_id for row in env_tasks(self.envs[0])]
        self.order = DataOrder(task_ids, cfg.seed, cfg.train.data_shuffle)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.start_step = 0
        self._gap = LogprobGap()  # of the current update
        self._pad_passes = 0  # empty passes of this rank in the current update (FSDP: equal pass counts)
        self.logger = RunLogger(self.run_dir, tensorboard=cfg.train.tensorboard) if self.is_main else QuietLogger()
        if self.is_main:
            (self.run_dir / "config.json").write_text(json.dumps(cfg.model_dump(), indent=2))

    def _shard(self, engine: Engine | None) -> None:
        """FSDP2 over the mesh: the policy (fp32 shards computing in bf16 on CUDA when ``model.dtype`` is
        bfloat16) and the KL reference; the HF engine gets an unsharded copy filled before each rollout."""
        assert self.dist is not None
        bf16 = self.dist.device.type == "cuda" and self.cfg.model.dtype == "bfloat16"
        if bf16:
            self.model.to(torch.float32)
        if engine is None and self.cfg.engine.kind == "hf":
            self._gen = GenerationCopy(self.model, _DTYPES[self.cfg.model.dtype])
        shard_model(self.model, self.dist, bf16_compute=bf16)
        if self._ref_model is not None:
            shard_model(self._ref_model.to(torch.float32) if bf16 else self._ref_model, self.dist, bf16_compute=bf16)

    def _engine_config(self) -> TrainConfig:
        """The config the engine is built from: under torchrun a vLLM engine per rank joins the job's process
        group as TRL's colocate mode does (``external_launcher``), unless ``engine.vllm_kwargs`` say otherwise."""
        if self.dist is None or self.cfg.engine.kind != "vllm":
            return self.cfg
        kwargs = {"distributed_executor_backend": "external_launcher", **self.cfg.engine.vllm_kwargs}
        return self.cfg.model_copy(update={"engine": self.cfg.engine.model_copy(update={"vllm_kwargs": kwargs})})

    # ---------------------------------------------------------------------------------------- resume
    def maybe_resume(self) -> int:
        """Load the latest checkpoint of the run dir, if any; returns the step to continue from."""
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            return 0
        if self.dist is None and checkpoint_format(ckpt) == "torch":
            state = load_checkpoint(ckpt, self.model, self.optimizer)
        else:  # sharded (any world size), or a one-process checkpoint sharded onto the ranks
            from aepo_agent.trainer.dist_checkpoint import load_sharded_checkpoint

            state = load_sharded_checkpoint(ckpt, self.model, self.optimizer)
        self.start_step = int(state["step"])
        self.logger.truncate_after(self.start_step - 1)
        reference = self.run_dir / REFERENCE_FILE
        if self._ref_model is not None and reference.is_file():
            saved = torch.load(reference, weights_only=True, map_location="cpu")
            if self.dist is None:
                self._ref_model.load_state_dict(saved)
            else:
                load_full_state_dict(self._ref_model, saved)
        self.sync_engine()
        return self.start_step

    def engine_shares_weights(self) -> bool:
        """Whether the engine runs the trainer's own module (an HF engine built on it), so no sync is needed.
        Asked of the engine (``shares_weights`` and its ``model``), never inferred from the config."""
        return bool(getattr(self.engine, "shares_weights", False)) and getattr(self.engine, "model", None) is self.model

    def sync_engine(self) -> None:
        """Send the policy to an engine holding its own copy of the weights (vLLM, a scripted engine, an HF
        engine on another module) after they changed; under torchrun the whole weights, gathered (collective).
        The HF engine's unsharded copy needs none: it is filled before each rollout."""
        if self._gen is not None or self.engine_shares_weights():
            return
        self.engine.update_weights(full_named_parameters(self.model) if self.dist else self.model.named_parameters())

    def _generation(self) -> Any:
        """Context of a rollout or evaluation: under torchrun the HF engine's copy holds the whole weights."""
        return self._gen.loaded(self.model) if self._gen is not None else contextlib.nullcontext()

    # ---------------------------------------------------------------------------------------- loop
    def warm_start(self) -> list[float]:
        """Cold-start SFT per ``warm_start`` (only on a fresh run: a checkpoint already contains it)."""
        ws = self.cfg.warm_start
        if ws.sft_steps == 0 or self.start_step > 0:
            return []
        from aepo_agent.rollout.demos import oracle_rows
        from aepo_agent.trainer.warm_start import sft_steps

        env = gym.make(self.cfg.env.id, **deep_merge(self.cfg.env.kwargs, ws.env_kwargs))
        try:
            rows = oracle_rows(env, self.tokenizer, range(min(ws.demos, len(env_tasks(env)))))
        finally:
            env.close()
        bar = tqdm(total=ws.sft_steps, desc="aepo warm start (SFT)", dynamic_ncols=True, disable=not self.is_main)

        def log(step: int, metrics: dict[str, Any]) -> None:
            self.logger.log_event("warm_start", "sft_step", step, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['sft/loss']:.3f}")

        with mean_gradients(self.model, self.dist):  # under torchrun every rank computes the whole SFT batch
            losses = sft_steps(self.model, rows, pad_id=self.pad_id, steps=ws.sft_steps, lr=ws.lr,
                               batch_size=ws.batch_size, micro_batch_size=ws.micro_batch_size,
                               seed=self.cfg.seed, grad_clip=self.cfg.train.grad_clip, log=log)
        bar.close()
        if self._ref_model is not None:  # KL anchors at the policy RL starts from; kept for a resume
            self._ref_model.load_state_dict(self.model.state_dict())
            if self.dist is None:
                torch.save(self._ref_model.state_dict(), self.run_dir / REFERENCE_FILE)
            else:  # gathered whole (collective), written by rank 0
                state = {k: v.cpu() for k, v in full_state_dict(self._ref_model).items()}
                if self.is_main:
                    torch.save(state, self.run_dir / REFERENCE_FILE)
        self.sync_engine()
        return losses

    def heldout_eval(self, step: int) -> dict[str, float]:
        """Pass@k of the current policy on held-out tasks (``eval.held_out_env_kwargs``: tasks training never
        sees), logged to ``heldout.jsonl`` with ``step`` = the RL updates applied so far."""
        from aepo_agent.eval import BenchmarkSpec, EvalSettings, run_eval

        ev = self.cfg.eval
        settings = EvalSettings(n=ev.n, k=tuple(ev.k), temperature=ev.temperature, top_p=ev.top_p, top_k=ev.top_k,
                                repetition_penalty=1.0, max_response_tokens=ev.max_response_tokens,
                                limit=ev.held_out_limit, seed=self.cfg.seed + 7_919 * step,
                                success_threshold=ev.success_threshold, tool_budgets=None)  # the env's own
        spec = BenchmarkSpec(self.cfg.env.id, deep_merge(self.cfg.env.kwargs, ev.held_out_env_kwargs))
        self.model.eval()
        with torch.no_grad(), self._generation():  # under torchrun every rank evaluates the same tasks
            report = run_eval(self.engine, self.tokenizer, [spec], settings, output_dir=None, progress=False)
        metrics = report.metrics("heldout/")
        self.logger.log_event("heldout", "step", step, metrics)
        return metrics

    def _heldout_due(self, step: int) -> bool:
        every = self.cfg.eval.every
        return every > 0 and (step % every == 0 or step == self.cfg.train.steps)

    def train(self) -> list[dict[str, Any]]:
        """Run from the current step to ``train.steps``; returns the per-step metrics."""
        cfg = self.cfg
        history = []
        self.warm_start()
        bar = tqdm(range(self.start_step, cfg.train.steps), desc="aepo train", initial=self.start_step,
                   total=cfg.train.steps, dynamic_ncols=True, disable=not self.is_main)
        for step in bar:
            heldout = self.heldout_eval(step) if self._heldout_due(step) else {}
            metrics = {**self.train_step(step), **heldout}
            history.append(metrics)
            self.logger.log(step, metrics)
            bar.set_postfix(reward=f"{metrics['rollout/reward_mean']:.3f}", loss=f"{metrics['train/loss']:.4f}")
            done = step + 1
            if done % cfg.train.save_every == 0 or done == cfg.train.steps:
                self.save(done)
                if cfg.train.plot and self.is_main:
                    plot_run(self.run_dir)
        if self._heldout_due(cfg.train.steps) and self.start_step < cfg.train.steps:
            self.heldout_eval(cfg.train.steps)  # the policy RL ended with
            if cfg.train.plot and self.is_main:
                plot_run(self.run_dir)
        self.logger.close()
        return history

    def save(self, step: int) -> None:
        """Checkpoint after ``step`` updates: one-process files, or DCP shards under torchrun (collective)."""
        keep = self.cfg.train.keep_checkpoints
        if self.dist is None:
            save_checkpoint(self.run_dir, step, self.model, self.optimizer, keep=keep)
            return
        from aepo_agent.trainer.dist_checkpoint import save_sharded_checkpoint

        save_sharded_checkpoint(self.run_dir, step, self.model, self.optimizer, extra={"data_step": step}, keep=keep)

    def rollout(self, step: int) -> tuple[list[str], RolloutResult]:
        """The rollout of ``step``: its prompts (from the data order) and their trajectories. Under torchrun each
        rank rolls out its block of the prompts (seeded per rank) and gets every rank's rows."""
        cfg = self.cfg
        task_ids = self.order.batch(step, cfg.train.prompts_per_step)
        mine, seed = task_ids, cfg.seed * 1_000_003 + step
        if self.dist is not None:
            mine, seed = task_ids[self.dist.prompt_block(len(task_ids))], self.dist.rollout_seed(seed)
        rollout = TreeRollout(self.engine, cfg.rollout.model_copy(update={"seed": seed}))
        self.model.eval()
        with torch.no_grad(), self._generation():
            result = rollout.run(self.envs, [{"task_id": t} for t in mine])
        if self.dist is not None:
            result = merge_rollouts(self.dist.all_gather(result))
        return task_ids, result

    def train_step(self, step: int) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        task_ids, result = self.rollout(step)
        t_rollout = time.perf_counter() - t0
        rows = result.rows
        metrics: dict[str, Any] = {**result.stats, **worker_metrics(self.envs)}
        metrics["data/task_ids"] = task_ids
        if cfg.algo.dynamic_sampling:
            keep = dynamic_sampling_filter(
                torch.tensor([r.reward for r in rows]), [r.group_id for r in rows]
            ).tolist()
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
            metrics["train/kept_rows"] = len(rows)
        t1 = time.perf_counter()
        update = self.update(rows) if rows else {"train/loss": 0.0}
        if rows:
            self.sync_engine()
        metrics.update(update)
        metrics["time/rollout_s"] = t_rollout
        metrics["time/update_s"] = time.perf_counter() - t1
        metrics["time/tokens_per_s"] = result.stats["rollout/generated_tokens"] / max(t_rollout, 1e-9)
        return metrics

    # ---------------------------------------------------------------------------------------- update
    def update(self, rows: Sequence[RolloutRow]) -> dict[str, float]:
        """PPO-style updates on one rollout: old log-probs, advantages, then mini-batches of prompt groups."""
        cfg, algo = self.cfg, self.cfg.algo
        temp = cfg.rollout.temperature
        rewards = sequence_rewards(rows, max_len=cfg.rollout.max_response_tokens,
                                   overlong_cache=algo.overlong_cache_tokens)
        full = collate(rows, self.pad_id)
        adv = token_advantages(rows, full, rewards, estimator=algo.advantage, norm_by_std=algo.norm_by_std,
                               attribution=algo.attribution, reset_at_masked=algo.reinforce_reset_at_masked)
        mb = cfg.train.micro_batch_size
        use_ent_adv = algo.entropy_advantage and algo.entropy_advantage_coef != 0.0
        batch_entropy = use_ent_adv and algo.entropy_stats != "micro_batch"
        groups = sorted({r.group_id for r in rows})
        per_mini = cfg.train.mini_batch_prompts
        # Rows of the first mini-batch of a single-epoch update are on-policy: pi_old = pi_theta there, so
        # their old log-probs are the detached new ones and need no extra forward pass (as TRL does).
        first = set(groups[:per_mini])
        on_policy = {i for i, r in enumerate(rows) if r.group_id in first} if cfg.train.ppo_epochs == 1 else set()
        if batch_entropy:
            on_policy = set()
        live = self._live_rows(adv, full.response_mask)
        need = [i for i in range(len(rows)) if i not in on_policy and (batch_entropy or live[i])]
        self.model.eval()
        self._gap = LogprobGap()  # engine vs trainer log-probs of pi_old, on the rows computed below
        self._pad_passes = 0
        old_logp = torch.zeros_like(full.response_mask)
        old_ent = torch.zeros_like(full.response_mask)
        chunks, pad = self._share([need[s : s + mb] for s in range(0, len(need), mb)])
        self._pad_passes += pad
        with torch.no_grad():
            for sub in chunks:
                part = collate([rows[i] for i in sub], self.pad_id)
                lp, ent = policy_logprobs(self.model, part, temperature=temp, with_entropy=batch_entropy)
                old_logp[sub, : part.resp_len] = lp.to(old_logp.device)
                self._gap.add(part, lp)
                if ent is not None:
                    old_ent[sub, : part.resp_len] = ent.to(old_ent.device)
            for _ in range(pad):  # an empty pass: this rank has fewer chunks than another
                policy_logprobs(self.model, collate([rows[self._shortest(rows)]], self.pad_id), with_entropy=False)
        if self.dist is not None:  # each row was computed on one rank
            self.dist.all_sum(old_logp, old_ent)
        if batch_entropy:
            adv = entropy_aware_advantages(adv, old_ent, full.response_mask, coef=algo.entropy_advantage_coef,
                                           stats=algo.entropy_stats, group_ids=[r.group_id for r in rows])
        self.model.train()
        records = []
        for _epoch in range(cfg.train.ppo_epochs):
            for g0 in range(0, len(groups), per_mini):
                chosen = set(groups[g0 : g0 + per_mini])
                idx = [i for i, r in enumerate(rows) if r.group_id in chosen]
                fresh = _epoch == 0 and g0 == 0 and bool(on_policy)
                records.append(self._mini_batch(rows, idx, full, adv, old_logp, use_ent_adv, live, on_policy=fresh))
        self.model.eval()
        if self.dist is not None:  # every micro-batch ran on one rank: pool their losses and metrics
            gathered = self.dist.all_gather((records, self._gap, self._pad_passes))
            records = combine_mini_batches([g[0] for g in gathered])
            self._gap = LogprobGap.merge([g[1] for g in gathered])
        logs = [_mini_batch_log(*record) for record in records]
        keys = dict.fromkeys(k for d in logs for k in d)
        out = {k: statistics.fmean(d[k] for d in logs if k in d) for k in keys}
        out["train/zero_adv_rows_skipped"] = float(len(rows) - sum(live))
        if self.dist is not None:
            out["dist/world_size"] = float(self.dist.world)
            out["dist/empty_passes"] = float(sum(g[2] for g in gathered))
        out.update(self._gap.metrics())
        out["train/reward_mean"] = float(rewards.mean())
        out["train/adv_abs_mean"] = float((adv.abs() * full.response_mask).sum() / full.response_mask.sum().clamp(min=1))
        return out

    def _live_rows(self, adv: torch.Tensor, mask: torch.Tensor) -> list[bool]:
        """Per row: whether it can contribute gradient (a nonzero advantage on some token, or a KL term)."""
        if not self.cfg.train.skip_zero_advantage or self.cfg.algo.kl_coef:
            return [True] * adv.shape[0]
        return ((adv * mask) != 0).any(dim=1).tolist()

    def _micro_batches(self, idx: list[int], live: list[bool], use_ent_adv: bool) -> list[tuple[list[int], list[int]]]:
        """(micro-batch, its rows to run) of a mini-batch. Where the micro-batch's composition matters (entropy
        z-score over the micro-batch; the released per-micro-batch weighting) the released split is kept and only
        micro-batches with no live row are dropped; otherwise the live rows are packed densely."""
        mb = self.cfg.train.micro_batch_size
        micro_entropy = use_ent_adv and self.cfg.algo.entropy_stats == "micro_batch"
        if micro_entropy or self.cfg.train.micro_batch_weighting == "released":
            parts = [idx[s : s + mb] for s in range(0, len(idx), mb)]
            if micro_entropy:  # the z-score population is the whole micro-batch
                return [(p, p) for p in parts if any(live[i] for i in p)]
            return [(p, run) for p in parts if (run := [i for i in p if live[i]])]
        kept = [i for i in idx if live[i]]
        return [(kept[s : s + mb], kept[s : s + mb]) for s in range(0, len(kept), mb)]

    def _normalizer(self, full, idx: list[int], micro: list[int], run: list[int]) -> float:
        """The ``aggregate`` normalizer of the rows ``run`` of micro-batch ``micro`` of mini-batch ``idx``, so that
        the micro-batch losses add up to the mini-batch loss (``train.micro_batch_weighting``; rows skipped for
        a zero advantage still count where the released loss would count them)."""
        agg = self.cfg.algo.agg
        released = self.cfg.train.micro_batch_weighting == "released"
        if agg == "token-mean":
            if released:  # the micro-batch's own token mean, times rows(micro) / rows(mini-batch)
                return float(full.response_mask[micro].sum().clamp(min=1.0)) * len(idx) / len(micro)
            return float(full.response_mask[idx].sum().clamp(min=1.0))
        if agg == "seq-mean-token-sum-norm":  # aggregate gives S / L * rows(run) / normalizer
            return len(idx) * len(run) / len(micro) if released else float(len(run))
        return float(len(idx))

    def _share(self, items: list[Any]) -> tuple[list[Any], int]:
        """This rank's share of ``items`` (micro-batches) and its number of empty passes: all, 0 in one process."""
        return self.dist.share(items) if self.dist is not None else (items, 0)

    @staticmethod
    def _shortest(rows: Sequence[RolloutRow]) -> int:
        """The row an empty pass runs (cheapest)."""
        return min(range(len(rows)), key=lambda i: len(rows[i].prompt_ids) + len(rows[i].response_ids))

    def _mini_batch(self, rows, idx, full, adv, old_logp, use_ent_adv, live, *,
                    on_policy=False) -> tuple[float, list[dict[str, float]], float]:
        """One optimizer step on mini-batch ``idx``: (summed loss, metrics per micro-batch run here, grad norm).
        Under torchrun this rank runs its share of the micro-batches, plus empty passes (loss x 0) up to the
        largest share, so that every rank makes the same FSDP collectives."""
        cfg, algo = self.cfg, self.cfg.algo
        self.optimizer.zero_grad(set_to_none=True)
        total, metrics = 0.0, []
        parts = self._micro_batches(idx, live, use_ent_adv)
        mine, pad = self._share(parts)
        self._pad_passes += pad
        empty = ([idx[0]], [self._shortest(rows)]) if parts else None
        for n, (micro, run) in enumerate(mine + [empty] * pad):
            real = n < len(mine)
            part = collate([rows[i] for i in run], self.pad_id)
            t = part.resp_len
            micro_entropy = use_ent_adv and algo.entropy_stats == "micro_batch"
            logp, ent = policy_logprobs(self.model, part, temperature=cfg.rollout.temperature,
                                        with_entropy=micro_entropy)
            mask = part.response_mask.to(logp.device)
            a = adv[run, :t].to(logp.device)
            if micro_entropy:  # released: the z-score over this micro-batch, from pi_theta
                a = entropy_aware_advantages(a, ent.detach(), mask, coef=algo.entropy_advantage_coef, stats="batch")
            old = logp.detach() if on_policy else old_logp[run, :t].to(logp.device)
            if on_policy and real:
                self._gap.add(part, old)
            out = policy_loss(
                logp, old, a, mask,
                kind=algo.loss, clip_low=algo.clip_low, clip_high=algo.clip_high, dual_clip_c=algo.dual_clip_c,
                agg=algo.agg, cispo_eps_high=algo.cispo_eps_high, kl_coef=algo.kl_coef, kl_kind=algo.kl_kind,
                ref_logp=self._ref_logp(part) if algo.kl_coef else None,
                normalizer=self._normalizer(full, idx, micro, run), norm_len=cfg.rollout.max_response_tokens,
                log_ratio_clamp=algo.log_ratio_clamp,
            )
            if not real:
                (out.loss * 0.0).backward()
                continue
            out.loss.backward()
            total += float(out.loss.detach())
            metrics.append(out.metrics)
        if self.dist is not None:  # parameters as DTensor shards again, whatever ran (or did not) before
            reshard(self.model)
        if not parts:  # every row skipped: their gradient is exactly 0, and the optimizer still steps on it
            for param in self.model.parameters():
                if param.requires_grad:
                    param.grad = torch.zeros_like(param)
        grad_norm = as_float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip))
        if math.isfinite(grad_norm):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, metrics, grad_norm

    def _ref_logp(self, part) -> torch.Tensor:
        """Log-probs of the frozen reference policy (the initial weights), for the KL term."""
        assert self._ref_model is not None
        with torch.no_grad():
            lp, _ = policy_logprobs(self._ref_model, part, temperature=self.cfg.rollout.temperature,
                                    with_entropy=False)
        return lp

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.logger.close()
        close = getattr(self.engine, "close", None)
        if close is not None and not self.engine_shares_weights():
            close()
        if self.dist is not None:  # the sharded modules go before their process group
            self.model = self._ref_model = self.optimizer = self._gen = None  # type: ignore[assignment]
            gc.collect()
            self.dist.close()


def _mini_batch_log(total: float, metrics: list[dict[str, float]], grad_norm: float) -> dict[str, float]:
    """The logged metrics of one mini-batch: micro-batch metrics averaged, the summed loss, the grad norm."""
    merged = {f"train/{k}": statistics.fmean(m[k] for m in metrics if k in m) for k in (metrics or [{}])[0]}
    merged["train/loss"] = total
    merged["train/grad_norm"] = grad_norm
    return merged
