"""Fixtures of the eval tests: the toy envs registered, a tiny seeded Llama."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eval_toys import register_toys


@pytest.fixture(autouse=True, scope="session")
def _toys() -> None:
    register_toys()


@pytest.fixture
def tiny_llama() -> Callable[..., Any]:
    """A factory of one seeded two-layer Llama (the same weights on every call); vocab 256 by default."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    def make(vocab_size: int = 256) -> Any:
        cfg = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=4096)
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(cfg).eval()

    return make
