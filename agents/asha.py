"""Asynchronous successive halving (ASHA) in process: Optuna's pruner, epochs as the resource.

ASHA (Li et al., 2020) samples configurations at random and evaluates each at increasing
epochs, the rungs ``grace``, ``grace * eta``, ... up to the grid's largest ``epochs``;
after each rung a trial goes on only if its dev score is in the top ``1 / eta`` of the
scores reported at that rung so far. :class:`ASHA` is that algorithm as Optuna implements
it (:class:`optuna.pruners.SuccessiveHalvingPruner` with a seeded random sampler), run in
this process: on a recorded table an episode takes milliseconds, where a Ray Tune run
(:class:`agents.ray_tune.RayTuneASHA`, the same rungs and budget on a Ray cluster) spends
far longer scheduling each trial than a table takes to replay it. Use this one to
benchmark on tables, Ray Tune's to tune live trials on a cluster.

The two share their semantics: the budget is ``budget`` configurations; evaluating a
configuration at ``e`` epochs is the env's own trial of it with ``epochs=e`` (on a
recorded table the first ``e`` epochs of the recorded run, live a fresh ``e``-epoch run);
a stopped configuration enters the record with the epochs it reached, so the record holds
grid points the env can score; ``trial_seconds`` is what the search cost (recorded: the
seconds of the epochs each trial reached, a rung continuing the run; live: the sum over
its rungs, each retraining).

>>> import gymnasium as gym, legal_hpo_env
>>> from agents.asha import ASHA
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", action_mode="direct")  # doctest: +SKIP
>>> ASHA().run(env, seed=0).best_config                                     # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Searcher, TuningRun
from legal_hpo_env.backends.base import DIVERGED_SCORE
from legal_hpo_env.checks import is_number
from legal_hpo_env.space import HyperParams

__all__ = ["ASHA", "asha_rungs", "check_reduction_factor"]


def asha_rungs(epochs_grid: tuple[int, ...], reduction_factor: float) -> list[int]:
    """The epochs a trial is evaluated at: ASHA's milestones, then the grid's largest epochs.

    The milestones are ``grace * eta**k`` below the grid's largest epochs, each snapped up to the grid.
    """
    grid = sorted(epochs_grid)
    grace, top = grid[0], grid[-1]
    rungs = {top}
    k = 0
    while grace * reduction_factor**k < top:
        milestone = grace * reduction_factor**k
        rungs.add(min(e for e in grid if e >= milestone))
        k += 1
    return sorted(rungs)


def check_reduction_factor(reduction_factor: float) -> float:
    """ASHA's ``eta`` as a float, or a ValueError saying what it must be."""
    if not is_number(reduction_factor) or not math.isfinite(reduction_factor) or not reduction_factor > 1:
        raise ValueError(f"reduction_factor={reduction_factor!r} must be a number > 1.")
    return float(reduction_factor)


class ASHA(Searcher):
    """ASHA over the env's grid (every hyperparameter but ``epochs``), epochs as the resource.

    Configurations are drawn uniformly from the grid and training seeds uniformly from the
    env's, both from generators seeded with the episode seed, so a seed fixes the run.

    Args:
        reduction_factor: ASHA's ``eta``, a whole number: each rung keeps the top ``1 / eta``
            (and rungs are ``eta`` times apart in epochs).
    """

    name: ClassVar[str] = "asha"

    def __init__(self, reduction_factor: int = 3) -> None:
        eta = check_reduction_factor(reduction_factor)
        if not eta.is_integer():  # Optuna's pruner keeps the top 1/eta by index
            raise ValueError(f"reduction_factor={reduction_factor!r} must be a whole number here (Optuna's ASHA).")
        self.reduction_factor = int(eta)

    def __repr__(self) -> str:
        return f"ASHA(reduction_factor={self.reduction_factor})"

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        from agents.baselines import _import_optuna

        optuna = _import_optuna()
        base = env.unwrapped
        start = time.perf_counter()
        _, info = env.reset(seed=seed)
        objective, space = base.view.objective, base.view.space
        rungs = asha_rungs(tuple(space["epochs"].grid), self.reduction_factor)
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=seed),
            # rungs at min_resource * eta**k, compared on the epochs reported (the step)
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=rungs[0],
                                                          reduction_factor=self.reduction_factor),
        )
        seeds = np.random.default_rng(seed)
        run = TuningRun(method=self.name, task=str(info.get("task", "")), seed=seed)
        best_test = DIVERGED_SCORE
        for _ in range(base.budget):
            trial = study.ask()
            config = HyperParams.from_dict({
                d.name: d.grid[trial.suggest_categorical(d.name, list(range(len(d.grid))))]
                for d in space.dimensions if d.name != "epochs"
            })
            trial_seed = int(seeds.integers(base.trial_seeds))
            seconds = 0.0
            for epochs in rungs:
                result = objective(config.replace(epochs=epochs), trial_seed)
                # a recorded rung continues the run (its first e epochs); a live one retrains
                seconds = result.seconds if objective.replays else seconds + result.seconds
                trial.report(result.dev_score, epochs)
                if result.diverged or trial.should_prune():
                    break
            stopped = epochs < rungs[-1]
            study.tell(trial, None if stopped else result.dev_score,
                       state=optuna.trial.TrialState.PRUNED if stopped else None)
            run.configs.append(config.replace(epochs=epochs).to_dict())
            run.dev_scores.append(result.dev_score)
            run.trial_seconds += seconds
            if not result.diverged and (run.best_config is None or result.dev_score > run.best_score):
                run.best_config, run.best_score, run.best_seed = run.configs[-1], result.dev_score, trial_seed
                best_test = result.test_score
            run.best_curve.append(run.best_score if run.best_config is not None else DIVERGED_SCORE)
        run.best_test_score = best_test
        run.seconds = time.perf_counter() - start
        return run
