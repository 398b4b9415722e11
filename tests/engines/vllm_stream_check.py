"""VLLMEngine's continuous stream and a continuous AEPO rollout on the real SmolLM2; prints one JSON line of checks
(run by test_engines_vllm.py)."""

from __future__ import annotations

import json
import os
import sys

PREFIX = "<python>print(6 * 7)</python>"


def main(model_dir: str) -> dict:
    import gymnasium as gym
    import torch
    from transformers import AutoModelForCausalLM
    from vllm_check import hf_scores

    import aepo_envs  # noqa: F401
    from aepo_agent.engines import SamplingParams
    from aepo_agent.engines.vllm_engine import VLLMEngine
    from aepo_agent.rollout import RolloutConfig, TreeRollout

    # As under `aepo train`: vLLM asks torch for 1 thread "for serving" unless OMP_NUM_THREADS is set; its CPU
    # worker refuses the change after binding threads, so the trainer in this process keeps its threads.
    os.environ.pop("OMP_NUM_THREADS", None)
    torch.set_num_threads(2)
    engine = VLLMEngine(model_dir, enforce_eager=True, max_model_len=1024, logprobs_k=10, dtype="float32")
    threads_after = torch.get_num_threads()
    tok = engine.tokenizer
    prompts = [list(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False))
               for q in ("Hi", "Name three colors.", "Why is the sky blue?")]
    limits = [4, 24, 12]
    batch = [engine.generate([p], SamplingParams(temperature=0, max_tokens=m))[0][0].token_ids
             for p, m in zip(prompts, limits, strict=True)]
    stream = engine.stream(seed=0)
    for rid, (p, m) in enumerate(zip(prompts, limits, strict=True)):
        stream.submit(rid, p, SamplingParams(temperature=0, max_tokens=m))
    order, got = [], {}
    while len(got) < 3:
        ended = stream.collect()
        order.append(sorted(rid for rid, _ in ended))
        got.update(ended)

    envs = [gym.make("AEPO/CalcQA-v0", max_turns=4) for _ in range(2)]
    cfg = RolloutConfig(mode="arpo", n=4, initial_rollouts=2, branch_probability=1.0,
                        branch_entropy_source="after_tool", max_response_tokens=96, segment_max_tokens=40, seed=3,
                        response_prefix=PREFIX, schedule="continuous")
    result = TreeRollout(engine, cfg).run(envs, [{"index": 0}, {"index": 1}])
    for env in envs:
        env.close()
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    gap = 0.0
    for row in result.rows:
        ref, _ = hf_scores(hf, row.prompt_ids, row.response_ids)
        mask = torch.tensor(row.loss_mask, dtype=torch.bool)
        gap = max(gap, (ref[mask] - torch.tensor(row.old_logprobs)[mask]).abs().max().item())
    return {
        "stream_equal_batch": [got[i].token_ids == batch[i] for i in range(3)],
        "collect_order": order,
        "rollout_continuous": result.stats["rollout/continuous"],
        "group_sizes": [sum(r.group_id == g for r in result.rows) for g in (0, 1)],
        "branches_per_tree": result.stats["rollout/branches_per_tree"],
        "rollout_logprob_gap_vs_hf": gap,
        "torch_threads_after_engine": threads_after,
    }


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    print("AEPO_VLLM_STREAM_CHECK " + json.dumps(main(sys.argv[1])))
