"""Tuning within a time budget: Optuna's TPE, with Hyperband pruning over epochs.

:class:`BudgetedTPE` asks Optuna's TPE sampler for a whole configuration (``epochs``
included), trains it, and reports the trial's dev score after every epoch
(``trial.report``); Optuna's :class:`~optuna.pruners.HyperbandPruner` (or
:class:`~optuna.pruners.SuccessiveHalvingPruner`), with epochs as the resource, stops the
trials that fall behind the others at the same epoch (``trial.should_prune``). The
reported value is the best dev score so far, what the trial would deliver if stopped
there (a run keeps its best dev epoch).

The budget is time. Before each trial the search compares the time left with the
expected cost of a trial, the mean time of the trials so far that trained (free repeats
and stored trials left out), and starts no trial that would not fit; a trial once started
runs to its end, so the budget is exceeded by at most one trial's time. The number of
trials is open-ended (``max_trials`` caps it). Live backends spend wall-clock time (every
step of the search counts); the recorded backend spends the seconds its table recorded
(a trial stopped after ``k`` of ``n`` epochs costs ``k / n`` of its run), so a budget
there simulates a live one in milliseconds.

Pruned trials and the trial store: a pruned trial's result is not the run of its
configuration (the learning-rate schedule spans the planned epochs, so its first ``k``
epochs are not a ``k``-epoch run either), so it is stored under no key; the report keeps
it, with ``pruned_at_epoch``. Completed trials are stored as usual. A configuration found
in the store is not trained again: its stored learning curve is reported epoch by epoch
to the pruner like a live one, so a rerun with the same seed makes the same decisions
(the trials it prunes train again up to the same epoch). Only completed trials are
candidates for the best configuration (:func:`legal_hpo_env.tuning_report.pick_best`).

>>> from legal_hpo_env.objective import Objective
>>> from agents.budgeted import BudgetedTPE
>>> run = BudgetedTPE("2m").search(Objective("unfair_tos", "recorded"), seed=0)  # doctest: +SKIP
>>> run.best()["config"], run.time_used, sum(t["pruned"] for t in run.trials)   # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Searcher, TuningRun
from legal_hpo_env.backends.base import DIVERGED_SCORE, EpochReport, TrialResult
from legal_hpo_env.checks import is_int, is_number
from legal_hpo_env.execution import LocalExecutor
from legal_hpo_env.objective import Objective
from legal_hpo_env.space import SPACE, Dimension, HyperParams, SearchSpace
from legal_hpo_env.tuning_report import best_summary, pick_best, run_record, seed_stats, trial_seeds_of

__all__ = ["BudgetedTPE", "BudgetedRun", "DURATION_FORMS", "parse_duration"]

#: The forms of a duration :func:`parse_duration` reads (quoted by its error messages).
DURATION_FORMS = "90s, 45m, 1.5h or plain seconds (90)"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Trials in a row that only repeat finished ones (nothing left to learn) before the search stops.
MAX_REPEATS = 25
PRUNERS = ("hyperband", "successive_halving")


def parse_duration(text: str, what: str = "time budget") -> float:
    """Seconds in ``text``: ``"90"``, ``"90s"``, ``"45m"``, ``"1.5h"``; a ValueError naming the forms otherwise."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if match is None:
        raise ValueError(f"{what} {text!r} is not a duration: give it as {DURATION_FORMS}.")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if not seconds > 0:
        raise ValueError(f"{what} {text!r} leaves no time: give a positive duration, as {DURATION_FORMS}.")
    return seconds


