"""A task's landscape over a recorded grid, and the normalised regret measured against it.

The one definition of normalised regret: the env's ``info``, the ``regret`` reward, the
replay backends and the evaluation protocol all call :meth:`Landscape.regret`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["Landscape", "normalised_regret"]


def normalised_regret(score: float, best: float, reference: float) -> float:
    """``(best - score) / (best - reference)``: 0 at the optimum, 1 at the reference point.

    With the worst score as reference (YAHPO's form) it lies in [0, 1] for recorded scores;
    with the median, 1 means "no better than a typical configuration".
    """
    return (best - score) / max(1e-12, best - reference)


@dataclass(frozen=True)
class Landscape:
    """Best, median and worst mean-over-seeds dev score of every configuration of a grid.

    Over *every* configuration an agent can reach, epochs read from the learning curves
    included, so that regret is measured over the points the search could pick.
    """

    best: float
    median: float
    worst: float
    configurations: int

    @classmethod
    def of(cls, scores: Iterable[float]) -> Landscape:
        values = list(scores)
        if not values:
            raise ValueError("a landscape needs at least one score.")
        return cls(max(values), statistics.median(values), min(values), len(values))

    def regret(self, score: float) -> float:
        """Normalised regret against the worst configuration, in [0, 1] for recorded scores."""
        return normalised_regret(score, self.best, self.worst)

    def regret_to_median(self, score: float) -> float:
        """Normalised regret against the median configuration."""
        return normalised_regret(score, self.best, self.median)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
