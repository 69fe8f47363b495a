"""Trials on a Ray cluster: the one module that imports ``ray`` (lazily, on first use).

A :class:`RemoteObjective` is an :class:`~legal_hpo_env.objective.Objective` whose trials
run as Ray tasks with declared resources (CPUs, GPUs per trial), on an existing cluster
(``address`` or ``$RAY_ADDRESS``) or on a local Ray instance started on first use. What
travels to a worker is plain data (task name, backend name, model, data folder, fidelity,
configuration, seed); the worker loads the task itself and trains. The driver keeps the
trial store: it looks a trial up before sending it and writes the result when it comes
back, so the store is one file on one machine (SQLite is not safe on network file
systems) and every env, agent or process using that file shares finished trials.

A trial whose worker dies (killed, out of memory, node lost) comes back as a *failed*
trial: a :class:`TrialResult` with ``diverged=True``, the diverged score, and the reason in
``extra["failed"]``. It is neither stored nor cached, so asking again retries it. Errors
in the trial's own code (a missing data file, a wrong model) are raised as they would be
locally.

>>> from legal_hpo_env.distributed import RemoteObjective
>>> objective = RemoteObjective("unfair_tos", "finetune", trial_gpus=1, store="trials.sqlite")  # doctest: +SKIP
>>> objective({"learning_rate": 1e-4}, seed=0).dev_score                                        # doctest: +SKIP
>>> objective.evaluate_many([{"learning_rate": lr} for lr in (1e-5, 1e-4, 1e-3)])            # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import numbers
import os
import socket
import time
from typing import Any, Callable, Mapping, Sequence

from legal_hpo_env.backends.base import DEFAULT_MODEL, DIVERGED_SCORE, Fidelity, TrialResult
from legal_hpo_env.objective import Objective, as_config, check_seed
from legal_hpo_env.space import HyperParams
from legal_hpo_env.store import TrialStore

__all__ = [
    "INSTALL_HINT",
    "RemoteObjective",
    "connect",
    "shutdown",
    "check_resources",
    "import_ray",
    "register_rllib_env",
    "run_trial",
    "worker_objective",
]

#: What to run when Ray is missing.
INSTALL_HINT = "pip install 'legal-hpo-env[ray]'"

#: The address of the local instance this process started (and exported as $RAY_ADDRESS
#: so that processes it starts later, such as SB3's SubprocVecEnv workers, join it
#: instead of each starting their own).
_STARTED: str | None = None
#: The process that connected: a child forked from it inherits a Ray state that hangs.
_PID: int | None = None
#: Addresses already found reachable by this process.
_REACHED: set[str] = set()


def import_ray() -> Any:
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"trials on Ray, RLlib and the Ray Tune baseline need Ray: {INSTALL_HINT}") from err
    return ray


def _probe(address: str, timeout: float) -> None:
    """Fail fast on an address nothing listens on: ``ray.init`` itself retries for minutes."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            f"Ray address {address!r} is not host:port (e.g. 10.0.0.1:6379, or ray://10.0.0.1:10001 for Ray Client)."
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
        _REACHED.add(address)
    except OSError as err:
        raise ConnectionError(
            f"cannot reach a Ray cluster at {address} ({err}). Check the address (`ray status` on the head node "
            "prints it), that `ray start --head` runs there and that its port is open to this machine; or give no "
            "address to start a local Ray instance."
        ) from err


def connect(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None, timeout: float = 10.0
) -> str:
    """Join the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local instance.

    Idempotent: a process already connected stays on its cluster (an explicit address is
    still checked for reachability, so that a wrong one never passes silently).

    Args:
        address: ``host:port`` of a running cluster's head, ``ray://host:port`` (Ray
            Client), ``"auto"`` (the cluster ``ray start`` started on this machine), or
            ``None``: ``$RAY_ADDRESS`` if set, else a new local instance.
        num_cpus: CPUs of a local instance (default: all); ignored when joining a cluster.
        num_gpus: GPUs of a local instance (default: all detected).
        timeout: seconds to wait for the address to answer.

    Returns:
        The address of the cluster's control store (GCS).

    Raises:
        ImportError: Ray is not installed.
        ConnectionError: nothing answers at the address.
    """
    global _STARTED, _PID
    ray = import_ray()
    address = address or None
    if ray.is_initialized():
        if _PID is None:  # connected by the user's own ray.init
            _PID = os.getpid()
        elif _PID != os.getpid():
            raise RuntimeError(
                "this process was forked from one connected to Ray, and a forked Ray connection hangs: start env "
                "processes with 'spawn' or 'forkserver' (the default of SB3's SubprocVecEnv; "
                "gymnasium's AsyncVectorEnv(..., context='spawn'))."
            )
        if address not in (None, "auto", "local") and address not in _REACHED:
            _probe(address, timeout)
        return ray.get_runtime_context().gcs_address
    if _STARTED is not None and os.environ.get("RAY_ADDRESS") == _STARTED:
        os.environ.pop("RAY_ADDRESS")  # the instance this process started was shut down since
    _STARTED = None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto", "local"):
        _probe(address, timeout)
    if address is None or address == "local":
        # "local", not None: None would join a cluster that `ray start` left on this machine
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)
        _STARTED, _PID = ray.get_runtime_context().gcs_address, os.getpid()
        os.environ["RAY_ADDRESS"] = _STARTED
        return _STARTED
    try:
        ray.init(address=address)
    except ConnectionError as err:
        raise ConnectionError(
            f"cannot join a Ray cluster at {address!r} ({err}). Start one with `ray start --head`, or give no "
            "address to start a local Ray instance."
        ) from err
    _PID = os.getpid()
    return ray.get_runtime_context().gcs_address


