"""Ray Tune with ASHA as a baseline searcher: the env's objective, grid and budget, epochs as the resource.

Each Ray Tune trial samples a configuration of the env's grid (every hyperparameter but
``epochs``) and a training seed, then evaluates it at increasing epochs, the rungs of
asynchronous successive halving (ASHA): ``grace``, ``grace * eta``, ... up to the grid's
largest ``epochs``, each snapped up to the epochs grid. After each rung it reports its dev
score; ASHA stops the trials below the top ``1 / eta`` of their rung (the rungs are
:func:`agents.asha.asha_rungs`; :class:`agents.asha.ASHA` is the same search in process,
for benchmarks on recorded tables). Evaluating a
configuration with ``epochs=e`` is the env's own trial of that configuration: on the
recorded backend it replays the first ``e`` epochs of the recorded run (the table's
learning-curve semantics, no compute), on live backends it trains ``e`` epochs (the
learning-rate schedule spans the run, so a rung retrains from scratch; ASHA saves the
epochs the losing configurations never reach).

The budget is the env's: ``budget`` Ray Tune trials (configurations), like ``budget``
trials of the other searchers. A configuration ASHA stopped early enters the record with
the epochs it reached, so the record's configurations are grid points the env can score
(and the protocol's regret applies unchanged). ``trial_seconds`` is the compute the search
cost: on the recorded backend the recorded seconds of the epochs each trial reached (a
rung continues the run), on live backends the sum over its rungs (each retrains).

On live backends the Ray Tune workers evaluate through the env's objective, trial store
included: its file must be on a file system they share with this process (a single
machine, or a shared disk).

>>> import gymnasium as gym, legal_hpo_env
>>> from agents.ray_tune import RayTuneASHA
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", action_mode="direct")  # doctest: +SKIP
>>> RayTuneASHA().run(env, seed=0).best_config                              # doctest: +SKIP
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any, ClassVar

import gymnasium as gym

from agents.asha import asha_rungs, check_reduction_factor
from agents.base import Searcher, TuningRun
from legal_hpo_env.backends.base import DIVERGED_SCORE
from legal_hpo_env.checks import is_int
from legal_hpo_env.execution import LocalExecutor
from legal_hpo_env.space import HyperParams

__all__ = ["RayTuneASHA", "asha_rungs"]


def _trainable(config: dict[str, Any], objective: Any, rungs: list[int]) -> None:
    """One Ray Tune trial: the configuration at each rung's epochs, reported after each."""
    from ray import tune

    seed = int(config["trial_seed"])
    if not isinstance(objective.executor, LocalExecutor):
        # This trial already runs on a Ray worker with its resources: evaluate here instead
        # of sending nested tasks that would wait for the same CPUs.
        objective = objective.with_executor(LocalExecutor())
    base = HyperParams.from_dict({k: v for k, v in config.items() if k != "trial_seed"})
    # A replayed rung continues the recorded run (its first e epochs); a live one retrains.
    continues = objective.replays
    seconds = 0.0
    for epochs in rungs:
        result = objective(base.replace(epochs=epochs), seed)
        seconds = result.seconds if continues else seconds + result.seconds
        tune.report({
            "epochs": epochs, "dev_score": result.dev_score, "test_score": result.test_score,
            "diverged": bool(result.diverged), "rung_seconds_total": seconds, "trial_seed": seed,
            "finished_at": time.time(),
        })


