"""Transformers engine: batched sampling with exact entropies, prefilling each shared prefix span once and
keeping each sequence's KV for the next call (a rollout's next round prefills only the new tool result)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from aepo_agent.engines.base import SamplingParams, Segment, validate_prefixes
from aepo_agent.engines.entropy import token_entropy
from aepo_agent.engines.kv_store import PrefixKVStore
from aepo_agent.engines.prefix_tree import prefill_levels
from aepo_agent.engines.stops import StopChecker

if TYPE_CHECKING:
    from aepo_agent.engines.hf_stream import HFSegmentStream


@dataclass
class EngineStats:
    """Counters of work done, for tests and logs: real (non-pad) prefill tokens, decode steps, samples, and
    context tokens whose KV came from the previous call instead of a prefill."""

    prefill_tokens: int = 0
    reused_tokens: int = 0
    prefill_forwards: int = 0
    decode_forwards: int = 0
    generated_tokens: int = 0


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def token_presence(rows: list[list[int]], vocab: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A (rows, vocab) bool mask of the token ids each row holds, built by one scatter of a padded index tensor
    (ids outside the vocab are ignored): the per-row token sets a repetition penalty needs."""
    width = max((len(row) for row in rows), default=0)
    index = torch.full((len(rows), max(width, 1)), vocab, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            index[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    index = index.masked_fill((index < 0) | (index > vocab), vocab)
    mask = torch.zeros((len(rows), vocab + 1), dtype=torch.bool, device=device)
    mask.scatter_(1, index.to(device), True)
    return mask[:, :vocab].contiguous()


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalize every token a row already holds as vLLM and transformers do: positive logits are divided by
    ``penalty``, negative ones multiplied (so > 1 makes a seen token less likely whatever its sign)."""
    if penalty == 1.0:
        return logits
    return torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)


def sample_tokens(logprobs: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row from temperature-scaled log-probs after the top-k / top-p cut (argmax if greedy)."""
    if params.temperature == 0:
        return logprobs.argmax(-1)
    scores = logprobs
    if params.top_k > 0 and params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = sorted_scores.softmax(-1)
        drop = probs.cumsum(-1) - probs > params.top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    # Exponential race (argmax p / E, E ~ Exp(1)) samples from p and is much faster than multinomial on CPU.
    noise = torch.empty_like(scores).exponential_(1.0, generator=generator)
    return (scores.softmax(-1) / noise).argmax(-1)


def cache_argument(model: Any) -> str:
    """The name under which ``model.forward`` takes its KV cache: ``cache`` in current transformers (5.x renamed
    ``past_key_values``, which now warns on every call), ``past_key_values`` in older ones; read off the
    signature, not the version."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _plain_kv_cache(model: Any) -> bool:
    """Whether every layer of the model's dynamic cache is a full-length DynamicLayer (no sliding window, no
    indexer): only then is a sequence's KV the same whatever else was in its batch, so it can be kept."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = DynamicCache(config=model.config).layers
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class HFEngine:
    """Engine over a transformers causal LM: custom decode loop, exact entropy, radix-tree prefix prefill.

    ``reuse_kv`` keeps the KV of every sequence a call ends with until the next call (memory: that call's
    contexts), so prefixes extending or sharing them skip their prefill; in-place weight changes drop it.
    """

    entropy_estimator = "exact"
    shares_weights = True  # runs the module it was given: a trainer updating that module needs no sync

    def __init__(self, model_or_path: Any, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_batch: int = 64, tokenizer: Any = None, reuse_kv: bool = True,
                 stream_exit_fraction: float = 0.5) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if isinstance(model_or_path, str | os.PathLike):
            from aepo_agent.models import resolve_model

            path = resolve_model(model_or_path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
        else:
            model = model_or_path
            if tokenizer is None:
                raise TypeError("HFEngine(model, ...) with a model object needs tokenizer=...; or pass a model path")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._tokenizer = tokenizer
        self.max_batch = max_batch
        self.stream_exit_fraction = stream_exit_fraction
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else min(self.eos_ids, default=0)
        self.stats = EngineStats()
        self._plain_cache = _plain_kv_cache(self.model)
        self._cache_arg = cache_argument(self.model)
        self.reuse_kv = bool(reuse_kv) and self._plain_cache
        self._store = PrefixKVStore()
        self._weights_version = -1

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        """Sample `n` continuations per prefix; identical or overlapping prefixes are prefilled once per chunk."""
        validate_prefixes(prefixes, n)
        generator = self._generator(params.seed)
        order = sorted(range(len(prefixes)), key=lambda i: prefixes[i])
        rows = [(i, k) for i in order for k in range(n)]
        out: list[list[Segment | None]] = [[None] * n for _ in prefixes]
        with self._call():
            for start in range(0, len(rows), self.max_batch):
                chunk = rows[start : start + self.max_batch]
                segments = self._generate_rows([prefixes[i] for i, _ in chunk], params, generator)
                for (i, k), segment in zip(chunk, segments, strict=True):
                    out[i][k] = segment
        return [[s for s in group if s is not None] for group in out]

    def stream(self, seed: int | None = None, exit_fraction: float | None = None) -> HFSegmentStream:
        """A continuous-batching request stream over this engine (see ``hf_stream.HFSegmentStream``); by default
        a call ends once ``stream_exit_fraction`` of its rows ended."""
        from aepo_agent.engines.hf_stream import HFSegmentStream

        fraction = self.stream_exit_fraction if exit_fraction is None else exit_fraction
        return HFSegmentStream(self, seed=seed, exit_fraction=fraction)

    def _generator(self, seed: int | None) -> torch.Generator | None:
        return None if seed is None else torch.Generator(device=self.device).manual_seed(seed)

    @contextmanager
    def _call(self) -> Iterator[None]:
        """One engine call: drop KV kept under older weights, run without autograd, keep this call's KV after."""
        if self.model is None:
            raise RuntimeError("HFEngine.generate called after close()")
        if self.reuse_kv:
            version = sum(p._version for p in self.model.parameters())  # bumped by every in-place update
            if version != self._weights_version:
                self._store.clear()
                self._weights_version = version
        try:
            with torch.inference_mode():
                yield
        except BaseException:
            self._store.clear()
            raise
        self._store.commit()

    def clear_prefix_cache(self) -> None:
        """Drop the KV kept from the last call (a rollout calls this when it ends, freeing the memory)."""
        self._store.clear()

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> Any:
        return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1, **{self._cache_arg: cache})

    def _prefill(self, heads: list[list[int]]) -> tuple[Any, torch.Tensor, list[int]]:
        """Run each distinct span of `heads` once, on top of KV kept from the last call where a head starts with a
        kept sequence; return the cache, its 2D mask and each head's cache row."""
        from transformers import DynamicCache

        from aepo_agent.engines.growing_cache import growing_cache

        # Plain full-attention layers decode into a buffer with reserved room (see growing_cache).
        cache = growing_cache(self.model.config) if self._plain_cache else DynamicCache(config=self.model.config)
        hits = [self._store.longest_hit(h) if self.reuse_kv else (-1, 0) for h in heads]
        # A marker token per distinct cached head keeps rows with different KV pasts apart in the radix tree.
        marker_of: dict[tuple[int, int], int] = {}
        seqs = []
        for head, (index, length) in zip(heads, hits, strict=True):
            marker = marker_of.setdefault((index, length) if length else (-1, 0), -1 - len(marker_of))
            seqs.append([marker, *head[length:]])
        root_of = {marker: hit for hit, marker in marker_of.items()}
        levels, row_of = prefill_levels(seqs)
        mask = torch.zeros((len(levels[0]), 0), dtype=torch.long, device=self.device)
        shift: list[int] = []  # per cache row: sequence index d (after the marker) sits at position shift + d
        for depth, level in enumerate(levels):
            if depth == 0:
                roots = [root_of[entry.tokens[0]] for entry in level]
                if any(length for _, length in roots):
                    layers, mask = self._store.gather(roots, self.device)
                    for layer, (keys, values) in enumerate(layers):
                        cache.update(keys, values, layer)
                    self.stats.reused_tokens += sum(length for _, length in roots)
                shift = [length - 1 for _, length in roots]
                spans = [(entry.tokens[1:], 1) for entry in level]
            else:
                index = torch.tensor([e.parent for e in level], device=self.device)
                if mask.shape[1] > 0:
                    cache.reorder_cache(index)
                mask = mask.index_select(0, index)
                shift = [shift[e.parent] for e in level]  # type: ignore[index]
                spans = [(entry.tokens, entry.start) for entry in level]
            width = max(len(tokens) for tokens, _ in spans)
            if width == 0:
                continue
            ids = torch.full((len(level), width), self.pad_id, dtype=torch.long)
            pos = torch.zeros((len(level), width), dtype=torch.long)
            new_mask = torch.zeros((len(level), width), dtype=torch.long)
            for row, (tokens, start) in enumerate(spans):
                if tokens:
                    first = shift[row] + start
                    ids[row, width - len(tokens) :] = torch.tensor(tokens)
                    pos[row, width - len(tokens) :] = torch.arange(first, first + len(tokens))
                    new_mask[row, width - len(tokens) :] = 1
            past = mask.shape[1]
            mask = torch.cat([mask, new_mask.to(self.device)], dim=1)
            filled = [row for row, (tokens, _) in enumerate(spans) if tokens]
            if len(filled) < len(level) and self._plain_cache:
                self._forward_rows(filled, ids.to(self.device), mask, pos.to(self.device), cache, past)
            else:
                self._forward(ids.to(self.device), mask, pos.to(self.device), cache)
            self.stats.prefill_forwards += 1
            self.stats.prefill_tokens += int(new_mask.sum())
        return cache, mask, row_of

    def _forward_rows(self, rows: list[int], ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                      cache: Any, past: int) -> None:
        """Prefill only the cache rows that have new tokens (a continuous batch resumes most rows with none) and
        give the others masked empty columns: the forward does not pay for padding rows."""
        from transformers import DynamicCache

        index = torch.tensor(rows, device=self.device)
        sub = DynamicCache(config=self.model.config)
        if past:
            for i, layer in enumerate(cache.layers):
                sub.update(layer.keys.index_select(0, index), layer.values.index_select(0, index), i)
        self._forward(ids.index_select(0, index), mask.index_select(0, index), positions.index_select(0, index), sub)
        width = ids.shape[1]
        for i, layer in enumerate(sub.layers):
            keys, values = layer.keys[:, :, -width:], layer.values[:, :, -width:]
            full_keys = keys.new_zeros((ids.shape[0], *keys.shape[1:]))
            full_values = values.new_zeros((ids.shape[0], *values.shape[1:]))
            full_keys.index_copy_(0, index, keys)
            full_values.index_copy_(0, index, values)
            cache.update(full_keys, full_values, i)

    def _keep(self, cache: Any, mask: torch.Tensor, row: int, prefix: list[int], sampled: list[int]) -> None:
        """Store the KV of cache row `row`: it holds `prefix + sampled` minus the last sampled token (never fed)."""
        if not self.reuse_kv:
            return
        tokens = prefix + sampled[:-1]
        columns = mask[row].nonzero().squeeze(1)
        if columns.numel() != len(tokens):
            return  # layout not understood: never store KV under the wrong tokens
        layers = [(layer.keys[row].index_select(1, columns), layer.values[row].index_select(1, columns))
                  for layer in cache.layers]
        self._store.add(tokens, layers)

    def _generate_rows(self, prefixes: list[list[int]], params: SamplingParams, generator: torch.Generator | None,
                       limits: list[int] | None = None, history: list[list[int]] | None = None,
                       exit_after: int | None = None) -> list[Segment]:
        """Decode every prefix until a stop, EOS or its limit (``limits[i]`` tokens, default ``params.max_tokens``).

        A repetition penalty applies to the logits before temperature, top-k/top-p and the greedy argmax, over the
        ids of ``prefixes[i]`` and of the tokens sampled so far; the reported logprobs and entropies are those of
        the penalized, temperature-scaled distribution (before the top-k/top-p cut, as without a penalty), which
        is what vLLM's ``processed_logprobs`` reports too. With penalty 1.0 nothing changes.

        ``history[i]``: tokens of the same segment sampled by earlier calls, so a stop string spanning the call
        boundary is still found; a finished row's text and stop string cover ``history[i]`` too (its ids do not). ``exit_after``: return once that many rows finished while others still run; those
        come back with ``meta["preempted"]`` and their KV kept, so the next call resumes them without a prefill.
        """
        from aepo_agent.engines.growing_cache import reserve

        count = len(prefixes)
        limits = limits if limits is not None else [params.max_tokens] * count
        history = history if history is not None else [[] for _ in range(count)]
        distinct: dict[tuple[int, ...], int] = {}
        head_of = [distinct.setdefault(tuple(p[:-1]), len(distinct)) for p in prefixes]
        cache, mask, row_of = self._prefill([list(h) for h in distinct])
        index = torch.tensor([row_of[h] for h in head_of], device=self.device)
        if mask.shape[1] > 0:
            cache.reorder_cache(index)
        mask = mask.index_select(0, index)
        reserve(cache, max(limits))  # decode writes in place: no copy of the whole cache per token

        temperature = params.temperature if params.temperature > 0 else 1.0
        penalty = params.repetition_penalty
        seen: torch.Tensor | None = None  # (active rows, vocab): tokens of prefix + sampled, when penalized
        checker = StopChecker(self._tokenizer, params.stop)
        tokens: list[list[int]] = [[] for _ in range(count)]
        logps: list[list[float]] = [[] for _ in range(count)]
        ents: list[list[float]] = [[] for _ in range(count)]
        reasons: list[str] = ["length"] * count
        active = list(range(count))
        finished = 0
        current = torch.tensor([p[-1] for p in prefixes], device=self.device)
        positions = torch.tensor([len(p) - 1 for p in prefixes], device=self.device)
        for _ in range(max(limits)):
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=self.device)], dim=1)
            logits = self._forward(current[:, None], mask, positions[:, None], cache).logits[:, -1, :].float()
            self.stats.decode_forwards += 1
            if penalty != 1.0:
                if seen is None:
                    seen = token_presence([prefixes[row] + tokens[row] for row in active], logits.shape[-1],
                                          self.device)
                logits = apply_repetition_penalty(logits, seen, penalty)
            logprobs = torch.log_softmax(logits / temperature, dim=-1)
            entropy = token_entropy(logprobs)
            chosen = sample_tokens(logprobs, params, generator)
            if seen is not None:
                seen.scatter_(1, chosen[:, None], True)
            chosen_lp = logprobs.gather(1, chosen[:, None]).squeeze(1)
            keep = []
            for j, (row, tok, lp, ent) in enumerate(zip(active, chosen.tolist(), chosen_lp.tolist(),
                                                         entropy.tolist(), strict=True)):
                tokens[row].append(tok)
                logps[row].append(lp)
                ents[row].append(ent)
                if tok in self.eos_ids:
                    reasons[row] = "eos"
                elif checker.completed(history[row] + tokens[row][-checker.window :]):
                    reasons[row] = "stop"
                elif len(tokens[row]) < limits[row]:
                    keep.append(j)
            self.stats.generated_tokens += len(active)
            finished += len(active) - len(keep)
            for j in sorted(set(range(len(active))) - set(keep)):
                self._keep(cache, mask, j, prefixes[active[j]], tokens[active[j]])
            if not keep:
                active = []
                break
            if len(keep) < len(active):
                keep_index = torch.tensor(keep, device=self.device)
                cache.reorder_cache(keep_index)
                mask = mask.index_select(0, keep_index)
                chosen = chosen.index_select(0, keep_index)
                seen = seen.index_select(0, keep_index) if seen is not None else None
                positions = positions.index_select(0, keep_index)
                active = [active[j] for j in keep]
            if exit_after is not None and finished >= exit_after:
                break
            current = chosen
            positions = positions + 1
        for j, row in enumerate(active):  # preempted: resumed by the next call from the KV kept here
            self._keep(cache, mask, j, prefixes[row], tokens[row])
        preempted = set(active)
        segments = []
        for row in range(count):
            if row in preempted:
                segments.append(Segment(token_ids=tokens[row], logprobs=logps[row], entropies=ents[row], text="",
                                        finish_reason="length", meta={"preempted": True}))
                continue
            text, stop = checker.finish(history[row] + tokens[row])
            reason = reasons[row] if reasons[row] != "stop" or stop is not None else "length"
            segments.append(Segment(token_ids=tokens[row], logprobs=logps[row], entropies=ents[row], text=text,
                                    finish_reason=reason, stop_string=stop if reason == "stop" else None))  # type: ignore[arg-type]
        return segments

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy trainer tensors into the model in place, by HF parameter/buffer name."""
        if self.model is None:
            raise RuntimeError("HFEngine.update_weights called after close()")
        self._store.clear()
        state = self.model.state_dict(keep_vars=True)
        with torch.no_grad():
            for name, tensor in named_tensors:
                target = state.get(name)
                if target is None:
                    raise KeyError(f"update_weights: {name!r} is not a parameter of {type(self.model).__name__}; "
                                   "send names from model.state_dict() of the same architecture")
                if target.shape != tensor.shape:
                    raise ValueError(f"update_weights: {name!r} has shape {tuple(tensor.shape)}, "
                                     f"the engine expects {tuple(target.shape)}")
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self._store.clear()
        self.model = None