def shutdown() -> None:
    """Leave the cluster (stopping the local instance this process started)."""
    global _STARTED, _PID
    ray = import_ray()
    ray.shutdown()
    if _STARTED is not None and os.environ.get("RAY_ADDRESS") == _STARTED:
        os.environ.pop("RAY_ADDRESS")
    _STARTED, _PID = None, None


def _check_amount(name: str, value: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a number >= {minimum:g} (fractions share a device).")
    return float(value)


def check_resources(cpus: float, gpus: float) -> None:
    """Raise a ValueError when no live node of the cluster has ``cpus`` CPUs and ``gpus`` GPUs.

    Ray would otherwise queue such a task forever (it only logs a warning).
    """
    ray = import_ray()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0.0) >= cpus and r.get("GPU", 0.0) >= gpus for r in nodes):
        return
    largest_cpu = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
    largest_gpu = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    raise ValueError(
        f"no node of the Ray cluster can run a trial needing {cpus:g} CPU(s) and {gpus:g} GPU(s): its "
        f"{len(nodes)} node(s) have at most {largest_cpu:g} CPUs and {largest_gpu:g} GPUs. Lower trial_cpus/"
        "trial_gpus (--trial-cpus/--trial-gpus), or add a node that large to the cluster."
    )


# -- the worker side -----------------------------------------------------------------

_WORKER_OBJECTIVE: tuple[str, Objective] | None = None


def worker_objective(spec: Mapping[str, Any], store: TrialStore | None = None) -> Objective:
    """The local :class:`Objective` a worker builds from a plain-data ``spec`` (kept for the
    next trial of the same spec and store, so that the task is loaded once per worker process).

    Remote trials pass no store (the driver owns it); the Ray Tune baseline passes the env's.
    """
    global _WORKER_OBJECTIVE
    key = json.dumps([dict(spec), None if store is None else str(store.path)], sort_keys=True)
    if _WORKER_OBJECTIVE is None or _WORKER_OBJECTIVE[0] != key:
        objective = Objective(
            spec["task"],
            spec["backend"],
            model=spec["model"],
            data_dir=spec["data_dir"],
            fidelity=Fidelity(**spec["fidelity"]),
            store=store,
            device=spec["device"],
        )
        _WORKER_OBJECTIVE = (key, objective)
    return _WORKER_OBJECTIVE[1]


