"""The released segment-entropy estimator (top-k log-probs, no tail bucket) is available to the vLLM engine."""

from __future__ import annotations

import math

import pytest

from aepo_agent.engines.entropy import ESTIMATORS, topk_entropy, topk_tail_entropy


def test_topk_entropy_is_the_released_pool_without_the_tail() -> None:
    lps = [math.log(0.5), math.log(0.25)]
    assert topk_entropy(lps) == pytest.approx(0.5 * math.log(2) + 0.25 * math.log(4))
    assert topk_tail_entropy(lps) == pytest.approx(topk_entropy(lps) + 0.25 * math.log(4))  # the tail bucket
    assert topk_entropy([0.0, -math.inf]) == 0.0
    assert "topk" in ESTIMATORS