@dataclass
class BudgetedRun:
    """The record of one budgeted search.

    Attributes:
        task: the task tuned.
        seed: the search seed (sampler, pruner and drawn training seeds).
        time_budget: the budget, in seconds of ``clock``.
        clock: ``"wall"`` (live training) or ``"recorded"`` (the table's seconds, simulated).
        pruner: the pruner and its settings.
        max_trials: the cap on trials (``None``: as many as the budget allows).
        trials: one record per trial: its number (from 1), configuration, seed, dev and test
            metrics (as :func:`~legal_hpo_env.tuning_report.run_record`), ``dev_curve`` (the
            epochs it reached), ``pruned`` and ``pruned_at_epoch``, and ``budget_seconds``
            (what it cost on ``clock``). A pruned trial has no test scores (it is no candidate).
        results: the results behind each record, one per training seed.
        time_used: seconds of ``clock`` the search spent.
        stop_reason: why it stopped: ``"time budget"``, ``"max trials"`` or ``"converged"``
            (the sampler only repeated finished trials, :data:`MAX_REPEATS` times in a row).
        seconds: wall-clock seconds of the search.
    """

    task: str
    seed: int | None
    time_budget: float
    clock: str
    pruner: dict[str, Any]
    max_trials: int | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    results: list[list[TrialResult]] = field(default_factory=list)
    time_used: float = 0.0
    stop_reason: str = ""
    seconds: float = 0.0
    method: ClassVar[str] = "budgeted-tpe"

    @property
    def completed(self) -> list[dict[str, Any]]:
        """The trials that ran every planned epoch (diverged ones included)."""
        return [t for t in self.trials if not t["pruned"]]

    def best(self) -> dict[str, Any] | None:
        """The best completed trial by the report's rule (:data:`~legal_hpo_env.tuning_report.TIE_BREAK`).

        As :func:`~legal_hpo_env.tuning_report.best_summary` gives it, or ``None`` when no
        trial completed without diverging.
        """
        train = next((r[0].sizes.get("train", 1) for r in self.results if r), 1)
        index = pick_best(self.trials, train)  # pruned trials are never picked
        return None if index is None else best_summary(self.trials, index)

    def summary(self) -> dict[str, Any]:
        """The budget's figures for a report: budget, time used, clock, pruner, trials and why it stopped."""
        return {
            "time_budget": self.time_budget,
            "time_used": self.time_used,
            "clock": self.clock,
            "pruner": self.pruner,
            "max_trials": self.max_trials,
            "stop_reason": self.stop_reason,
            "trials_completed": len(self.completed),
            "trials_pruned": len(self.trials) - len(self.completed),
        }

    def tuning_run(self) -> TuningRun:
        """The run as the other searchers' record: every trial, and the best completed one so far."""
        run = TuningRun(method=self.method, task=self.task, seed=self.seed, seconds=self.seconds)
        best: dict[str, Any] | None = None
        for trial in self.trials:
            run.configs.append(dict(trial["config"]))
            run.dev_scores.append(float(trial["dev_score"]))
            run.trial_seconds += float(trial["seconds"])
            candidate = not trial["pruned"] and not trial["diverged"]
            if candidate and (best is None or trial["dev_score"] > best["dev_score"]):
                best = trial
            run.best_curve.append(DIVERGED_SCORE if best is None else float(best["dev_score"]))
        if best is not None:
            run.best_config, run.best_score = dict(best["config"]), float(best["dev_score"])
            run.best_test_score, run.best_seed = float(best["test_score"]), int(best["seed"])
        return run


class _Clock:
    """Seconds of the budget: wall-clock time, or the seconds charged to it (simulated)."""

    def __init__(self, simulated: bool) -> None:
        self.simulated = simulated
        self._start = time.perf_counter()
        self._charged = 0.0

    def now(self) -> float:
        return self._charged if self.simulated else time.perf_counter() - self._start

    def charge(self, seconds: float) -> None:
        if self.simulated:
            self._charged += seconds


