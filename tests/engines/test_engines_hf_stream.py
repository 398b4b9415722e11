"""HFEngine's continuous-batching stream on the real SmolLM2: segments equal the batch engine's, stitched whole."""

from __future__ import annotations

import pytest
import torch

from aepo_agent.engines import SamplingParams
from aepo_agent.engines.hf_engine import EngineStats, token_entropy
from aepo_agent.engines.stream import RoundStream, SegmentStream, make_stream


def _prompts(engine) -> list[list[int]]:
    questions = ["Hi", "Name three colors.", "Why is the sky blue? Explain in detail.", "Count to five."]
    return [list(engine.tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                      tokenize=True, return_dict=False)) for q in questions]


def _drain(stream, count: int) -> tuple[dict[int, object], list[list[int]]]:
    """Collect until ``count`` requests ended; also record which requests each collect returned."""
    got: dict[int, object] = {}
    calls: list[list[int]] = []
    while len(got) < count:
        ended = stream.collect()
        calls.append([rid for rid, _ in ended])
        got.update(ended)
    return got, calls


def test_greedy_stream_segments_equal_one_batch_call(hf_engine) -> None:
    prompts = _prompts(hf_engine)
    limits = [5, 40, 40, 12]
    batch = [hf_engine.generate([p], SamplingParams(temperature=0, max_tokens=m))[0][0]
             for p, m in zip(prompts, limits, strict=True)]
    stream = hf_engine.stream(exit_fraction=0.25)  # a call ends at the first finished row
    assert isinstance(stream, SegmentStream)
    for rid, (p, m) in enumerate(zip(prompts, limits, strict=True)):
        stream.submit(rid, p, SamplingParams(temperature=0, max_tokens=m))
    got, calls = _drain(stream, 4)
    assert len(calls) > 1 and calls[0] == [0]  # the 5-token request came back alone, first
    for rid, ref in enumerate(batch):
        seg = got[rid]
        assert seg.token_ids == ref.token_ids and seg.text == ref.text and seg.finish_reason == ref.finish_reason
        assert seg.logprobs == pytest.approx(ref.logprobs, abs=1e-4)
        assert seg.entropies == pytest.approx(ref.entropies, abs=1e-4)


def test_resumed_requests_reuse_their_kv_and_new_requests_join_the_batch(hf_engine) -> None:
    prompts = _prompts(hf_engine)
    hf_engine.stats = EngineStats()
    stream = hf_engine.stream(exit_fraction=0.25)
    stream.submit(0, prompts[0], SamplingParams(temperature=0, max_tokens=3))
    stream.submit(1, prompts[2], SamplingParams(temperature=0, max_tokens=30))
    first = stream.collect()
    assert [rid for rid, _ in first] == [0]
    prefilled = hf_engine.stats.prefill_tokens
    # A request joining while request 1 is still running: its own prompt is prefilled, request 1's is not.
    stream.submit(2, prompts[1], SamplingParams(temperature=0, max_tokens=30))
    rest, _ = _drain(stream, 2)
    resumed_prefill = hf_engine.stats.prefill_tokens - prefilled
    assert resumed_prefill <= len(prompts[1]) + 1  # request 1 resumed from kept KV (its own tokens: none)
    assert hf_engine.stats.reused_tokens >= len(prompts[2])
    ref = hf_engine.generate([prompts[2]], SamplingParams(temperature=0, max_tokens=30))[0][0]
    assert rest[1].token_ids == ref.token_ids
    hf_engine.clear_prefix_cache()


def test_stop_string_split_across_calls_ends_the_segment(hf_engine) -> None:
    prompt = _prompts(hf_engine)[1]
    ref = hf_engine.generate([prompt], SamplingParams(temperature=0, max_tokens=20))[0][0]
    stop = hf_engine.tokenizer.decode(ref.token_ids[8:11]).strip()  # text the greedy answer will produce
    assert stop
    expected = hf_engine.generate([prompt], SamplingParams(temperature=0, max_tokens=20, stop=(stop,)))[0][0]
    assert expected.finish_reason == "stop" and len(expected.token_ids) > 4
    stream = hf_engine.stream(exit_fraction=0.5)
    stream.submit(0, prompt, SamplingParams(temperature=0, max_tokens=20, stop=(stop,)))
    stream.submit(1, _prompts(hf_engine)[0], SamplingParams(temperature=0, max_tokens=4, stop=(stop,)))  # exits early
    got, calls = _drain(stream, 2)
    assert calls[0] == [1]  # request 0 was preempted after 4 tokens, before its stop string completed
    seg = got[0]
    assert seg.finish_reason == "stop" and seg.stop_string == stop and seg.text.endswith(stop)
    assert seg.token_ids == expected.token_ids


def test_requests_with_other_sampling_settings_wait_for_their_own_call(hf_engine) -> None:
    prompts = _prompts(hf_engine)
    stream = hf_engine.stream()
    stream.submit(0, prompts[0], SamplingParams(temperature=0, max_tokens=6))
    stream.submit(1, prompts[1], SamplingParams(temperature=0, max_tokens=6, stop=("zzz",)))
    assert [rid for rid, _ in stream.collect()] == [0]
    assert [rid for rid, _ in stream.collect()] == [1]
    with pytest.raises(RuntimeError, match="no submitted request"):
        stream.collect()


def test_sampled_stream_logprobs_and_entropies_are_exact(hf_engine) -> None:
    prompts = _prompts(hf_engine)
    stream = hf_engine.stream(seed=7, exit_fraction=0.25)
    for rid, p in enumerate(prompts):
        stream.submit(rid, p, SamplingParams(temperature=0.8, max_tokens=8 + 6 * rid))
    got, _ = _drain(stream, 4)
    for rid, p in enumerate(prompts):
        seg = got[rid]
        ids = torch.tensor([p + seg.token_ids])
        with torch.inference_mode():
            logits = hf_engine.model(ids).logits[0, len(p) - 1 : -1].float()
        logprobs = torch.log_softmax(logits / 0.8, dim=-1)
        ref_lp = logprobs.gather(1, torch.tensor(seg.token_ids)[:, None]).squeeze(1)
        assert seg.logprobs == pytest.approx(ref_lp.tolist(), abs=2e-4)
        assert seg.entropies == pytest.approx(token_entropy(logprobs).tolist(), abs=2e-4)


def test_make_stream_falls_back_to_rounds_without_an_engine_stream(hf_engine) -> None:
    class Batch:  # an engine with generate only
        def generate(self, prefixes, params, n=1):
            return hf_engine.generate(prefixes, params, n)

    stream, schedule = make_stream(Batch(), "continuous", seed=0)
    assert isinstance(stream, RoundStream) and schedule == "rounds"
    stream, schedule = make_stream(hf_engine, "continuous", seed=0)
    assert schedule == "continuous"
    with pytest.raises(ValueError, match="schedule"):
        make_stream(hf_engine, "async")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exit_fraction"):
        hf_engine.stream(exit_fraction=0)
