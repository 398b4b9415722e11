"""Fixtures for trainer tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def tiny_model() -> Callable[[], Any]:
    """A factory of one seeded two-layer Llama (vocab 256): the same initial weights on every call."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    def make() -> Any:
        cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(cfg)

    return make
