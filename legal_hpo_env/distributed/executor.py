"""Trials as Ray tasks: :class:`RayExecutor` runs an objective's trials on a cluster.

What travels to a worker is plain data (task name, backend name, model, data folder,
fidelity, configuration, seed); the worker loads the task itself and trains. The driver's
:class:`~legal_hpo_env.objective.Objective` keeps the trial store: it looks a trial up
before sending it and stores the result when it comes back, so the store is one file on
one machine (SQLite is not safe on network file systems).

A trial whose worker dies (killed, out of memory, node lost) comes back as a *failed*
trial: a result with ``diverged=True``, the diverged score, and the reason in
``extra["failed"]``; it is not stored, so asking again retries it. Errors in the trial's
own code (a missing data file, a wrong model) are raised as they would be locally.

>>> from legal_hpo_env.objective import Objective
>>> from legal_hpo_env.distributed import RayExecutor
>>> objective = Objective("unfair_tos", "finetune", executor=RayExecutor(trial_gpus=1))  # doctest: +SKIP
>>> objective.evaluate_many([{"learning_rate": lr} for lr in (1e-5, 1e-4, 1e-3)])         # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from legal_hpo_env.backends import BACKENDS, Fidelity, TrialResult, make_backend
from legal_hpo_env.backends.base import failed_result
from legal_hpo_env.checks import is_int
from legal_hpo_env.distributed.cluster import check_amount, check_resources, connect, import_ray
from legal_hpo_env.execution import Executor
from legal_hpo_env.space import HyperParams

if TYPE_CHECKING:
    from legal_hpo_env.objective import Objective

__all__ = ["RayExecutor", "RayOptions", "run_trial", "worker_objective"]

RunTrial = Callable[[Mapping[str, Any], Mapping[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class RayOptions:
    """Where and with what resources live trials run on Ray, as plain, validated data.

    It is the data an env takes (``gym.make(..., ray={"trial_gpus": 1})``) and the CLI builds.

    Attributes:
        address: the cluster (see :func:`~legal_hpo_env.distributed.connect`); ``None``:
            ``$RAY_ADDRESS``, else a local Ray instance.
        trial_cpus: CPUs reserved for each trial (and its torch threads).
        trial_gpus: GPUs reserved for each trial; fractions (0.25) share a GPU.
        retries: how often Ray reruns a trial whose worker died before reporting it failed.
        max_in_flight: most trials submitted at a time (``None``: all of a batch).
    """

    address: str | None = None
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0
    retries: int = 0
    max_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"ray address={self.address!r} must be a string such as '10.0.0.1:6379' (or None).")
        object.__setattr__(self, "trial_cpus", check_amount("trial_cpus", self.trial_cpus, 0.0))
        object.__setattr__(self, "trial_gpus", check_amount("trial_gpus", self.trial_gpus, 0.0))
        if self.trial_cpus == 0 and self.trial_gpus == 0:
            raise ValueError("a remote trial needs some resource: trial_cpus or trial_gpus must be > 0.")
        if not is_int(self.retries) or self.retries < 0:
            raise ValueError(f"retries={self.retries!r} must be an integer >= 0.")
        limit = self.max_in_flight
        if limit is not None and (not is_int(limit) or limit < 1):
            raise ValueError(f"max_in_flight={limit!r} must be an integer >= 1 (or None).")

    @classmethod
    def of(cls, value: RayOptions | Mapping[str, Any] | bool) -> RayOptions:
        """``True`` (defaults), a mapping of the fields, or the options themselves."""
        if isinstance(value, RayOptions):
            return value
        if value is True:
            return cls()
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown Ray option(s) {unknown}: valid ones are {sorted(cls.__dataclass_fields__)}.")
            return cls(**value)
        raise TypeError(f"ray={value!r} must be True, a mapping of Ray options or a RayOptions (or None/False).")


# -- the worker side -----------------------------------------------------------------

_WORKER_OBJECTIVE: dict[str, Objective] = {}


def worker_objective(spec: Mapping[str, Any]) -> Objective:
    """The local :class:`Objective` a worker builds from a plain-data ``spec``.

    It is kept for the next trial of the same spec, so that the task is loaded once per worker
    process.
    """
    from legal_hpo_env.objective import Objective

    key = json.dumps(dict(spec), sort_keys=True)
    if key not in _WORKER_OBJECTIVE:
        _WORKER_OBJECTIVE.clear()  # one task per worker at a time: a worker that lives for days stays small
        backend = make_backend(spec["backend"], model=spec["model"], device=spec["device"],
                               **spec.get("options", {}))
        _WORKER_OBJECTIVE[key] = Objective(
            spec["task"], backend, data_dir=spec["data_dir"], fidelity=Fidelity(**spec["fidelity"]),
        )
    return _WORKER_OBJECTIVE[key]


def run_trial(spec: Mapping[str, Any], config: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What a Ray worker runs for one trial: the result as plain data."""
    import torch

    # A trial given n CPUs uses n threads, not one per core of a node it shares.
    torch.set_num_threads(max(1, int(spec["threads"])))
    objective = worker_objective(spec)
    # The backend, not the objective: the driver already looked the trial up, and a worker
    # must not keep every result in memory.
    result = objective.live_backend.evaluate(
        objective.data, HyperParams.from_dict(dict(config)), objective.fidelity, seed  # type: ignore[arg-type]
    )
    return {**result.to_dict(), "extra": {**result.extra, "node": socket.gethostname(), "pid": os.getpid()}}


# -- the driver side -----------------------------------------------------------------


