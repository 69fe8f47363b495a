"""Summary statistics of the evaluation protocol: confidence bands, average ranks, paired tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CHECKPOINTS = (5, 10, 20)


def summarise(curves: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Mean curve with its 95% confidence half-width (normal approximation), and its value at each checkpoint."""
    arr = np.asarray(curves, dtype=float)
    mean = arr.mean(0)
    half = 1.96 * arr.std(0, ddof=1) / math.sqrt(len(arr)) if len(arr) > 1 else np.zeros_like(mean)
    at = {f"at_{k}": float(mean[k - 1]) for k in CHECKPOINTS if k <= len(mean)}
    ci = {f"ci95_at_{k}": float(half[k - 1]) for k in CHECKPOINTS if k <= len(mean)}
    return {"mean": mean.tolist(), "ci95": half.tolist(), **at, **ci}


def average_ranks(finals: Mapping[Any, Mapping[str, float]], methods: Iterable[str]) -> dict[str, float]:
    """Mean rank of each method (1 = lowest regret) over the problems of ``finals``; ties share their mean rank.

    ``finals`` maps a problem (a task and episode seed) to each method's final regret.
    """
    names = list(methods)
    ranks: dict[str, list[float]] = {name: [] for name in names}
    for scores in finals.values():
        values = sorted(scores[name] for name in names)
        for name in names:
            value = scores[name]
            first = values.index(value)
            ranks[name].append(first + (values.count(value) - 1) / 2 + 1)
    return {name: float(np.mean(r)) for name, r in ranks.items()}


def paired_test(finals: Mapping[Any, Mapping[str, float]], method: str, reference: str) -> dict[str, Any]:
    """A two-sided Wilcoxon signed-rank test of ``method`` against ``reference`` on the same problems.

    Returns the p-value (``None`` when every pair ties), the counts of problems where
    ``method`` had lower, higher and equal regret, and the mean difference
    (negative: ``method`` better).
    """
    from scipy.stats import wilcoxon

    a = np.array([scores[method] for scores in finals.values()])
    b = np.array([scores[reference] for scores in finals.values()])
    diff = a - b
    wins, losses = int((diff < -1e-12).sum()), int((diff > 1e-12).sum())
    p = None if wins + losses == 0 else float(wilcoxon(a, b, zero_method="wilcox").pvalue)
    return {"p_value": p, "wins": wins, "losses": losses, "ties": len(diff) - wins - losses,
            "mean_difference": float(diff.mean())}
