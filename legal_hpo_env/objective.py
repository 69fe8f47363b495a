"""The objective: evaluate one configuration on one task, through the trial store.

>>> from legal_hpo_env import evaluate
>>> result = evaluate("unfair_tos", {"learning_rate": 1e-4}, backend="head")  # doctest: +SKIP
>>> result.dev_curve, result.test_score                                        # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from legal_hpo_env.backends import Fidelity, TrialResult, make_backend
from legal_hpo_env.backends.base import AnyBackend, Backend, ReplayBackend
from legal_hpo_env.checks import is_int
from legal_hpo_env.execution import Executor, LocalExecutor
from legal_hpo_env.space import HyperParams
from legal_hpo_env.store import TrialStore, trial_key
from legal_hpo_env.tasks import TaskData, TaskSpec, get_spec, load_task

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
    if not is_int(seed) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2**63 - 1].")
    return int(seed)  # numpy ints do not serialise


class Objective:
    """One task, one backend, one fidelity: ``objective(config, seed) -> TrialResult``.

    On a live backend, finished trials go to ``store`` (a path or a :class:`TrialStore`)
    and are returned from it when asked again (within a process they are also kept in
    memory); the ``executor`` trains the others, here or on a Ray cluster. A replay
    backend answers from its table: it takes no data, store, device or other fidelity.

    Args:
        task: a task name, ``custom:<path>``, a :class:`TaskSpec`, or loaded :class:`TaskData`.
        backend: ``"head"``, ``"finetune"``, ``"recorded"`` or a backend instance.
        model: Hugging Face model id or local folder; ``None`` for the packaged MiniLM.
        data_dir: the data folder (default ``$LEGAL_HPO_DATA``).
        fidelity: training-set cap, max length and evaluation cap.
        store: where finished trials persist; ``None`` keeps them in memory only.
        device: torch device; ``None`` picks CUDA when present.
        executor: where live trials train (default: this process, :class:`LocalExecutor`).
    """

    def __init__(
        self,
        task: str | TaskSpec | TaskData,
        backend: str | AnyBackend = "head",
        *,
        model: str | None = None,
        data_dir: str | os.PathLike | None = None,
        fidelity: Fidelity | None = None,
        store: str | os.PathLike | TrialStore | None = None,
        device: str | None = None,
        executor: Executor | None = None,
    ) -> None:
        if isinstance(backend, str):
            backend = make_backend(backend, model=model, device=device)
        elif not isinstance(backend, (Backend, ReplayBackend)):
            raise TypeError(
                f"backend must be a backend name (str) or a Backend, got {type(backend).__name__}: "
                "use 'recorded', 'head' or 'finetune'."
            )
        if store is not None and not isinstance(store, (str, os.PathLike, TrialStore)):
            raise TypeError(f"store must be a file path or a TrialStore, got {type(store).__name__}: {store!r}.")
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(
                f"executor must be an Executor (LocalExecutor, RayExecutor), got {type(executor).__name__}."
            )
        self.backend: AnyBackend = backend
        self.data_dir = data_dir
        self.device = device
        self.executor: Executor = executor or LocalExecutor()
        self.data: TaskData | None
        if isinstance(backend, ReplayBackend):
            _refuse_for_replay(backend, fidelity, data_dir=data_dir, store=store, device=device, executor=executor)
            self.task_name = task if isinstance(task, str) else task.name
            self.data = None
            self.fidelity = backend.fidelity or Fidelity()
            self.store = None
            if self.task_name not in backend.tasks:
                get_spec(self.task_name)  # a typo: the error names every valid task
                backend.space(self.task_name)  # a real task the table lacks: says which backend runs it
        else:
            self.data = task if isinstance(task, TaskData) else load_task(task, data_dir)
            self.task_name = self.data.name
            self.fidelity = fidelity or Fidelity()
            self.store = TrialStore(store) if isinstance(store, (str, os.PathLike)) else store
            self.executor.check(self)
        self._memory: dict[str, TrialResult] = {}

    @property
    def replays(self) -> bool:
        """True when the backend replays a table instead of training."""
        return isinstance(self.backend, ReplayBackend)

    @property
    def live_backend(self) -> Backend:
        if not isinstance(self.backend, Backend):
            raise TypeError(f"the {self.backend.name!r} backend replays a table: it has no live backend.")
        return self.backend

    @property
    def replay_backend(self) -> ReplayBackend:
        if not isinstance(self.backend, ReplayBackend):
            raise TypeError(f"the {self.backend.name!r} backend trains live: it has no recorded table.")
        return self.backend

    def meta_features(self) -> dict[str, float]:
        """Task descriptors for the agent's observation."""
        if self.data is None:
            return self.replay_backend.meta_features(self.task_name)
        return self.data.meta_features()

    def key(self, config: HyperParams, seed: int) -> str:
        data = self.data
        return trial_key(
            self.task_name,
            "" if data is None else data.data_hash,
            self.backend.name,
            self.backend.code_version,
            self.backend.model_name or "default",
            config.to_dict(),
            self.fidelity.to_dict(),
            seed,
        )

    def __call__(
        self, config: HyperParams | Mapping[str, Any] | None = None, seed: int = 0, *, progress: bool = False
    ) -> TrialResult:
        config = as_config(config)
        seed = check_seed(seed)
        if isinstance(self.backend, ReplayBackend):  # a table lookup: no key, no store
            return self.backend.replay(self.task_name, config, seed)
        return self.evaluate_many([config], [seed], progress=progress)[0]

    def evaluate_many(
        self,
        configs: Sequence[HyperParams | Mapping[str, Any] | None],
        seeds: Sequence[int] | None = None,
        *,
        progress: bool = False,
    ) -> list[TrialResult]:
        """Several trials; those in the store (or asked before in this process) are not trained again.

        Nor are duplicates within the batch. The executor may run the rest in parallel (a Ray
        cluster does). Failed trials are flagged, not raised, and not stored.

        Args:
            configs: the configurations, each a :class:`HyperParams` or a mapping of overrides.
            seeds: one seed per configuration (default: 0 for all).
            progress: show a progress bar while training (local trials).

        Returns:
            One result per configuration, in order.
        """
        seeds = [0] * len(configs) if seeds is None else list(seeds)
        if len(seeds) != len(configs):
            raise ValueError(f"got {len(configs)} configurations but {len(seeds)} seeds: give one seed each.")
        trials = [(as_config(c), check_seed(s)) for c, s in zip(configs, seeds)]
        if isinstance(self.backend, ReplayBackend):
            return [self.backend.replay(self.task_name, c, s) for c, s in trials]
        keys = [self.key(c, s) for c, s in trials]
        done: dict[str, TrialResult] = {}
        todo: dict[str, tuple[HyperParams, int]] = {}
        for key, trial in zip(keys, trials):
            if key in done or key in todo:
                continue
            found = self.lookup(key)
            if found is not None:
                done[key] = found
            else:
                todo[key] = trial
        if todo:
            for key, result in zip(todo, self.executor.run(self, list(todo.values()), progress=progress)):
                done[key] = result
                if "failed" not in result.extra:  # a failed trial is retried when asked again
                    self.record(key, result)
        return [done[key] for key in keys]

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

    def with_executor(self, executor: Executor) -> Objective:
        """The same objective (backend, task, fidelity, store) run by another executor."""
        twin = copy.copy(self)
        twin.executor = executor
        twin._memory = dict(self._memory)
        return twin

    def close(self) -> None:
        """Release the store's connection (the objective can still be used: it reopens)."""
        if self.store is not None:
            self.store.close()


def _refuse_for_replay(backend: ReplayBackend, fidelity: Fidelity | None, **given: Any) -> None:
    """A replay backend answers from its table: refuse what it would otherwise ignore."""
    recorded = backend.fidelity
    if fidelity is not None and fidelity != recorded:
        raise ValueError(
            f"the {backend.name!r} backend replays runs recorded at "
            f"{recorded.to_dict() if recorded else 'several fidelities'}; it cannot honour the fidelity "
            f"{fidelity.to_dict()}: drop max_train/max_length/max_eval, "
            f"or train live with backend='head' or 'finetune'."
        )
    ignored = [f"{name}={value!r}" for name, value in given.items() if value is not None]
    if ignored:
        raise ValueError(
            f"the {backend.name!r} backend replays a recorded table and would ignore {', '.join(ignored)}: drop "
            f"{'it' if len(ignored) == 1 else 'them'}, or train live with backend='head' or 'finetune'."
        )


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