class RayExecutor(Executor):
    """Run an objective's trials as Ray tasks with declared resources.

    Args:
        options: a :class:`RayOptions` (or its fields as a mapping); the default reserves
            one CPU per trial on ``$RAY_ADDRESS`` or a local instance.
        run_trial: the function a worker runs, ``run_trial(spec, config, seed) -> dict``
            (default :func:`run_trial`); replace it to instrument trials.

    Raises:
        ImportError: Ray is not installed.
        ConnectionError: the cluster address does not answer.
        ValueError: a resource request no node can satisfy.
    """

    def __init__(self, options: RayOptions | Mapping[str, Any] | None = None, *, run_trial: RunTrial | None = None,
                 **fields: Any) -> None:
        if options is not None and fields:
            raise TypeError("give Ray options either as one RayOptions/mapping or as keyword arguments, not both.")
        self.options = RayOptions.of(options if options is not None else dict(fields))
        self.run_trial: RunTrial = run_trial or _default_run_trial
        import_ray()  # before loading anything: a missing Ray is the first thing to say
        self._joined: str | None = None  # the cluster this executor joined, for copies in other processes
        self._remote: Any = None
        self._connect()

    def __repr__(self) -> str:
        return f"RayExecutor({self.options})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_remote"] = None  # a Ray handle belongs to one process
        return state

    def _connect(self) -> None:
        # A copy in another process (pickled into a SubprocVecEnv worker) joins the cluster
        # this one joined, the local instance it started included.
        self._joined = connect(self._joined or self.options.address)
        check_resources(self.options.trial_cpus, self.options.trial_gpus)

    def check(self, objective: Objective) -> None:
        backend = objective.backend
        if BACKENDS.get(backend.name, "").rsplit(":", 1)[-1] != type(backend).__name__:
            raise ValueError(
                f"remote trials rebuild the backend on each worker from its name: give backend='head' or "
                f"'finetune' by name, not a {type(backend).__name__} instance."
            )
        device = objective.device
        if device is not None and device.startswith("cuda") and self.options.trial_gpus == 0:
            raise ValueError(
                f"device={device!r} on remote trials needs trial_gpus > 0: Ray hides GPUs it did not assign."
            )

    def spec(self, objective: Objective) -> dict[str, Any]:
        """The plain data a worker builds the objective from.

        Its paths are absolute: a worker's working directory is not this process's.
        """
        model = objective.backend.model_name
        data_dir = objective.data_dir if objective.data_dir is not None else os.environ.get("LEGAL_HPO_DATA")
        return {
            "task": objective.task_name,  # a custom task's name holds its resolved path
            "backend": objective.backend.name,
            "options": objective.live_backend.options(),
            "model": model if model is None or not os.path.exists(model) else os.path.abspath(model),
            "data_dir": None if data_dir is None else os.path.abspath(os.path.expanduser(os.fspath(data_dir))),
            "fidelity": objective.fidelity.to_dict(),
            "device": objective.device,
            "threads": max(1, math.ceil(self.options.trial_cpus)),
        }

    def run(
        self, objective: Objective, trials: Sequence[tuple[HyperParams, int]], *, progress: bool = False
    ) -> list[TrialResult]:
        """Every trial at once, as many in parallel as the cluster (or ``max_in_flight``) allows."""
        ray = import_ray()
        if not trials:
            return []
        self._connect()  # every batch: this executor may live in another process now
        spec = self.spec(objective)
        limit = self.options.max_in_flight or len(trials)
        waiting = list(enumerate(trials))
        running: dict[Any, tuple[int, float]] = {}
        results: dict[int, TrialResult] = {}
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    index, (config, seed) = waiting.pop(0)
                    running[self._submit(spec, config, seed)] = (index, time.perf_counter())
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    index, started = running.pop(ref)
                    config, seed = trials[index]
                    results[index] = self._collect(objective, ref, config, seed, started)
        finally:
            for ref in running:  # an error or Ctrl-C: do not leave trials training for nobody
                ray.cancel(ref, force=True)
        return [results[i] for i in range(len(trials))]

    def _submit(self, spec: dict[str, Any], config: HyperParams, seed: int) -> Any:
        ray = import_ray()
        if self._remote is None:
            self._remote = ray.remote(self.run_trial).options(
                num_cpus=self.options.trial_cpus, num_gpus=self.options.trial_gpus,
                max_retries=self.options.retries, name="legal-hpo trial",
            )
        return self._remote.remote(spec, config.to_dict(), seed)

    def _collect(self, objective: Objective, ref: Any, config: HyperParams, seed: int, started: float) -> TrialResult:
        """The trial's result, a failed-trial result when its worker died, or its own error."""
        ray = import_ray()
        exceptions = ray.exceptions

        def failed(reason: str) -> TrialResult:
            return failed_result(objective.live_backend, objective.data, config, objective.fidelity,  # type: ignore[arg-type]
                                 seed, reason=reason, seconds=time.perf_counter() - started, device="remote")

        try:
            data = ray.get(ref)
        except exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryError":  # torch's (CUDA) OOM
                return failed(f"out of memory in the trial: {type(cause).__name__}: {cause}")
            raise  # the trial's own error (bad data, model...): as it would be raised locally
        except exceptions.OutOfMemoryError as err:
            return failed(f"Ray killed the worker: its node ran out of memory ({_first_line(err)})")
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.LocalRayletDiedError,
                exceptions.ObjectLostError, exceptions.TaskUnschedulableError) as err:
            return failed(f"the trial's worker died: {type(err).__name__}: {_first_line(err)}")
        result = TrialResult.from_dict(data)
        expected = objective.data.data_hash if objective.data is not None else ""
        if result.data_hash != expected:
            raise ValueError(
                f"a worker (on {result.extra.get('node')}) read different data for {objective.task_name} than this "
                f"process (hash {result.data_hash} != {expected}): make the data files the same on every node."
            )
        return result


_default_run_trial = run_trial


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
