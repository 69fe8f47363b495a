"""The objective: evaluate one configuration on one task, through the trial store.

>>> from legal_hpo_env import evaluate
>>> result = evaluate("unfair_tos", {"learning_rate": 1e-4}, backend="head")  # doctest: +SKIP
>>> result.dev_curve, result.test_score                                        # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Mapping

from legal_hpo_env.backends import Fidelity, TrialResult, make_backend
from legal_hpo_env.backends.base import Backend
from legal_hpo_env.space import HyperParams
from legal_hpo_env.store import TrialStore, trial_key
from legal_hpo_env.tasks import TaskData, TaskSpec, load_task

__all__ = ["Objective", "evaluate", "as_config"]


def as_config(config: HyperParams | Mapping[str, Any] | None) -> HyperParams:
    """A :class:`HyperParams` from a mapping of overrides (or the default recipe)."""
    if config is None:
        return HyperParams()
    if isinstance(config, HyperParams):
        return config
    if isinstance(config, Mapping):
        return HyperParams.from_dict(dict(config))
    raise TypeError(f"config must be a HyperParams or a mapping of hyperparameters, got {type(config).__name__}")


#: Seeds are stored as SQLite integers (signed 64-bit) and seed torch: larger ones cannot be.
MAX_SEED = 2**63 - 1


def check_seed(seed: Any) -> int:
    """``seed`` as a native int, or a ValueError naming it and the valid range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2**63 - 1].")
    return int(seed)  # numpy ints do not serialise


class Objective:
    """One task, one backend, one fidelity: ``objective(config, seed) -> TrialResult``.

    Finished trials go to ``store`` (a path or a :class:`TrialStore`) and are returned
    from it when asked again; within a process they are also kept in memory.

    Args:
        task: a task name, ``custom:<path>``, a :class:`TaskSpec`, or loaded :class:`TaskData`.
        backend: ``"head"`` or ``"finetune"``.
        model: Hugging Face model id or local folder; ``None`` for the packaged MiniLM.
        data_dir: the data folder (default ``$LEGAL_HPO_DATA``).
        fidelity: training-set cap and max length.
        store: where finished trials persist; ``None`` keeps them in memory only.
        device: torch device; ``None`` picks CUDA when present.
    """

    def __init__(
        self,
        task: str | TaskSpec | TaskData,
        backend: str | Backend = "head",
        *,
        model: str | None = None,
        data_dir: str | os.PathLike | None = None,
        fidelity: Fidelity | None = None,
        store: str | os.PathLike | TrialStore | None = None,
        device: str | None = None,
    ) -> None:
        if isinstance(backend, str):
            backend = make_backend(backend, model=model, device=device)
        elif not isinstance(backend, Backend):
            raise TypeError(
                f"backend must be a backend name (str) or a Backend, got {type(backend).__name__}: "
                "use 'recorded', 'head' or 'finetune'."
            )
        self.backend = backend
        if backend.replays:  # a replaying backend needs the task's name, not its data
            self.task: TaskData | str = task if isinstance(task, str) else task.name
        else:
            self.task = task if isinstance(task, TaskData) else load_task(task, data_dir)
        self.fidelity = fidelity or Fidelity()
        self.store = TrialStore(store) if isinstance(store, (str, os.PathLike)) else store
        self._memory: dict[str, TrialResult] = {}

    @property
    def task_name(self) -> str:
        return self.task if isinstance(self.task, str) else self.task.name

    def meta_features(self) -> dict[str, float]:
        """Task descriptors for the agent's observation."""
        if isinstance(self.task, str):
            return self.backend.meta_features(self.task)
        return self.task.meta_features()

    def key(self, config: HyperParams, seed: int) -> str:
        from legal_hpo_env.version import __version__

        name, data_hash = (self.task, "") if isinstance(self.task, str) else (self.task.name, self.task.data_hash)
        return trial_key(
            name,
            data_hash,
            self.backend.name,
            f"{__version__}+{self.backend.version}",
            self.backend.model_name or "default",
            config.to_dict(),
            self.fidelity.to_dict(),
            seed,
        )

    def __call__(self, config: HyperParams | Mapping[str, Any] | None = None, seed: int = 0, *, progress: bool = False) -> TrialResult:
        config = as_config(config)
        seed = check_seed(seed)
        if self.backend.replays:  # a table lookup: no key, no store
            return self.backend.evaluate(self.task, config, self.fidelity, seed)
        key = self.key(config, seed)
        found = self.lookup(key)
        if found is not None:
            return found
        result = self.backend.evaluate(self.task, config, self.fidelity, seed, progress=progress)
        self.record(key, result)
        return result

    def lookup(self, key: str) -> TrialResult | None:
        """A finished trial from this process's memory, else from the store."""
        found = self._memory.get(key)
        if found is None and self.store is not None:
            found = self.store.get(key)
            if found is not None:
                self._memory[key] = found
        return found

    def record(self, key: str, result: TrialResult) -> None:
        """Keep a finished trial in memory and in the store."""
        if self.store is not None:
            self.store.put(key, result)
        self._memory[key] = result


def evaluate(
    task: str | TaskSpec,
    config: HyperParams | Mapping[str, Any] | None = None,
    *,
    backend: str = "head",
    seed: int = 0,
    max_train: int | None = None,
    max_length: int = 128,
    model: str | None = None,
    data_dir: str | os.PathLike | None = None,
    store: str | os.PathLike | TrialStore | None = None,
    device: str | None = None,
    progress: bool = False,
) -> TrialResult:
    """Evaluate one configuration on one task at one fidelity with one seed.

    Args:
        task: task name (see ``legal-hpo tasks``), ``custom:<path>`` or a :class:`TaskSpec`.
        config: a :class:`HyperParams` or a mapping of overrides of the default recipe.
        backend: ``"head"`` (frozen encoder, seconds) or ``"finetune"`` (whole model).
        seed: seed of initialisation and data order.
        max_train: cap on training examples (fidelity); ``None`` for all.
        max_length: tokens per input (fidelity).
        model: Hugging Face model id or local folder; ``None`` for the packaged MiniLM.
        data_dir: the data folder (default ``$LEGAL_HPO_DATA``).
        store: trial store file; a stored trial is returned without training.
        device: torch device; ``None`` picks CUDA when present.
        progress: show a progress bar on stderr while training.
    """
    config = as_config(config)  # validate before any loading
    check_seed(seed)
    fidelity = Fidelity(max_train=max_train, max_length=max_length)
    objective = Objective(task, backend, model=model, data_dir=data_dir, fidelity=fidelity, store=store, device=device)
    return objective(config, seed, progress=progress)
