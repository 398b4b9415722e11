"""GrowingLayer: same keys/values as transformers' DynamicLayer, written in place into reserved room."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from aepo_agent.engines.growing_cache import GrowingLayer, growing_cache, reserve


def _steps(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 2, q, 4, generator=gen), torch.randn(3, 2, q, 4, generator=gen)) for q in (5, 1, 1, 3, 1)]


def test_updates_match_dynamic_layer_including_growth_past_capacity() -> None:
    grow, ref = GrowingLayer(), DynamicLayer()
    for keys, values in _steps():
        got, want = grow.update(keys, values), ref.update(keys, values)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert grow.get_seq_length() == ref.get_seq_length() == 11


def test_reserved_room_is_written_in_place() -> None:
    layer = GrowingLayer()
    first, *rest = _steps()
    layer.update(*first)
    layer.reserve(layer.length + 6)
    buffer = layer._keys_buf
    assert buffer is not None and buffer.shape[-2] == 11
    for keys, values in rest:
        layer.update(keys, values)
        assert layer._keys_buf is buffer  # no reallocation, no copy of earlier tokens
    assert layer.keys.data_ptr() == buffer.data_ptr()


def test_reorder_crop_and_reset_follow_dynamic_layer() -> None:
    grow, ref = GrowingLayer(), DynamicLayer()
    for keys, values in _steps(1):
        grow.update(keys, values)
        ref.update(keys, values)
    index = torch.tensor([2, 0, 0])
    grow.reorder_cache(index)
    ref.reorder_cache(index)
    assert torch.equal(grow.keys, ref.keys) and torch.equal(grow.values, ref.values)
    grow.crop(-4)
    ref.crop(-4)
    assert torch.equal(grow.keys, ref.keys) and grow.get_seq_length() == 7
    extra = (torch.ones(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))
    assert torch.equal(grow.update(*extra)[0], ref.update(*extra)[0])  # writes after a crop overwrite the tail
    with pytest.raises(ValueError, match="negative"):
        grow.crop(2)
    grow.reset()
    assert grow.get_seq_length() == 0 and not grow.is_initialized


def test_growing_cache_replaces_every_layer_and_reserve_sizes_them() -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(num_hidden_layers=3, hidden_size=16, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=32, vocab_size=50)
    cache = growing_cache(config)
    assert len(cache.layers) == 3 and all(isinstance(layer, GrowingLayer) for layer in cache.layers)
    for index in range(3):
        cache.update(torch.zeros(2, 1, 4, 8), torch.zeros(2, 1, 4, 8), index)
    reserve(cache, 10)
    assert [layer.capacity for layer in cache.layers] == [14, 14, 14]
    assert cache.get_seq_length() == 4


def test_batch_repeat_and_select_follow_dynamic_layer() -> None:
    grow, ref = GrowingLayer(), DynamicLayer()
    grow.batch_repeat_interleave(2)  # empty: a no-op, like DynamicLayer
    for keys, values in _steps(2)[:2]:
        grow.update(keys, values)
        ref.update(keys, values)
    grow.batch_repeat_interleave(2)
    ref.batch_repeat_interleave(2)
    assert torch.equal(grow.keys, ref.keys)
    index = torch.tensor([5, 1])
    grow.batch_select_indices(index)
    ref.batch_select_indices(index)
    assert torch.equal(grow.values, ref.values) and grow.keys.shape[0] == 2
