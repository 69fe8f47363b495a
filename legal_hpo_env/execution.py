"""Where an objective's trials run: in this process, or on a Ray cluster.

An :class:`Executor` takes trials that are not in the store yet and returns their
results; the :class:`~legal_hpo_env.objective.Objective` in front of it looks trials up
and stores what comes back, so every executor shares one store and one cache. The Ray
executor is :class:`legal_hpo_env.distributed.RayExecutor`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from legal_hpo_env.backends.base import TrialResult
    from legal_hpo_env.objective import Objective
    from legal_hpo_env.space import HyperParams

__all__ = ["Executor", "LocalExecutor"]


class Executor(abc.ABC):
    """Runs the trials of a live objective."""

    def check(self, objective: Objective) -> None:  # noqa: B027 (optional hook)
        """Raise a ValueError when this executor cannot run ``objective``'s trials."""

    @abc.abstractmethod
    def run(
        self, objective: Objective, trials: Sequence[tuple[HyperParams, int]], *, progress: bool = False
    ) -> list[TrialResult]:
        """Train every ``(config, seed)`` of ``trials`` and return their results, in order.

        A trial whose worker died comes back as a failed result (``extra["failed"]``),
        never stored; an error of the trial's own code (bad data, a wrong model) is raised.
        """


class LocalExecutor(Executor):
    """Train the trials one after another in this process."""

    def run(
        self, objective: Objective, trials: Sequence[tuple[HyperParams, int]], *, progress: bool = False
    ) -> list[TrialResult]:
        backend, data = objective.live_backend, objective.data
        assert data is not None  # a live objective holds its task's data
        return [backend.evaluate(data, config, objective.fidelity, seed, progress=progress) for config, seed in trials]

    def __repr__(self) -> str:
        return "LocalExecutor()"
