"""The ``table`` backend: replay finished trials instead of training.

A table is a set of :class:`TrialResult` (from a trial store, a recording, or built by
hand for a test). Looking a configuration up costs microseconds and imports no torch.
The search space is the sub-grid the table covers; the trial seed picks which of the
recorded seeds is returned, so training noise is replayed too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from legal_hpo_env.backends.base import Fidelity, ReplayBackend, TrialResult
from legal_hpo_env.space import SPACE, HyperParams
from legal_hpo_env.tasks.specs import FAMILIES, TASKS

__all__ = ["TableBackend", "MissingTrialError"]


class MissingTrialError(KeyError, ValueError):
    """The table has no run of this configuration on this task.

    A ``KeyError`` (a missing entry of the table) and a ``ValueError`` (an argument the
    table cannot answer), like :class:`~legal_hpo_env.tasks.UnknownTaskError`.
    """

    def __str__(self) -> str:
        return str(self.args[0])


def _config_key(config: HyperParams | dict) -> tuple:
    if isinstance(config, HyperParams):
        return config.values  # field order is SPACE's order
    return tuple(config[name] for name in SPACE.names)


class TableBackend(ReplayBackend):
    """Look results up in a table of finished trials.

    Args:
        results: the finished trials (any tasks; several seeds per configuration).
        meta: task descriptors per task; by default what the results tell.
    """

    name = "table"
    version = 1

    def __init__(self, results: Iterable[TrialResult], meta: dict[str, dict[str, float]] | None = None) -> None:
        self._meta = dict(meta or {})
        grouped: dict[str, dict[tuple, list[TrialResult]]] = defaultdict(lambda: defaultdict(list))
        for r in results:
            grouped[r.task][_config_key(r.config)].append(r)
        # Plain dicts, so that the backend (and an env holding it) pickles.
        self._runs = {task: {key: sorted(runs, key=lambda r: r.seed) for key, runs in per_task.items()}
                      for task, per_task in grouped.items()}
        if not self._runs:
            raise ValueError("a table backend needs at least one trial result.")
        self._configs = {task: [HyperParams(**dict(zip(SPACE.names, key))) for key in per_task]
                         for task, per_task in self._runs.items()}
        fidelities = {json.dumps(r.fidelity, sort_keys=True) for per_task in self._runs.values()
                      for runs in per_task.values() for r in runs}
        self._fidelity = Fidelity(**json.loads(fidelities.pop())) if len(fidelities) == 1 else None

    @property
    def fidelity(self) -> Fidelity | None:
        return self._fidelity

    @property
    def tasks(self) -> list[str]:
        return sorted(self._runs)

    def configurations(self, task: str) -> list[HyperParams]:
        return list(self._configs[self._check(task)])

    def meta_features(self, task: str) -> dict[str, float]:
        """Task descriptors (family, training size, labels, mean input length).

        Given at construction, else what the results tell (sizes) and the task table (family).
        """
        first = next(iter(self._runs[self._check(task)].values()))[0]
        spec = TASKS.get(task)
        # The family comes from today's task table: a recorded index may predate a new family.
        family = float(FAMILIES.index(spec.family)) if spec and spec.family in FAMILIES else -1.0
        meta = self._meta.get(task) or first.extra.get("task_meta")
        if meta:
            return {**meta, "family": family}
        return {
            "family": family,
            "train_size": float(first.sizes.get("train", 1000)),
            "num_labels": 2.0,
            "mean_chars": 200.0,
        }

    def _check(self, task: str) -> str:
        if task not in self._runs:
            raise MissingTrialError(
                f"the {self.name!r} table has no runs of task {task!r}; it holds {self.tasks}. Tune another task "
                "live with backend='head' or 'finetune' (CLI: --backend head)."
            )
        return task

    def runs(self, task: str, config: HyperParams) -> list[TrialResult]:
        """Every recorded run (one per seed) of ``config`` on ``task``."""
        runs = self._runs[self._check(task)].get(_config_key(config))
        if not runs:
            raise MissingTrialError(
                f"the table has no run of {config} on task {task!r}: "
                f"stay on the recorded grid, {self.space(task).names}."
            )
        return runs
