"""Run VLLMEngine on the real SmolLM2 and print one JSON line of checks (run by test_engines_vllm.py)."""

from __future__ import annotations

import json
import math
import sys


def hf_scores(hf, prefix: list[int], token_ids: list[int]):
    """The HF model's log-prob of each sampled token and its exact entropy at that position."""
    import torch

    with torch.inference_mode():
        logprobs = torch.log_softmax(hf(torch.tensor([prefix + token_ids])).logits[0, len(prefix) - 1 : -1].float(), -1)
    return logprobs.gather(1, torch.tensor(token_ids)[:, None]).squeeze(1), -(logprobs.exp() * logprobs).sum(-1)


def main(model_dir: str) -> dict:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from aepo_agent.engines import SamplingParams
    from aepo_agent.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(model_dir, enforce_eager=True, max_model_len=1024, logprobs_k=10, dtype="float32")
    tok = engine.tokenizer
    prefix = list(tok.apply_chat_template([{"role": "user", "content": "Name three colors and explain why the sky is blue."}],
                                          add_generation_prompt=True, tokenize=True, return_dict=False))
    params = SamplingParams(max_tokens=16, stop=("e", "a"), seed=0)
    out = engine.generate([prefix, prefix], params, n=2)
    cached = engine.last_num_cached_tokens
    again = engine.generate([prefix, prefix], params, n=2)
    free = engine.generate([prefix, prefix], SamplingParams(max_tokens=8, seed=1), n=2)

    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lp_diff, bound_violation, stops = 0.0, 0.0, []
    for group in out:
        for seg in group:
            ref, exact = hf_scores(hf, prefix, seg.token_ids)
            lp_diff = max(lp_diff, (ref - torch.tensor(seg.logprobs)).abs().max().item())
            bound_violation = max(bound_violation, (torch.tensor(seg.entropies) - exact).max().item())
            full = tok.decode(seg.token_ids, skip_special_tokens=True)
            stops.append({"reason": seg.finish_reason, "stop": seg.stop_string, "text": seg.text, "full": full,
                          "before": tok.decode(seg.token_ids[:-1], skip_special_tokens=True),
                          "n_tokens": len(seg.token_ids), "n_lp": len(seg.logprobs), "n_ent": len(seg.entropies),
                          "min_entropy": min(seg.entropies)})

    # More prompt tokens than one scheduler step takes: vLLM would split a prefill over steps (chunked prefill),
    # which with seeded requests crashes on CPU (a CPU torch.Generator cannot rewind its offset).
    budget = engine.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    filler = tok.encode(" The quick brown fox jumps over the lazy dog." * 80, add_special_tokens=False)[:700]
    long_prompts = [prefix[:-5] + [filler[(i * 7 + j) % len(filler)] for j in range(700)] + prefix[-5:]
                    for i in range(budget // 700 + 2)]
    long_params = SamplingParams(max_tokens=4, seed=3)
    long_out = [[s.token_ids for s in g] for g in engine.generate(long_prompts, long_params, n=2)]
    long_again = [[s.token_ids for s in g] for g in engine.generate(long_prompts, long_params, n=2)]

    weights = load_file(f"{model_dir}/model.safetensors")
    engine.update_weights((k, torch.zeros_like(v)) for k, v in weights.items())
    zeroed = engine.generate([prefix], SamplingParams(max_tokens=3, seed=0))[0][0].logprobs
    engine.update_weights(weights.items())
    restored = engine.generate([prefix, prefix], params, n=2)
    # A policy update moves every weight, the (tied) embedding / LM head too: after the sync vLLM must sample
    # from the updated policy, not only from the layers it happens to re-pack.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05 * param.abs().mean())
    engine.update_weights(hf.named_parameters())
    synced = engine.generate([prefix], SamplingParams(max_tokens=16, seed=0))[0][0]
    synced_diff = (hf_scores(hf, prefix, synced.token_ids)[0] - torch.tensor(synced.logprobs)).abs().max().item()
    engine.close()
    ids = [[s.token_ids for s in g] for g in out]
    return {
        "group_sizes": [len(g) for g in out],
        "cached_tokens": cached,
        "deterministic": ids == [[s.token_ids for s in g] for g in again],
        "restored_equal": ids == [[s.token_ids for s in g] for g in restored],
        "distinct_samples": len({tuple(s.token_ids) for g in free for s in g}),
        "max_logprob_diff_vs_hf": lp_diff,
        "entropy_minus_exact_max": bound_violation,
        "segments": stops,
        "zeroed_logprobs": zeroed,
        "uniform_logprob": -math.log(hf.config.vocab_size),
        "estimator": engine.entropy_estimator,
        "long_prompt_tokens_vs_budget": [sum(len(p) for p in long_prompts), budget],
        "long_sizes": [len(g) for g in long_out],
        "long_deterministic": long_out == long_again,
        "synced_logprob_diff_vs_hf": synced_diff,
    }


if __name__ == "__main__":
    result = main(sys.argv[1])
    print("AEPO_VLLM_CHECK " + json.dumps(result))
