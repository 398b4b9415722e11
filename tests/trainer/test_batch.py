"""Per-token log-probs and entropies of the policy, computed from response positions only, match the naive way."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.rollout.trajectory import RolloutRow  # noqa: E402
from aepo_agent.trainer.batch import collate, policy_logprobs  # noqa: E402


def _tiny_llama():
    cfg = transformers.LlamaConfig(
        vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def _row(prompt: list[int], response: list[int], gid: int) -> RolloutRow:
    n = len(response)
    return RolloutRow(
        group_id=gid, task_id=str(gid), traj_id=gid, parent_id=None, branch_step=0, prompt_ids=prompt,
        response_ids=response, loss_mask=[1] * n, old_logprobs=[0.0] * n, entropies=[0.0] * n,
        segment_ids=[1] * n, reward=0.0, reward_components={}, num_tool_calls=0, finish="answer",
    )


def test_matches_full_logits_with_unequal_prompts_and_responses() -> None:
    model = _tiny_llama()
    rows = [_row([5, 6, 7, 8, 9, 10], [11, 12, 13], 0), _row([3, 4], [20, 21, 22, 23, 24], 1)]
    batch = collate(rows, pad_id=0)
    logp, ent = policy_logprobs(model, batch, temperature=0.7)
    with torch.no_grad():
        for i, r in enumerate(rows):
            seq = torch.tensor([r.prompt_ids + r.response_ids])
            full = torch.log_softmax(model(input_ids=seq).logits[0].float() / 0.7, dim=-1)
            start = len(r.prompt_ids) - 1
            want = full[start : start + len(r.response_ids)]
            got_lp = logp[i, : len(r.response_ids)]
            assert torch.allclose(got_lp, want.gather(1, torch.tensor(r.response_ids)[:, None]).squeeze(1), atol=1e-5)
            want_ent = -(want.exp() * want).sum(-1)
            assert torch.allclose(ent[i, : len(r.response_ids)], want_ent, atol=1e-5)