def run_trial(spec: Mapping[str, Any], config: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What a Ray worker runs for one trial: the result as plain data."""
    import torch

    # A trial given n CPUs uses n threads, not one per core of a node it shares.
    torch.set_num_threads(max(1, int(spec["threads"])))
    objective = worker_objective(spec)
    # The backend, not the objective: the driver already looked the trial up, and a worker
    # that lives for days must not keep every result in memory.
    result = objective.backend.evaluate(objective.task, HyperParams.from_dict(dict(config)), objective.fidelity, seed)
    return {**result.to_dict(), "extra": {**result.extra, "node": socket.gethostname(), "pid": os.getpid()}}


_default_run_trial = run_trial


# -- the driver side -----------------------------------------------------------------

_REPLAYS = (
    "a replaying backend (recorded, table) answers in microseconds: remote trials are for the live backends "
    "'head' and 'finetune'."
)


class RemoteObjective(Objective):
    """An :class:`Objective` whose trials run as Ray tasks on a cluster.

    Args:
        task: a task name or ``custom:<path>`` (a name, so that workers load it themselves;
            the files must be at the same path on every node).
        backend: a live backend name, ``"head"`` or ``"finetune"``.
        model: Hugging Face model id or folder (on every node); ``None`` for the packaged MiniLM.
        data_dir: the data folder on the workers (default: the driver's ``$LEGAL_HPO_DATA``).
        fidelity: training-set cap and max length.
        store: the trial store file, read and written by this (driver) process only.
        device: torch device on the worker; ``None`` picks the GPU Ray assigns, if any.
        address: the Ray cluster (see :func:`connect`); ``None``: ``$RAY_ADDRESS`` or local.
        trial_cpus: CPUs reserved for each trial (and its torch threads).
        trial_gpus: GPUs reserved for each trial; fractions (0.25) share a GPU.
        retries: how often Ray reruns a trial whose worker died before reporting it failed.
        run_trial: the function a worker runs, ``run_trial(spec, config, seed) -> dict``
            (default :func:`run_trial`); replace it to instrument trials.

    Raises:
        ImportError: Ray is not installed.
        ConnectionError: the cluster address does not answer.
        ValueError: a replaying backend, or a resource request no node can satisfy.
    """

    def __init__(
        self,
        task: str,
        backend: str = "head",
        *,
        model: str | None = None,
        data_dir: str | os.PathLike | None = None,
        fidelity: Fidelity | None = None,
        store: str | os.PathLike | TrialStore | None = None,
        device: str | None = None,
        address: str | None = None,
        trial_cpus: float = 1.0,
        trial_gpus: float = 0.0,
        retries: int = 0,
        run_trial: Callable[[Mapping[str, Any], Mapping[str, Any], int], dict[str, Any]] | None = None,
    ) -> None:
        if backend == "recorded" or getattr(backend, "replays", False):
            raise ValueError(_REPLAYS)
        if not isinstance(task, str) or not isinstance(backend, str):
            raise TypeError(
                "remote trials take a task name and a backend name (plain data that workers can load), "
                f"not {type(task).__name__} and {type(backend).__name__}."
            )
        self.trial_cpus = _check_amount("trial_cpus", trial_cpus, 0.0)
        self.trial_gpus = _check_amount("trial_gpus", trial_gpus, 0.0)
        if self.trial_cpus == 0 and self.trial_gpus == 0:
            raise ValueError("a remote trial needs some resource: trial_cpus or trial_gpus must be > 0.")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be an integer >= 0.")
        if device is not None and device.startswith("cuda") and self.trial_gpus == 0:
            raise ValueError(f"device={device!r} on remote trials needs trial_gpus > 0: Ray hides GPUs it did not assign.")
        import_ray()  # before loading anything: a missing Ray is the first thing to say
        super().__init__(task, backend, model=model, data_dir=data_dir, fidelity=fidelity, store=store, device="cpu")
        if self.backend.replays:
            raise ValueError(_REPLAYS)
        self.address = address
        self.retries = retries
        self.run_trial = run_trial or _default_run_trial
        data_dir = data_dir if data_dir is not None else os.environ.get("LEGAL_HPO_DATA")
        self.spec: dict[str, Any] = {
            # absolute paths: a worker's working directory is not this process's
            "task": self.task_name,  # a custom task's name holds its resolved path
            "backend": backend,
            "model": model if model is None or not os.path.exists(model) else os.path.abspath(model),
            "data_dir": None if data_dir is None else os.path.abspath(os.path.expanduser(os.fspath(data_dir))),
            "fidelity": self.fidelity.to_dict(),
            "device": device,
            "threads": max(1, math.ceil(self.trial_cpus)),
        }
        self._remote: Any = None
        self._connect()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_remote"] = None  # a Ray handle belongs to one process
        return state

    def _connect(self) -> None:
        connect(self.address)
        check_resources(self.trial_cpus, self.trial_gpus)

    def _submit(self, config: HyperParams, seed: int) -> Any:
        ray = import_ray()
        if self._remote is None:
            self._remote = ray.remote(self.run_trial).options(
                num_cpus=self.trial_cpus, num_gpus=self.trial_gpus, max_retries=self.retries,
                name=f"legal-hpo trial {self.task_name}",
            )
        return self._remote.remote(self.spec, config.to_dict(), seed)

    def __call__(
        self, config: HyperParams | Mapping[str, Any] | None = None, seed: int = 0, *, progress: bool = False
    ) -> TrialResult:
        """One trial on the cluster (``progress`` is ignored: the worker trains silently)."""
        return self.evaluate_many([config], [seed])[0]

    def evaluate_many(
        self,
        configs: Sequence[HyperParams | Mapping[str, Any] | None],
        seeds: Sequence[int] | None = None,
        *,
        max_in_flight: int | None = None,
    ) -> list[TrialResult]:
        """Several trials at once, as many in parallel as the cluster (or ``max_in_flight``) allows.

        Trials in the store (or asked before in this process) are not sent again, nor are
        duplicates within the batch.

        Args:
            configs: the configurations, each a :class:`HyperParams` or a mapping of overrides.
            seeds: one seed per configuration (default: 0 for all).
            max_in_flight: most trials submitted at a time (``None``: all at once).

        Returns:
            One result per configuration, in order; failed trials are flagged, not raised.
        """
        seeds = [0] * len(configs) if seeds is None else list(seeds)
        if len(seeds) != len(configs):
            raise ValueError(f"got {len(configs)} configurations but {len(seeds)} seeds: give one seed each.")
        limit = max_in_flight
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"max_in_flight={max_in_flight!r} must be an integer >= 1 (or None).")
        trials = []
        for config, seed in zip(configs, seeds):
            seed = check_seed(seed)
            config = as_config(config)
            trials.append((self.key(config, seed), config, seed))
        done: dict[str, TrialResult] = {}
        todo: dict[str, tuple[HyperParams, int]] = {}
        for key, config, seed in trials:
            if key in done or key in todo:
                continue
            found = self.lookup(key)
            if found is not None:
                done[key] = found
            else:
                todo[key] = (config, seed)
        self._gather(todo, done, max_in_flight or len(todo) or 1)
        return [done[key] for key, _, _ in trials]

    def _gather(self, todo: dict[str, tuple[HyperParams, int]], done: dict[str, TrialResult], limit: int) -> None:
        ray = import_ray()
        if not todo:
            return
        # Every batch: a copy of this objective may live in another process now (pickled, or forked).
        connect(self.address)
        waiting = list(todo.items())
        running: dict[Any, tuple[str, float]] = {}
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    key, (config, seed) = waiting.pop(0)
                    running[self._submit(config, seed)] = (key, time.perf_counter())
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    key, started = running.pop(ref)
                    config, seed = todo[key]
                    result = self._collect(ref, config, seed, started)
                    done[key] = result
                    if "failed" not in result.extra:  # a failed trial is retried when asked again
                        self.record(key, result)
        finally:
            for ref in running:  # an error or Ctrl-C: do not leave trials training for nobody
                ray.cancel(ref, force=True)

    def _collect(self, ref: Any, config: HyperParams, seed: int, started: float) -> TrialResult:
        """The trial's result, a failed-trial result when its worker died, or its own error."""
        ray = import_ray()
        exceptions = ray.exceptions
        try:
            data = ray.get(ref)
        except exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryError":  # torch's (CUDA) OOM
                return self._failed(config, seed, f"out of memory in the trial: {type(cause).__name__}: {cause}", started)
            raise  # the trial's own error (bad data, model...): as it would be raised locally
        except exceptions.OutOfMemoryError as err:
            reason = f"Ray killed the worker: its node ran out of memory ({_first_line(err)})"
            return self._failed(config, seed, reason, started)
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.LocalRayletDiedError,
                exceptions.ObjectLostError, exceptions.TaskUnschedulableError) as err:
            return self._failed(config, seed, f"the trial's worker died: {type(err).__name__}: {_first_line(err)}", started)
        result = TrialResult.from_dict(data)
        if result.data_hash != self.task.data_hash:
            raise ValueError(
                f"a worker (on {result.extra.get('node')}) read different data for {self.task_name} than this "
                f"process (hash {result.data_hash} != {self.task.data_hash}): make the data files the same on every node."
            )
        return result

    def _failed(self, config: HyperParams, seed: int, reason: str, started: float) -> TrialResult:
        from legal_hpo_env.version import __version__

        task = self.task
        zero = DIVERGED_SCORE
        return TrialResult(
            task=task.name, backend=self.backend.name, model=self.backend.model_name or DEFAULT_MODEL,
            config=config.to_dict(), fidelity=self.fidelity.to_dict(), seed=seed, metric=task.spec.metric,
            dev_curve=[], train_loss=[], selected_epoch=0, dev_score=zero, test_score=zero, dev_accuracy=zero,
            dev_macro_f1=zero, test_accuracy=zero, test_macro_f1=zero, diverged=True,
            seconds=time.perf_counter() - started, sizes=task.sizes(), data_hash=task.data_hash,
            code_version=f"{__version__}+{self.backend.name}.{self.backend.version}", device="remote",
            extra={"failed": reason, "task_meta": task.meta_features()},
        )


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# -- RLlib ---------------------------------------------------------------------------


def _make_env(env_config: Mapping[str, Any]) -> Any:
    import gymnasium as gym

    import legal_hpo_env  # noqa: F401  (registers the id in this process, a Ray worker too)

    return gym.make("LegalHPO-v0", **dict(env_config))


def register_rllib_env(name: str = "LegalHPO-v0") -> str:
    """Register ``LegalHPO-v0`` with Ray (``ray.tune.registry.register_env``) for RLlib.

    The env's keyword arguments are RLlib's ``env_config``:
    ``PPOConfig().environment(name, env_config={"task": "unfair_tos", ...})``.
    """
    import_ray()
    from ray.tune.registry import register_env

    register_env(name, _make_env)
    return name
