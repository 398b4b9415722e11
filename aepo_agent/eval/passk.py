"""Pass@k over n runs per task: the unbiased estimator of Chen et al. (2021) and the papers' two readings.

The papers (algorithms.md §5.1, §8 item 19) run each benchmark ``n`` = 5 times at T = 0.6 and report Pass@1 as a
single run's accuracy (or the mean over the runs) and Pass@5 as the share of tasks correct in at least one run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}; raise eval.n or lower eval.k")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_metrics(runs: Mapping[str, Sequence[bool | None]], ks: Sequence[int]) -> dict[str, float]:
    """Pass@k readings over tasks; ``runs[task][r]`` is run r's success (None: not sampled yet).

    - ``pass@1``: mean over runs of the accuracy (= the unbiased pass@1);
    - ``pass@1_run1``: the accuracy of the first run alone;
    - ``pass@k``: the unbiased estimator with each task's c correct of its n sampled runs;
    - ``pass@k_any`` (k > 1): the share of tasks correct in at least one of runs 1..k.
    A task enters a reading only when the runs that reading needs were sampled.
    """
    out: dict[str, float] = {}
    sampled = {t: [bool(s) for s in rs if s is not None] for t, rs in runs.items()}
    firsts = [rs[0] for rs in runs.values() if rs and rs[0] is not None]
    out["pass@1_run1"] = statistics.fmean(firsts) if firsts else 0.0
    for k in ks:
        est = [pass_at_k(len(s), sum(s), k) for s in sampled.values() if len(s) >= k]
        out[f"pass@{k}"] = statistics.fmean(est) if est else 0.0
        if k > 1:  # any of the first run alone is pass@1_run1
            heads = [list(rs[:k]) for rs in runs.values() if len(rs) >= k and None not in rs[:k]]
            out[f"pass@{k}_any"] = statistics.fmean(any(h) for h in heads) if heads else 0.0
    if "pass@1" not in out:
        est = [sum(s) / len(s) for s in sampled.values() if s]
        out["pass@1"] = statistics.fmean(est) if est else 0.0
    return out