class BudgetedTPE(Searcher):
    """Optuna's TPE within a time budget, its trials pruned over epochs by Hyperband.

    Args:
        time_budget: seconds, or a duration such as ``"45m"`` (:func:`parse_duration`).
        max_trials: the most trials to run (``None``: as many as the budget allows).
        pruner: ``"hyperband"`` (Optuna's ``HyperbandPruner``) or ``"successive_halving"``
            (``SuccessiveHalvingPruner``); the resource is epochs, from the smallest to the
            largest of the grid.
        reduction_factor: the pruner's ``eta``: a rung keeps the top ``1 / eta`` of the
            trials that reached it.
        n_startup_trials: random trials before TPE models the scores.
        multivariate: model the dimensions jointly (Optuna's multivariate TPE).
        ordered: ask numeric dimensions as ordered integer indices instead of categories
            (as :class:`~agents.baselines.TPESearch`).
        trial_seeds: training seeds per completed trial: the drawn one and the
            ``trial_seeds - 1`` smallest others; the sampler and pruner see the drawn
            seed's scores, the pick of the best uses the mean.
        progress: show one progress bar over the budget on stderr, with the best dev score.
    """

    name: ClassVar[str] = "budgeted-tpe"

    def __init__(
        self,
        time_budget: float | str,
        *,
        max_trials: int | None = None,
        pruner: str = "hyperband",
        reduction_factor: int = 3,
        n_startup_trials: int = 10,
        multivariate: bool = True,
        ordered: bool = False,
        trial_seeds: int = 1,
        progress: bool = False,
    ) -> None:
        if isinstance(time_budget, str):
            time_budget = parse_duration(time_budget)
        if not is_number(time_budget) or not math.isfinite(time_budget) or time_budget <= 0:
            raise ValueError(f"time_budget={time_budget!r} must be a positive number of seconds or a duration "
                             f"({DURATION_FORMS}).")
        if max_trials is not None and (not is_int(max_trials) or max_trials < 1):
            raise ValueError(f"max_trials={max_trials!r} must be an integer >= 1 (or None: as the budget allows).")
        if pruner not in PRUNERS:
            raise ValueError(f"pruner={pruner!r}: use one of {list(PRUNERS)}.")
        if not is_int(reduction_factor) or reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor!r} must be an integer >= 2.")
        if not is_int(n_startup_trials) or n_startup_trials < 0:
            raise ValueError(f"n_startup_trials={n_startup_trials!r} must be an integer >= 0.")
        if not is_int(trial_seeds) or trial_seeds < 1:
            raise ValueError(f"trial_seeds={trial_seeds!r} must be an integer >= 1.")
        self.time_budget = float(time_budget)
        self.max_trials = None if max_trials is None else int(max_trials)
        self.pruner = pruner
        self.reduction_factor = int(reduction_factor)
        self.n_startup_trials = int(n_startup_trials)
        self.multivariate = multivariate
        self.ordered = ordered
        self.trial_seeds = int(trial_seeds)
        self.progress = progress

    def __repr__(self) -> str:
        return (f"BudgetedTPE(time_budget={self.time_budget:g}, max_trials={self.max_trials}, pruner={self.pruner!r}, "
                f"reduction_factor={self.reduction_factor})")

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        """Search the task of the env's episode (``env.reset(seed=seed)``) with its objective, grid and seeds.

        The env's trial budget is not used: the time budget (and ``max_trials``) decide.
        """
        env.reset(seed=seed)
        base: Any = env.unwrapped
        view = base.view
        return self.search(view.objective, seed, space=view.space, seed_pool=base.trial_seeds).tuning_run()

    def search(
        self, objective: Objective, seed: int | None = 0, *, space: SearchSpace | None = None,
        seed_pool: int | None = None,
    ) -> BudgetedRun:
        """Tune ``objective`` until the budget is spent.

        Args:
            objective: the task, backend and fidelity (with its trial store), e.g. an env's
                ``env.unwrapped.view.objective``.
            seed: seeds the sampler and the draw of training seeds: the same seed, the same
                search (on the recorded backend; live, as far as the budget reaches alike).
            space: the grid to search (default: the table's grid when replaying, else the
                full search space).
            seed_pool: each trial's training seed is drawn from ``range(seed_pool)`` (default:
                every recorded seed when replaying, else seed 0 only, as the env does).
        """
        optuna = _import_optuna()
        replays = objective.replays
        if not replays and not isinstance(objective.executor, LocalExecutor):
            raise ValueError(
                "the budgeted search prunes trials between epochs, which needs each trial trained in this process: "
                "use the objective without a Ray executor (drop --ray)."
            )
        if space is None:
            space = objective.replay_backend.space(objective.task_name) if replays else SPACE
        if seed_pool is None:
            seed_pool = objective.replay_backend.num_seeds() if replays else 1
        if replays and self.trial_seeds > seed_pool:
            raise ValueError(f"trial_seeds={self.trial_seeds}: the table holds {seed_pool} seeds per configuration.")
        epochs = sorted(space["epochs"].grid)
        study = self._study(optuna, epochs[0], epochs[-1], seed)
        run = BudgetedRun(
            task=objective.task_name, seed=seed, time_budget=self.time_budget, clock="recorded" if replays else "wall",
            pruner={"name": self.pruner, "resource": "epochs", "min_resource": epochs[0], "max_resource": epochs[-1],
                    "reduction_factor": self.reduction_factor},
            max_trials=self.max_trials,
        )
        rng = np.random.default_rng(seed)
        clock = _Clock(simulated=replays)
        from tqdm.auto import tqdm

        bar = tqdm(total=self.time_budget, desc=f"tuning {objective.task_name}", file=sys.stderr,
                   disable=not self.progress,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s{postfix}")
        durations: list[float] = []  # of the trials that trained: the expected cost of the next
        finished: dict[tuple[HyperParams, int], int] = {}  # (configuration, seed) of completed trials -> trial
        repeats = 0
        started = time.perf_counter()
        try:
            while True:
                left = self.time_budget - clock.now()
                if self.max_trials is not None and len(run.trials) >= self.max_trials:
                    run.stop_reason = "max trials"
                    break
                if left <= 0 or (durations and left < sum(durations) / len(durations)):
                    run.stop_reason = "time budget"
                    break
                if repeats >= MAX_REPEATS:
                    run.stop_reason = "converged"
                    break
                trial = study.ask()
                config = space.from_indices([self._suggest(trial, d) for d in space.dimensions])
                drawn = int(rng.integers(seed_pool))
                began = clock.now()
                repeat_of = finished.get((config, drawn))
                record, results, cost, trained = self._trial(objective, trial, config, drawn, repeat_of, clock, bar,
                                                             run)
                if record["pruned"]:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, float(results[0].dev_score))
                    finished.setdefault((config, drawn), record["trial"])
                clock.charge(cost)
                record["budget_seconds"] = clock.now() - began
                repeats = 0 if repeat_of is None else repeats + 1  # a stored trial of an earlier run is no repeat
                if trained:
                    durations.append(record["budget_seconds"])
                run.trials.append(record)
                run.results.append(results)
                self._show(bar, clock, run)
        finally:
            bar.close()
        run.time_used = clock.now()
        run.seconds = time.perf_counter() - started
        return run

    def _study(self, optuna: Any, min_epochs: int, max_epochs: int, seed: int | None) -> Any:
        """An Optuna study: TPE, and the pruner over epochs from ``min_epochs`` to ``max_epochs``."""
        if self.pruner == "hyperband":
            pruner: Any = optuna.pruners.HyperbandPruner(
                min_resource=min_epochs, max_resource=max_epochs, reduction_factor=self.reduction_factor)
        else:
            pruner = optuna.pruners.SuccessiveHalvingPruner(
                min_resource=min_epochs, reduction_factor=self.reduction_factor)
        with warnings.catch_warnings():
            # multivariate TPE is flagged experimental; the flag is a choice made here.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials, multivariate=self.multivariate, seed=seed)
        # A fixed study name: Hyperband assigns trials to its brackets by a hash of it.
        return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                   study_name=f"legal-hpo-{self.name}")

    def _suggest(self, trial: Any, dim: Dimension) -> int:
        if self.ordered and not dim.categorical and len(dim.grid) > 1:
            return trial.suggest_int(dim.name, 0, len(dim.grid) - 1)
        return trial.suggest_categorical(dim.name, list(range(len(dim.grid))))

    def _trial(
        self, objective: Objective, trial: Any, config: HyperParams, seed: int, repeat_of: int | None, clock: _Clock,
        bar: Any, run: BudgetedRun,
    ) -> tuple[dict[str, Any], list[TrialResult], float, bool]:
        """Train (or replay) one trial under the pruner: its record, results, simulated cost and if it trained."""
        pruned_at: list[int] = []

        def on_epoch(report: EpochReport) -> bool:
            epoch = len(report.dev_curve)
            trial.report(max(report.dev_curve), epoch)
            # asked after the last epoch too, so that the pruner records the rung it reached
            if trial.should_prune() and epoch < config.epochs:
                pruned_at.append(epoch)
                return False
            if not clock.simulated:
                self._show(bar, clock, run)
            return True

        replays = objective.replays
        key = "" if replays else objective.key(config, seed)
        # replaying, the table's run; live, a stored (or this process's) run of the same configuration and seed
        found = objective(config, seed) if replays else objective.lookup(key)
        if found is None:
            assert objective.data is not None  # a live objective holds its task's data
            result = objective.live_backend.evaluate(objective.data, config, objective.fidelity, seed,
                                                     on_epoch=on_epoch)
            if "stopped_after_epoch" not in result.extra:
                objective.record(key, result)  # a whole run: stored as any trial
        else:
            result = found
            _feed(result, on_epoch)  # a finished curve, reported epoch by epoch as a live run reports it
        # live, nothing trained when the run was found; replayed, a repeat of a completed trial is free too
        trained = found is None or (replays and repeat_of is None)
        cost = 0.0  # simulated: the table's seconds of the epochs replayed (live, the clock is the wall's)
        if replays and trained:
            cost = _pruned_seconds(result, pruned_at[0]) if pruned_at else result.seconds
        number = len(run.trials) + 1
        if pruned_at:
            return _pruned_record(number, config, result, pruned_at[0]), [result], cost, trained
        results = [result]
        seeds = trial_seeds_of(seed, self.trial_seeds)
        if len(seeds) > 1:
            more = objective.evaluate_many([config] * (len(seeds) - 1), seeds[1:])
            results += more
            if replays and trained:
                cost += sum(r.seconds for r in more)
        runs = [run_record(r) for r in results]
        record: dict[str, Any] = {"trial": number, "config": config.to_dict(), **runs[0],
                                  "dev_curve": list(result.dev_curve), "pruned": False, "pruned_at_epoch": None}
        if repeat_of is not None:
            record["repeat_of"] = repeat_of
        if len(runs) > 1:
            record["seed_runs"] = runs
            record["over_seeds"] = {split: seed_stats([r[f"{split}_score"] for r in runs]) for split in ("dev", "test")}
        return record, results, cost, trained

    def _show(self, bar: Any, clock: _Clock, run: BudgetedRun) -> None:
        best = max((t["dev_score"] for t in run.completed if not t["diverged"]), default=None)
        pruned = len(run.trials) - len(run.completed)
        bar.n = min(clock.now(), self.time_budget)
        shown = "-" if best is None else f"{best:.4f}"
        bar.set_postfix_str(f"best dev {shown}, {len(run.trials)} trials ({pruned} pruned)")


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:  # only the Optuna searchers need it
        raise ImportError("BudgetedTPE needs optuna: pip install legal-hpo-env[optuna]") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _feed(result: TrialResult, on_epoch: Callable[[EpochReport], bool]) -> None:
    """Report a finished learning curve to ``on_epoch`` epoch by epoch, until it says stop."""
    for epoch in range(1, len(result.dev_curve) + 1):
        curve = result.dev_curve[:epoch]
        so_far = EpochReport(curve, result.train_loss[:epoch], max(range(epoch), key=lambda i: curve[i]), False)
        if on_epoch(so_far) is False:
            return


def _pruned_seconds(result: TrialResult, epoch: int) -> float:
    """The training seconds of a run's first ``epoch`` epochs (all of them when it was stopped there)."""
    if "stopped_after_epoch" in result.extra:
        return result.seconds
    return result.seconds * epoch / max(1, len(result.dev_curve))


def _pruned_record(number: int, config: HyperParams, result: TrialResult, epoch: int) -> dict[str, Any]:
    """A pruned trial as the report shows it: its dev curve up to ``epoch``, no test scores (no candidate)."""
    curve = list(result.dev_curve[:epoch])
    best = max(range(len(curve)), key=lambda i: curve[i])
    return {
        "trial": number, "config": config.to_dict(), "seed": result.seed, "dev_score": curve[best],
        "test_score": None, "dev_accuracy": None, "dev_macro_f1": None, "test_accuracy": None, "test_macro_f1": None,
        "train_loss": result.train_loss[epoch - 1] if len(result.train_loss) >= epoch else None,
        "selected_epoch": best + 1, "diverged": False, "seconds": _pruned_seconds(result, epoch),
        "from_store": result.from_store, "dev_curve": curve, "pruned": True, "pruned_at_epoch": epoch,
    }
