"""Our model forwards use only the installed transformers' current arguments: no deprecation notice per rollout."""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from aepo_agent.engines import SamplingParams  # noqa: E402
from aepo_agent.engines.hf_engine import HFEngine, cache_argument  # noqa: E402
from aepo_agent.rollout.trajectory import RolloutRow  # noqa: E402
from aepo_agent.trainer.batch import collate, policy_logprobs  # noqa: E402

DEPRECATION_WORDS = ("deprecat", "will be removed")


class _ByteTokenizer:
    """Bytes as token ids (vocab 256, EOS 0): enough tokenizer for the engine's bookkeeping."""

    eos_token_id = 0
    pad_token_id = 0

    def __len__(self) -> int:
        return 256

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return bytes(ids).decode(errors="replace")


def _tiny_llama() -> Any:
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _capture() -> Iterator[list[str]]:
    """Every warning (``warnings.warn``, shown always) and every transformers log record, as text.

    transformers' logger does not propagate to the root (so caplog misses it) and its ``warning_once`` is an
    ``lru_cache`` shared by the process: the cache is cleared so a notice an earlier test triggered shows again.
    """
    from transformers.utils import logging as hf_logging

    for name in ("warning_once", "info_once"):
        cached = getattr(logging.Logger, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()
    handler = _Records()
    root = hf_logging.get_logger("transformers")
    root.addHandler(handler)
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    messages: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
            messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        hf_logging.set_verbosity(previous)
        root.removeHandler(handler)
        messages.extend(handler.messages)


def _deprecations(messages: list[str]) -> list[str]:
    return [m for m in messages if any(word in m.lower() for word in DEPRECATION_WORDS)]


def test_hf_engine_generate_and_stream_emit_no_deprecation() -> None:
    engine = HFEngine(_tiny_llama(), tokenizer=_ByteTokenizer(), max_batch=4)
    prefixes = [list(b"hello there"), list(b"hello"), list(b"a different prompt")]
    params = SamplingParams(temperature=0.8, max_tokens=6, seed=1)
    try:
        with _capture() as messages:
            out = engine.generate(prefixes, params, n=2)  # prefill (shared spans) + decode
            again = engine.generate([prefixes[0] + out[0][0].token_ids], params)  # reuses kept KV
            stream = engine.stream(seed=2)
            stream.submit(0, prefixes[2], params)
            ended: list[Any] = []
            while not ended:
                ended = stream.collect()
    finally:
        engine.close()
    assert all(len(segment.token_ids) >= 1 for group in out + again for segment in group)
    assert engine.stats.decode_forwards > 0
    assert _deprecations(messages) == [], messages


def _row(prompt: list[int], response: list[int]) -> RolloutRow:
    n = len(response)
    return RolloutRow(group_id=0, task_id="t", traj_id=0, parent_id=None, branch_step=None, prompt_ids=prompt,
                      response_ids=response, loss_mask=[1] * n, old_logprobs=[0.0] * n, entropies=[0.0] * n,
                      segment_ids=[1] * n, reward=0.0, reward_components={}, num_tool_calls=0, finish="stop")


def test_policy_logprobs_emits_no_deprecation() -> None:
    batch = collate([_row(list(b"prompt"), list(b"answer")), _row(list(b"p"), list(b"ok"))], pad_id=0)
    model = _tiny_llama()
    with _capture() as messages:
        logp, ent = policy_logprobs(model, batch)
    assert logp.shape == (2, 6) and ent is not None
    assert _deprecations(messages) == [], messages


def test_the_capture_sees_both_channels() -> None:
    """The check above is not vacuous: a FutureWarning and a transformers ``warning_once`` are both caught."""
    from transformers.utils import logging as hf_logging

    with _capture() as messages:
        warnings.warn("`a` is deprecated", FutureWarning, stacklevel=1)
        hf_logging.get_logger("transformers.aepo_test").warning_once("`b` is deprecated")
    assert len(_deprecations(messages)) == 2, messages


def test_cache_argument_is_read_off_the_forward_signature() -> None:
    class Old:
        def forward(self, input_ids: Any = None, past_key_values: Any = None, **kwargs: Any) -> None: ...

    new_api = "cache" in inspect.signature(transformers.LlamaForCausalLM.forward).parameters
    assert cache_argument(_tiny_llama()) == ("cache" if new_api else "past_key_values")
    assert cache_argument(Old()) == "past_key_values"