class RayTuneASHA(Searcher):
    """Ray Tune's ASHA scheduler over the env's grid, with epochs as the resource.

    Configurations are sampled uniformly from the grid by Tune's seeded random search.
    With ``max_concurrent_trials=1`` (the default) a seed fixes the run; with more, trials
    run in parallel on the Ray cluster and ASHA's decisions depend on which finish first.
    A Ray Tune trial that errors (its worker died, say) enters the record as a diverged
    trial at the first rung; when every trial errors, the first error is raised.

    Args:
        reduction_factor: ASHA's ``eta``: each rung keeps the top ``1 / eta`` (and rungs are
            ``eta`` times apart in epochs).
        max_concurrent_trials: Ray Tune trials at a time (``None``: as resources allow).
        trial_cpus: CPUs per Ray Tune trial (an env on Ray: its own setting wins).
        trial_gpus: GPUs per Ray Tune trial (an env on Ray: its own setting wins).
        address: the Ray cluster (``None``: the env's, ``$RAY_ADDRESS``, or a local instance).
        storage_path: where Ray Tune writes its trial records (``None``: a temporary folder,
            removed after the run).
    """

    name: ClassVar[str] = "ray-tune-asha"

    def __init__(
        self,
        reduction_factor: float = 3.0,
        max_concurrent_trials: int | None = 1,
        trial_cpus: float = 1.0,
        trial_gpus: float = 0.0,
        address: str | None = None,
        storage_path: str | None = None,
    ) -> None:
        concurrent = max_concurrent_trials
        if concurrent is not None and (not is_int(concurrent) or concurrent < 1):
            raise ValueError(f"max_concurrent_trials={max_concurrent_trials!r} must be an integer >= 1 (or None).")
        self.reduction_factor = check_reduction_factor(reduction_factor)
        self.max_concurrent_trials = max_concurrent_trials
        self.trial_cpus = trial_cpus
        self.trial_gpus = trial_gpus
        self.address = address
        self.storage_path = storage_path

    def __repr__(self) -> str:
        return (f"RayTuneASHA(reduction_factor={self.reduction_factor:g}, "
                f"max_concurrent_trials={self.max_concurrent_trials})")

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        from legal_hpo_env.distributed import check_resources, connect, import_ray

        import_ray()
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.basic_variant import BasicVariantGenerator

        base = env.unwrapped
        start = time.perf_counter()
        _, info = env.reset(seed=seed)
        view = base.view
        objective, space = view.objective, view.space
        options = getattr(objective.executor, "options", None)  # a Ray executor's resources win
        cpus = options.trial_cpus if options else self.trial_cpus
        gpus = options.trial_gpus if options else self.trial_gpus
        connect(self.address or (options.address if options else None))
        check_resources(cpus, gpus)

        rungs = asha_rungs(tuple(space["epochs"].grid), self.reduction_factor)
        param_space: dict[str, Any] = {d.name: tune.choice(list(d.grid))
                                       for d in space.dimensions if d.name != "epochs"}
        param_space["trial_seed"] = tune.randint(0, base.trial_seeds)
        scheduler = ASHAScheduler(
            time_attr="epochs", max_t=rungs[-1], grace_period=rungs[0], reduction_factor=self.reduction_factor
        )
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, objective=objective, rungs=rungs), {"cpu": cpus, "gpu": gpus}
        )
        with tempfile.TemporaryDirectory(prefix="legal-hpo-tune-") as scratch:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric="dev_score", mode="max", scheduler=scheduler, num_samples=base.budget,
                    # the limit goes to the generator: Tune ignores max_concurrent_trials
                    # when given a generator instance (needed here for its random_state)
                    search_alg=BasicVariantGenerator(random_state=seed, max_concurrent=self.max_concurrent_trials or 0),
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    storage_path=self.storage_path or scratch, name=f"legal-hpo-{self.name}", verbose=0,
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
            grid = tuner.fit()
            results = [grid[i] for i in range(len(grid))]
        finished = [r for r in results if r.metrics and "dev_score" in r.metrics]
        if not finished:
            first = next((r.error for r in results if r.error is not None), None)
            raise RuntimeError(f"every Ray Tune trial failed; the first error: {first}")
        return self._record(results, rungs, str(info.get("task", "")), seed, time.perf_counter() - start)

    def _record(self, results: list[Any], rungs: list[int], task: str, seed: int | None, seconds: float) -> TuningRun:
        """The Ray Tune trials in the order they finished, as the other searchers' record."""
        run = TuningRun(method=self.name, task=task, seed=seed, seconds=seconds)
        best_test = DIVERGED_SCORE
        order = sorted(results, key=lambda r: (r.metrics or {}).get("finished_at", math.inf))
        for result in order:
            metrics = result.metrics or {}
            config = {k: v for k, v in result.config.items() if k != "trial_seed"}
            if "dev_score" not in metrics:  # the trial failed before its first rung: scored as diverged
                config["epochs"], score, diverged = rungs[0], DIVERGED_SCORE, True
            else:
                config["epochs"] = int(metrics["epochs"])
                score, diverged = float(metrics["dev_score"]), bool(metrics["diverged"])
                run.trial_seconds += float(metrics["rung_seconds_total"])
            run.configs.append(config)
            run.dev_scores.append(score)
            if not diverged and (run.best_config is None or score > run.best_score):
                run.best_config, run.best_score, best_test = config, score, float(metrics["test_score"])
            run.best_curve.append(run.best_score if run.best_config is not None else DIVERGED_SCORE)
        run.best_test_score = best_test
        return run
