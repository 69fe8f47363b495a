"""What a search has seen so far, as observation entries a policy can adapt with.

The ``"adaptive"`` observation of ``LegalHPO-v0`` appends these to the basic one: where the
incumbent is and how it scored, where the last move came from and whether it helped, and,
for every value of every hyperparameter's grid, whether it was tried and the best dev
score it gave. Everything is normalised against the full search space and bounded in
[0, 1], so one policy reads it the same way on every backend.
"""

from __future__ import annotations

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
    """The running summary of one episode's trials."""

    def __init__(self) -> None:
        offsets, total = [], 0
        for d in SPACE.dimensions:
            offsets.append(total)
            total += len(d.grid)
        self._offsets = tuple(offsets)
        self._size = total
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

    def record(self, before: HyperParams, config: HyperParams, score: float, diverged: bool) -> None:
        """One trial: the agent moved from ``before`` to ``config``, which scored ``score``."""
        score = 0.0 if diverged else min(1.0, max(0.0, score))
        for offset, position in zip(self._offsets, SPACE.to_indices(config)):
            self.tried[offset + position] = 1.0
            self.best[offset + position] = max(self.best[offset + position], score)
        self.effect = 0.0 if self.last_score is None else score - self.last_score
        self.improved = not diverged and (self.incumbent is None or score > self.incumbent_score)
        if self.improved:
            self.incumbent, self.incumbent_score = config, score
        self.previous, self.last_score = before, score

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
