"""Repetition penalty: the helpers against hand computations, and HFEngine greedy/sampled decoding on a tiny Llama."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from char_tokenizer import CharTokenizer

from aepo_agent.engines import SamplingParams
from aepo_agent.engines.hf_engine import HFEngine, apply_repetition_penalty, token_entropy, token_presence
from aepo_agent.engines.stream import sampling_key

PROMPTS = ["abc", "zz", "hi there"]  # the tiny model's greedy continuations of these repeat themselves


def _tiny_llama():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def engine():
    engine = HFEngine(_tiny_llama(), tokenizer=CharTokenizer(), max_batch=8)
    yield engine
    engine.close()


def _reference(model, prefix: list[int], steps: int, penalty: float, temperature: float = 1.0,
               forced: list[int] | None = None) -> tuple[list[int], list[float], list[float]]:
    """Greedy decode (or score ``forced`` tokens) by full forward passes, penalizing by hand with Python sets."""
    ids = list(prefix)
    chosen, logps, ents = [], [], []
    for step in range(steps):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].float()
        for t in set(ids):
            logits[t] = logits[t] / penalty if logits[t] > 0 else logits[t] * penalty
        logprobs = torch.log_softmax(logits / temperature, -1)
        tok = int(logprobs.argmax()) if forced is None else forced[step]
        chosen.append(tok)
        logps.append(float(logprobs[tok]))
        ents.append(float(token_entropy(logprobs)))
        ids.append(tok)
    return chosen, logps, ents


def test_sampling_params_validate_the_penalty_and_keep_it_in_the_batch_key() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="repetition_penalty"):
            SamplingParams(repetition_penalty=bad)
    base = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.1)
    assert sampling_key(base) != sampling_key(replace(base, repetition_penalty=1.0))
    assert sampling_key(base) == sampling_key(replace(base, max_tokens=7, seed=3))


def test_penalty_helpers_match_a_hand_computation() -> None:
    seen = token_presence([[1, 3, 3], [], [0, 9]], vocab=5)  # 9 is outside the vocab: ignored
    assert seen.tolist() == [[False, True, False, True, False], [False] * 5, [True, False, False, False, False]]
    logits = torch.tensor([[2.0, -2.0, 0.5, -0.5, 1.0], [2.0, -2.0, 0.5, -0.5, 1.0], [2.0, -2.0, 0.5, -0.5, 1.0]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[2.0, -4.0, 0.5, -1.0, 1.0], [2.0, -2.0, 0.5, -0.5, 1.0], [1.0, -2.0, 0.5, -0.5, 1.0]]
    assert apply_repetition_penalty(logits, seen, 1.0) is logits


def test_penalty_one_leaves_greedy_decoding_unchanged(engine) -> None:
    tok = engine.tokenizer
    prefixes = [tok.encode(p) for p in PROMPTS]
    plain = engine.generate(prefixes, SamplingParams(temperature=0, max_tokens=30))
    one = engine.generate(prefixes, SamplingParams(temperature=0, max_tokens=30, repetition_penalty=1.0))
    for prefix, a, b in zip(prefixes, plain, one, strict=True):
        assert a[0].token_ids == b[0].token_ids == _reference(engine.model, prefix, len(a[0].token_ids), 1.0)[0]
        assert a[0].logprobs == b[0].logprobs and a[0].entropies == b[0].entropies


def test_a_large_penalty_stops_greedy_repetition_and_matches_the_hand_penalty(engine) -> None:
    tok = engine.tokenizer
    prefixes = [tok.encode(p) for p in PROMPTS]
    plain = engine.generate(prefixes, SamplingParams(temperature=0, max_tokens=30))
    assert all(any(t in prefix + s[0].token_ids[:i] for i, t in enumerate(s[0].token_ids))
               for prefix, s in zip(prefixes, plain, strict=True))  # unpenalized, each one repeats a token
    out = engine.generate(prefixes, SamplingParams(temperature=0, max_tokens=30, repetition_penalty=5.0))
    for prefix, group in zip(prefixes, out, strict=True):
        ids = group[0].token_ids
        assert len(ids) == 30
        assert not any(t in prefix + ids[:i] for i, t in enumerate(ids))
        ref_ids, ref_lp, ref_ent = _reference(engine.model, prefix, len(ids), 5.0)
        assert ids == ref_ids
        # Reported logprobs/entropies are of the penalized distribution (vLLM's processed_logprobs).
        assert group[0].logprobs == pytest.approx(ref_lp, abs=1e-4)
        assert group[0].entropies == pytest.approx(ref_ent, abs=1e-4)


def test_sampled_logprobs_are_of_the_penalized_temperature_scaled_distribution(engine) -> None:
    prefix = engine.tokenizer.encode("abc")
    params = SamplingParams(temperature=0.7, max_tokens=12, repetition_penalty=1.3, seed=1)
    for segment in engine.generate([prefix, prefix[:2]], params, n=2)[0]:
        _, ref_lp, ref_ent = _reference(engine.model, prefix, len(segment.token_ids), 1.3, 0.7, segment.token_ids)
        assert segment.logprobs == pytest.approx(ref_lp, abs=1e-4)
        assert segment.entropies == pytest.approx(ref_ent, abs=1e-4)


def test_the_stream_penalizes_tokens_of_earlier_pieces_too(engine) -> None:
    tok = engine.tokenizer
    prefixes = [tok.encode(p) for p in PROMPTS]
    params = [SamplingParams(temperature=0, max_tokens=m, repetition_penalty=5.0) for m in (4, 30, 30)]
    batch = [engine.generate([p], q)[0][0] for p, q in zip(prefixes, params, strict=True)]
    stream = engine.stream(exit_fraction=0.3)  # the long requests are resumed across calls
    for rid, (p, q) in enumerate(zip(prefixes, params, strict=True)):
        stream.submit(rid, p, q)
    got: dict[int, object] = {}
    while len(got) < 3:
        got.update(stream.collect())
    for rid, ref in enumerate(batch):
        assert got[rid].token_ids == ref.token_ids
