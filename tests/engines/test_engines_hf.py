"""HFEngine on the real SmolLM2-135M-Instruct: stops, exact logprobs/entropies, prefix sharing, seeding."""

from __future__ import annotations

import math

import pytest
import torch

from aepo_agent.engines import Engine, SamplingParams
from aepo_agent.engines.hf_engine import token_entropy


def _reference(engine, prefix: list[int], segment, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logprobs of the sampled tokens and exact entropies from one fresh full forward pass."""
    ids = torch.tensor([prefix + segment.token_ids])
    with torch.inference_mode():
        logits = engine.model(ids).logits[0, len(prefix) - 1 : -1].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    return logprobs.gather(1, torch.tensor(segment.token_ids)[:, None]).squeeze(1), token_entropy(logprobs)


def test_hf_engine_satisfies_the_engine_protocol(hf_engine) -> None:
    assert isinstance(hf_engine, Engine)
    assert hf_engine.entropy_estimator == "exact"


def test_logprobs_and_entropies_match_a_full_forward_pass(hf_engine, chat_prefix) -> None:
    # Different lengths (left padding), a shared head and an extension of another prefix, all in one batch.
    other = list(hf_engine.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}],
                                                          add_generation_prompt=True, tokenize=True,
                                                          return_dict=False))
    prefixes = [chat_prefix, other, chat_prefix + [504, 1345], chat_prefix[:7]]
    params = SamplingParams(temperature=0.7, max_tokens=10, seed=3)
    out = hf_engine.generate(prefixes, params, n=2)
    assert [len(group) for group in out] == [2, 2, 2, 2]
    for prefix, group in zip(prefixes, out, strict=True):
        for segment in group:
            assert len(segment.token_ids) == len(segment.logprobs) == len(segment.entropies) >= 1
            ref_lp, ref_ent = _reference(hf_engine, prefix, segment, temperature=0.7)
            assert torch.allclose(torch.tensor(segment.logprobs), ref_lp, atol=1e-4)
            assert torch.allclose(torch.tensor(segment.entropies), ref_ent, atol=1e-4)


def test_stop_strings_end_the_segment_and_are_included(hf_engine, chat_prefix) -> None:
    tok = hf_engine.tokenizer
    params = SamplingParams(max_tokens=16, stop=("e", "a"), seed=0)
    out = hf_engine.generate([chat_prefix], params, n=4)[0]
    stopped = [s for s in out if s.finish_reason == "stop"]
    assert stopped, "letters 'e'/'a' should appear within 16 tokens of English"
    for segment in stopped:
        assert segment.stop_string in ("e", "a")
        assert segment.text.endswith(segment.stop_string)
        assert "e" not in segment.text[:-1] and "a" not in segment.text[:-1]
        full = tok.decode(segment.token_ids, skip_special_tokens=True)
        assert full.startswith(segment.text)  # the token that completes the stop string is kept
        before = tok.decode(segment.token_ids[:-1], skip_special_tokens=True)
        assert "e" not in before and "a" not in before  # and nothing after it
    for segment in out:
        if segment.finish_reason == "length":
            assert len(segment.token_ids) == 16


def test_branches_from_one_prefix_prefill_it_once(hf_engine, chat_prefix) -> None:
    hf_engine.clear_prefix_cache()  # nothing kept from earlier tests: the prefix must be computed here
    calls: list[tuple[int, ...]] = []
    embed = hf_engine.model.get_input_embeddings()
    handle = embed.register_forward_pre_hook(lambda _m, args: calls.append(tuple(args[0].shape)))
    try:
        out = hf_engine.generate([chat_prefix], SamplingParams(max_tokens=6, seed=1), n=4)
    finally:
        handle.remove()
    assert len(out) == 1 and len(out[0]) == 4
    assert calls[0] == (1, len(chat_prefix) - 1)  # the shared prefix, once, batch 1
    assert all(shape[1] == 1 and shape[0] <= 4 for shape in calls[1:])  # then one token per branch per step
    assert calls[1][0] == 4


def test_prefixes_sharing_a_head_compute_it_once(hf_engine, chat_prefix) -> None:
    hf_engine.clear_prefix_cache()
    before = hf_engine.stats.prefill_tokens
    a, b = chat_prefix + [504, 1345, 30], chat_prefix + [2683, 30]
    hf_engine.generate([a, b], SamplingParams(max_tokens=2, seed=0), n=1)
    # Shared chat prefix once, then the two distinct tails (each minus its last token, fed while decoding).
    assert hf_engine.stats.prefill_tokens - before == len(chat_prefix) + 2 + 1


def test_next_round_prefills_only_the_new_tokens_and_matches_a_full_forward(hf_engine, chat_prefix) -> None:
    # A multi-turn round: each sequence the last call ended with, plus env text, comes back as a prefix.
    hf_engine.clear_prefix_cache()
    params = SamplingParams(temperature=0.7, max_tokens=6, seed=5)
    other = chat_prefix[:-9] + [504, 1345, 30]
    first = hf_engine.generate([chat_prefix, other], params, n=2)
    tool_result = hf_engine.tokenizer.encode(" <result>42</result>", add_special_tokens=False)
    extended = [chat_prefix + first[0][0].token_ids + tool_result,
                chat_prefix + first[0][0].token_ids + tool_result,  # a clone: same prefix as its parent
                other + first[1][1].token_ids + tool_result,
                chat_prefix[:-2]]  # a fresh sample sharing a cached head
    stats = (hf_engine.stats.prefill_tokens, hf_engine.stats.reused_tokens)
    second = hf_engine.generate(extended, params, n=1)
    prefilled = hf_engine.stats.prefill_tokens - stats[0]
    reused = hf_engine.stats.reused_tokens - stats[1]
    # Cached: the context up to each kept sequence's last (unfed) token; computed: that token + the tool result
    # (once for the parent and its clone), nothing for the fresh sample's head.
    assert reused == (len(extended[0]) - len(tool_result) - 1) + (len(extended[2]) - len(tool_result) - 1) + (
        len(chat_prefix) - 3)
    assert prefilled == 2 * len(tool_result)
    for prefix, group in zip(extended, second, strict=True):
        ref_lp, ref_ent = _reference(hf_engine, prefix, group[0], temperature=0.7)
        assert torch.allclose(torch.tensor(group[0].logprobs), ref_lp, atol=2e-4)
        assert torch.allclose(torch.tensor(group[0].entropies), ref_ent, atol=2e-4)


def test_kept_kv_is_dropped_when_the_weights_change_in_place(hf_engine, chat_prefix) -> None:
    params = SamplingParams(max_tokens=3, seed=0)
    segment = hf_engine.generate([chat_prefix], params)[0][0]
    again = chat_prefix + segment.token_ids
    norm = hf_engine.model.model.norm.weight
    with torch.no_grad():
        norm.mul_(1.0)  # an optimizer step updates parameters in place, exactly like this
    reused = hf_engine.stats.reused_tokens
    hf_engine.generate([again], params)
    assert hf_engine.stats.reused_tokens == reused  # stale KV was not used
    hf_engine.generate([again + [30]], params)
    assert hf_engine.stats.reused_tokens > reused  # kept again once the weights are unchanged


def test_seeded_generation_is_deterministic(hf_engine, chat_prefix) -> None:
    params = SamplingParams(max_tokens=8, seed=123)
    first = hf_engine.generate([chat_prefix, chat_prefix[:-3]], params, n=3)
    again = hf_engine.generate([chat_prefix, chat_prefix[:-3]], params, n=3)
    other = hf_engine.generate([chat_prefix, chat_prefix[:-3]], SamplingParams(max_tokens=8, seed=7), n=3)
    ids = [[s.token_ids for s in g] for g in first]
    assert ids == [[s.token_ids for s in g] for g in again]
    assert ids != [[s.token_ids for s in g] for g in other]
    assert len({tuple(t) for t in ids[0]}) > 1  # samples of one prefix differ from each other


def test_in_place_kv_buffer_samples_what_transformers_dynamic_cache_samples(hf_engine, chat_prefix) -> None:
    from aepo_agent.engines.growing_cache import GrowingLayer

    params = SamplingParams(max_tokens=12, seed=5)
    prefixes = [chat_prefix, chat_prefix[:-4], chat_prefix + [504]]
    hf_engine.clear_prefix_cache()
    cache, _, _ = hf_engine._prefill([chat_prefix[:-1]])
    assert all(isinstance(layer, GrowingLayer) for layer in cache.layers)
    grown = hf_engine.generate(prefixes, params, n=2)
    hf_engine.clear_prefix_cache()
    hf_engine._plain_cache, reuse = False, hf_engine.reuse_kv
    hf_engine.reuse_kv = False
    try:
        plain = hf_engine.generate(prefixes, params, n=2)
    finally:
        hf_engine._plain_cache, hf_engine.reuse_kv = True, reuse
    for a, b in zip((s for g in grown for s in g), (s for g in plain for s in g), strict=True):
        assert a.token_ids == b.token_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)


def test_greedy_samples_are_the_argmax(hf_engine, chat_prefix) -> None:
    out = hf_engine.generate([chat_prefix], SamplingParams(temperature=0, max_tokens=5), n=2)[0]
    assert out[0].token_ids == out[1].token_ids
    ids = torch.tensor([chat_prefix + out[0].token_ids])
    with torch.inference_mode():
        logits = hf_engine.model(ids).logits[0, len(chat_prefix) - 1 : -1]
    assert logits.argmax(-1).tolist() == out[0].token_ids


def test_update_weights_changes_the_policy_in_place(hf_engine, chat_prefix) -> None:
    # Zero input/output embeddings: every hidden state and logit becomes 0, so the policy is uniform.
    saved = {k: v.detach().clone() for k, v in hf_engine.model.state_dict().items()
             if "embed_tokens" in k or "lm_head" in k}
    try:
        hf_engine.update_weights((k, torch.zeros_like(v)) for k, v in saved.items())
        segment = hf_engine.generate([chat_prefix], SamplingParams(max_tokens=3, seed=0))[0][0]
        vocab = hf_engine.model.config.vocab_size
        assert segment.logprobs == pytest.approx([-math.log(vocab)] * 3, abs=1e-4)
        assert segment.entropies == pytest.approx([math.log(vocab)] * 3, abs=1e-4)
        with pytest.raises(KeyError, match="not a parameter"):
            hf_engine.update_weights([("no.such.weight", torch.zeros(1))])
    finally:
        hf_engine.update_weights(saved.items())
    greedy = hf_engine.generate([chat_prefix], SamplingParams(temperature=0, max_tokens=2))[0][0]
    assert greedy.logprobs[0] > -5  # the real policy is back


def test_empty_prefix_and_bad_n_are_rejected(hf_engine) -> None:
    with pytest.raises(ValueError, match="empty"):
        hf_engine.generate([[]], SamplingParams(max_tokens=1))
    with pytest.raises(ValueError, match="n must be"):
        hf_engine.generate([[1]], SamplingParams(max_tokens=1), n=0)
