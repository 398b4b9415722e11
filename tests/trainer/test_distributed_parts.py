"""The data-parallel bookkeeping, in one process: the ranks' rollouts merged into the one-process batch, the
round-robin share of passes, the per-rank prompt block and seed, and the HF engine's generation copy."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.rollout.trajectory import RolloutResult, RolloutRow  # noqa: E402
from aepo_agent.trainer.batch import LogprobGap  # noqa: E402
from aepo_agent.trainer.distributed import (  # noqa: E402
    DistContext,
    GenerationCopy,
    check_divisible,
    combine_mini_batches,
    init_distributed,
    merge_rollouts,
    merge_stats,
)


def _ctx(rank: int, world: int) -> DistContext:
    return DistContext(rank, world, rank, torch.device("cpu"), mesh=None, owns_group=False)


def _row(group: int, traj: int, parent: int | None, segments: list[int]) -> RolloutRow:
    return RolloutRow(group_id=group, task_id=f"t{group}", traj_id=traj, parent_id=parent, branch_step=None,
                      prompt_ids=[1], response_ids=[2] * len(segments), loss_mask=[1] * len(segments),
                      old_logprobs=[0.0] * len(segments), entropies=[0.0] * len(segments), segment_ids=segments,
                      reward=float(traj), reward_components={}, num_tool_calls=0, finish="answer")


def _part(tokens: float, rounds: float, reward: float) -> RolloutResult:
    """A rank's rollout of two prompt groups: a root and its branch clone (sharing segment 1), and a root."""
    rows = [_row(0, 0, None, [1, 1, 2]), _row(0, 1, 0, [1, 1, 3]), _row(1, 2, None, [4, 4])]
    return RolloutResult(rows, {"rollout/generated_tokens": tokens, "rollout/rounds": rounds,
                                "rollout/reward_mean": reward, "rollout/mode": "aepo"})


def test_merged_rollouts_are_the_one_process_batch() -> None:
    merged = merge_rollouts([_part(10, 2, 0.5), _part(30, 5, 1.5)])
    assert [r.group_id for r in merged.rows] == [0, 0, 1, 2, 2, 3]  # positions in the step, group order kept
    assert [r.traj_id for r in merged.rows] == [0, 1, 2, 3, 4, 5]
    assert [r.parent_id for r in merged.rows] == [None, 0, None, None, 3, None]  # the clone follows its root
    # rank 1's segments do not collide with rank 0's (ARPO hard attribution keys on them); sharing is kept
    assert [r.segment_ids for r in merged.rows[3:]] == [[5, 5, 6], [5, 5, 7], [8, 8]]
    assert merged.stats == {"rollout/generated_tokens": 40.0, "rollout/rounds": 5.0, "rollout/reward_mean": 1.0,
                            "rollout/mode": "aepo"}


def test_merge_stats_means_unknown_numbers_and_keeps_rank_zero_text() -> None:
    assert merge_stats([{"a": 1.0, "b": "x"}, {"a": 3.0, "b": "y"}]) == {"a": 2.0, "b": "x"}


@pytest.mark.parametrize(("world", "items", "expected"), [
    (2, 5, [([0, 2, 4], 0), ([1, 3], 1)]),
    (3, 4, [([0, 3], 0), ([1], 1), ([2], 1)]),
    (2, 1, [([0], 0), ([], 1)]),
    (2, 0, [([], 0), ([], 0)]),
])
def test_share_deals_passes_round_robin_and_pads_to_equal_counts(world, items, expected) -> None:
    shares = [_ctx(rank, world).share(list(range(items))) for rank in range(world)]
    assert shares == expected
    assert len({len(mine) + pad for mine, pad in shares}) == 1  # every rank makes as many FSDP passes
    assert sorted(i for mine, _ in shares for i in mine) == list(range(items))  # each item on exactly one rank


def test_prompt_blocks_cover_the_step_and_seeds_differ_per_rank() -> None:
    prompts = list("abcdef")
    blocks = [prompts[_ctx(rank, 3).prompt_block(len(prompts))] for rank in range(3)]
    assert blocks == [["a", "b"], ["c", "d"], ["e", "f"]]
    seeds = [_ctx(rank, 3).rollout_seed(1234) for rank in range(3)]
    assert seeds[0] == 1234 and len(set(seeds)) == 3  # rank 0 samples as one process would


def test_prompts_per_step_must_divide_among_ranks() -> None:
    check_divisible(4, 2)
    with pytest.raises(ValueError, match=r"train.prompts_per_step=3 must be a multiple of the world size 2"):
        check_divisible(3, 2)


def test_pooled_mini_batch_records_and_logprob_gaps() -> None:
    rank0 = [(0.5, [{"clipfrac": 0.0}], 2.0), (0.25, [], 1.0)]
    rank1 = [(0.25, [{"clipfrac": 1.0}], 2.0), (0.5, [{"clipfrac": 0.5}], 1.0)]
    assert combine_mini_batches([rank0, rank1]) == [
        (0.75, [{"clipfrac": 0.0}, {"clipfrac": 1.0}], 2.0), (0.75, [{"clipfrac": 0.5}], 1.0)]
    gap = LogprobGap.merge([LogprobGap(1.0, 0.5, 4), LogprobGap(3.0, 0.75, 4)])
    assert gap.metrics() == {"train/rollout_logprob_diff_mean": 0.5, "train/rollout_logprob_diff_max": 0.75}


def test_without_torchrun_there_is_no_process_group(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed("cpu", 60.0) is None


def test_generation_copy_holds_the_weights_only_while_loaded() -> None:
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    copy = GenerationCopy(model, torch.float32)
    assert sum(p.numel() for p in copy.module.parameters()) == 0  # freed until a rollout
    ids = torch.randint(0, 256, (2, 7))
    with copy.loaded(model) as gen:
        assert gen.lm_head.weight.data_ptr() == gen.model.embed_tokens.weight.data_ptr()  # still tied
        assert torch.allclose(gen(ids).logits, model(ids).logits, atol=1e-6)
    assert sum(p.numel() for p in copy.module.parameters()) == 0
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with copy.loaded(model) as gen:  # the next rollout sees the updated weights
        assert torch.allclose(gen(ids).logits, model(ids).logits, atol=1e-6)


def test_a_vllm_engine_per_rank_joins_the_process_group_as_in_trl_colocate() -> None:
    from types import SimpleNamespace

    from aepo_agent.trainer.config import TrainConfig
    from aepo_agent.trainer.trainer import Trainer

    cfg = TrainConfig.model_validate({"engine": {"kind": "vllm", "vllm_kwargs": {"gpu_memory_utilization": 0.3}}})
    ranked = Trainer._engine_config(SimpleNamespace(dist=_ctx(1, 2), cfg=cfg))
    assert ranked.engine.vllm_kwargs == {"distributed_executor_backend": "external_launcher",
                                         "gpu_memory_utilization": 0.3}
    assert Trainer._engine_config(SimpleNamespace(dist=None, cfg=cfg)) is cfg  # one process: as configured
    own = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"vllm_kwargs": {
        "distributed_executor_backend": "mp"}})})
    assert Trainer._engine_config(SimpleNamespace(dist=_ctx(0, 2), cfg=own)).engine.vllm_kwargs == {
        "distributed_executor_backend": "mp"}  # the user's choice wins
