"""What a search has seen so far, as observation entries a policy can adapt with.

The ``"adaptive"`` observation of ``LegalHPO-v0`` appends these to the basic one: where the
incumbent is and how it scored, where the last move came from and whether it helped, and,
for every value of every hyperparameter's grid, whether it was tried and the best dev
score it gave. Everything is normalised against the full search space and bounded in
[0, 1], so one policy reads it the same way on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from legal_hpo_env.space import SPACE, HyperParams

__all__ = ["SearchHistory", "history_layout"]


def history_layout() -> list[str]:
    """Names of the history entries, in order."""
    values = [f"{d.name}={v:g}" if not d.categorical else f"{d.name}={v}" for d in SPACE.dimensions for v in d.grid]
    return (
        [f"incumbent/hp/{name}" for name in SPACE.names]
        + ["incumbent_score"]
        + [f"previous/hp/{name}" for name in SPACE.names]
        + ["last_move_effect", "last_move_improved"]
        + [f"tried/{v}" for v in values]
        + [f"best/{v}" for v in values]
    )


class SearchHistory:
    """The running summary of one episode's trials.

    The entries are kept twice: as Python floats (the attributes, and :meth:`features`) and
    as a float32 vector that :meth:`record` updates where a trial changed it, so that the
    env writes them into an observation with one copy (:meth:`write`). Change the history
    through :meth:`record` and :meth:`reset` only, which keep the two in step.
    """

    def __init__(self) -> None:
        offsets, total = [], 0
        for d in SPACE.dimensions:
            offsets.append(total)
            total += len(d.grid)
        self._offsets = tuple(offsets)
        self._size = total
        k = len(SPACE)
        # where features() puts the incumbent's score, the previous configuration, the move's
        # effect, whether it improved, the tried values and their best scores
        self._at = (k, k + 1, 2 * k + 1, 2 * k + 2, 2 * k + 3, 2 * k + 3 + total)
        # per configuration (its values): its grid positions and its normalised float32 entries,
        # pure functions of the configuration, computed once
        self._of: dict[tuple[Any, ...], tuple[tuple[int, ...], np.ndarray]] = {}
        self._blank: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        self.incumbent: HyperParams | None = None
        self.incumbent_score = 0.0
        self.previous: HyperParams | None = None
        self.last_score: float | None = None
        self.effect = 0.0
        self.improved = False
        self.tried = [0.0] * self._size
        self.best = [0.0] * self._size
        if self._blank is None:
            self._blank = np.array(self.features(), dtype=np.float32)
        self._vector = self._blank.copy()

    def _entries(self, config: HyperParams) -> tuple[tuple[int, ...], np.ndarray]:
        """The grid positions of ``config``'s values (in the tried/best lists) and its normalised entries."""
        entries = self._of.get(config.values)
        if entries is None:
            positions = tuple(offset + i for offset, i in zip(self._offsets, SPACE.to_indices(config)))
            entries = self._of[config.values] = (positions, np.array(SPACE.normalise(config), dtype=np.float32))
        return entries

    def record(self, before: HyperParams, config: HyperParams, score: float, diverged: bool) -> None:
        """One trial: the agent moved from ``before`` to ``config``, which scored ``score``."""
        score = 0.0 if diverged else min(1.0, max(0.0, score))
        at_score, at_previous, at_effect, at_improved, at_tried, at_best = self._at
        vector, tried, best = self._vector, self.tried, self.best
        positions, normalised = self._entries(config)
        for p in positions:
            tried[p] = 1.0
            best[p] = value = max(best[p], score)
            vector[at_tried + p] = 1.0
            vector[at_best + p] = value
        self.effect = 0.0 if self.last_score is None else score - self.last_score
        self.improved = not diverged and (self.incumbent is None or score > self.incumbent_score)
        if self.improved:
            self.incumbent, self.incumbent_score = config, score
            vector[:at_score] = normalised
            vector[at_score] = score
        self.previous, self.last_score = before, score
        vector[at_previous:at_effect] = self._entries(before)[1]
        vector[at_effect] = (self.effect + 1.0) / 2.0
        vector[at_improved] = 1.0 if self.improved else 0.0

    def features(self) -> list[float]:
        """The entries of :func:`history_layout`, each in [0, 1]."""
        zeros = [0.0] * len(SPACE)
        return [
            *(SPACE.normalise(self.incumbent) if self.incumbent is not None else zeros),
            self.incumbent_score,
            *(SPACE.normalise(self.previous) if self.previous is not None else zeros),
            (self.effect + 1.0) / 2.0,  # a score difference in [-1, 1], mapped to [0, 1]; 0.5 = no change
            1.0 if self.improved else 0.0,
            *self.tried,
            *self.best,
        ]

    def write(self, out: np.ndarray) -> None:
        """Write :meth:`features` into the float32 array ``out`` (as ``np.array(features, np.float32)`` would)."""
        out[:] = self._vector
