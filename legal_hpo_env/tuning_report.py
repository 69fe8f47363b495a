"""What ``legal-hpo tune`` reports: every trial (with its training seeds) and the pick of the best one.

:class:`TrialRecorder` wraps the env and keeps, after every step, the whole result of the
trial (test metrics included, which the env's ``info`` does not carry), read back from the
episode's objective; with ``trial_seeds=N`` it also trains the trial's configuration with
``N - 1`` more seeds, through the same objective and store. :func:`pick_best` then chooses
the best configuration by the rule :data:`TIE_BREAK`, and :func:`best_summary` gives its
mean and spread over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from legal_hpo_env.backends.base import DIVERGED_SCORE, TrialResult
from legal_hpo_env.space import HyperParams

__all__ = ["TIE_BREAK", "TrialRecorder", "best_summary", "pick_best", "run_record", "seed_stats",
           "trial_seeds_of"]

#: How the report picks the best configuration; ``tune --help`` and the README quote it.
TIE_BREAK = (
    "the best trial has the highest dev score (with --trial-seeds N > 1: the mean over its N seeds, a diverged "
    "seed counting 0); ties go to the lower standard deviation of dev over seeds, then to the cheaper "
    "configuration (fewer optimisation steps: epochs x batches per epoch), then to the earlier trial"
)

_METRICS = ("dev_score", "test_score", "dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1")


def trial_seeds_of(seed: int, n: int) -> list[int]:
    """The training seeds of a trial whose env-drawn seed is ``seed``: it, then the smallest others, ``n`` in all."""
    others = (s for s in range(n + 1) if s != seed)
    return [seed, *(next(others) for _ in range(n - 1))]


def seed_stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of ``values``."""
    mean = math.fsum(values) / len(values)  # fsum: the same mean in any order, so exact ties stay ties
    return {"mean": mean, "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values),
            "max": max(values)}


def run_record(result: TrialResult) -> dict[str, Any]:
    """One seed's outcome as the report shows it."""
    return {
        "seed": result.seed,
        **{name: getattr(result, name) for name in _METRICS},
        "train_loss": result.final_train_loss,
        "selected_epoch": result.selected_epoch,
        "diverged": result.diverged,
        "seconds": result.seconds,
        "from_store": result.from_store,
        **({"failed": result.extra["failed"]} if "failed" in result.extra else {}),
    }


def _unrecorded_run(info: dict[str, Any]) -> dict[str, Any]:
    """The env-drawn seed's outcome when its result is in no memory or store (a failed remote trial)."""
    return {
        "seed": info["trial_seed"],
        **{name: DIVERGED_SCORE for name in _METRICS},  # a failed trial scores as a diverged one
        "train_loss": info.get("train_loss"),
        "selected_epoch": 0,
        "diverged": True,
        "seconds": info.get("seconds", 0.0),
        "from_store": False,
        "failed": info.get("failed", "no result was recorded"),
    }


class TrialRecorder(gym.Wrapper):
    """Record every trial of an episode of ``LegalHPO-v0`` in full, optionally over several seeds.

    Args:
        env: the env (raw or wrapped) the searcher plays.
        trial_seeds: training seeds per trial: the env's own (drawn) seed and the
            ``trial_seeds - 1`` smallest others (:func:`trial_seeds_of`). The extra seeds go
            through the episode's objective, so the trial store keeps and reuses them; the
            search itself sees the env's seed only.

    Attributes:
        trials: one record per trial of the current episode (see :meth:`record`).
        results: the results behind each record, one per seed (``None`` where none was recorded).
    """

    def __init__(self, env: gym.Env, trial_seeds: int = 1) -> None:
        super().__init__(env)
        if isinstance(trial_seeds, bool) or not isinstance(trial_seeds, int) or trial_seeds < 1:
            raise ValueError(f"trial_seeds={trial_seeds!r} must be an integer >= 1.")
        self.trial_seeds = trial_seeds
        self.trials: list[dict[str, Any]] = []
        self.results: list[list[TrialResult | None]] = []

    def reset(self, **kwargs: Any) -> Any:
        self.trials, self.results = [], []
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.record(out[4])
        return out

    def record(self, info: dict[str, Any]) -> dict[str, Any]:
        """Add the record of the trial that ``info`` (a step's info) reports, and return it.

        A record holds the trial's number (from 1), configuration, the env's seed and that
        seed's dev and test accuracy, macro-F1 and headline score, final train loss,
        selected epoch, seconds and ``from_store``; ``repeat_of`` names an earlier trial of
        the same configuration and seed (not trained again). With several seeds,
        ``seed_runs`` holds each seed's outcome and ``over_seeds`` the mean, std, min and
        max of dev and test (:func:`seed_stats`).
        """
        objective = self.env.unwrapped.view.objective  # type: ignore[attr-defined]
        config = HyperParams.from_dict(info["config"])
        seeds = trial_seeds_of(int(info["trial_seed"]), self.trial_seeds)
        own = objective(config, seeds[0]) if objective.replays else objective.lookup(objective.key(config, seeds[0]))
        results: list[TrialResult | None] = [own]
        if len(seeds) > 1:
            results += objective.evaluate_many([config] * (len(seeds) - 1), seeds[1:])
        runs = [_unrecorded_run(info) if r is None else run_record(r) for r in results]
        record: dict[str, Any] = {"trial": len(self.trials) + 1, "config": config.to_dict(), **runs[0]}
        earlier = next((t["trial"] for t in self.trials if t["config"] == record["config"]
                        and t["seed"] == record["seed"]), None)
        if earlier is not None:
            record["repeat_of"] = earlier
        if len(runs) > 1:
            record["seed_runs"] = runs
            record["over_seeds"] = {split: seed_stats([r[f"{split}_score"] for r in runs]) for split in ("dev", "test")}
        self.trials.append(record)
        self.results.append(results)
        return record


def _dev(trial: dict[str, Any]) -> tuple[float, float]:
    """A trial's dev score and its spread: over its seeds where it has several."""
    if "over_seeds" in trial:
        return trial["over_seeds"]["dev"]["mean"], trial["over_seeds"]["dev"]["std"]
    return trial["dev_score"], 0.0


def _eligible(trial: dict[str, Any]) -> bool:
    """A trial that ran its epochs with at least one seed that finished.

    A diverged or failed run is no model to pick, nor is a pruned one (stopped before its
    planned epochs, see :mod:`agents.budgeted`).
    """
    if trial.get("pruned"):
        return False
    return not all(run["diverged"] for run in trial.get("seed_runs", [trial]))


def _steps(trial: dict[str, Any], train_size: int) -> int:
    config = trial["config"]
    return int(config["epochs"]) * -(-max(1, train_size) // int(config["batch_size"]))


def pick_best(trials: Sequence[dict[str, Any]], train_size: int) -> int | None:
    """The index of the best trial by :data:`TIE_BREAK` (``None`` if every trial diverged or was pruned).

    Args:
        trials: the records of :class:`TrialRecorder`.
        train_size: training examples per trial, which with the batch size gives the steps.
    """
    eligible = [i for i, t in enumerate(trials) if _eligible(t)]
    if not eligible:
        return None

    def key(i: int) -> tuple[float, float, int, int]:
        dev, std = _dev(trials[i])
        return (-dev, std, _steps(trials[i], train_size), i)

    return min(eligible, key=key)


def best_summary(trials: Sequence[dict[str, Any]], index: int) -> dict[str, Any]:
    """The best trial's configuration, seeds and the mean and spread of dev and test over them.

    ``seed`` is the seed to train the configuration again with: among its seeds, the one of
    the highest dev score (the earliest of equals). ``tied_on_dev`` counts the trials whose
    dev score equalled the best one's (the tie-break decided among them).
    """
    trial = trials[index]
    runs = trial.get("seed_runs", [trial])
    finished = [r for r in runs if not r["diverged"]] or runs
    chosen = max(finished, key=lambda r: r["dev_score"])  # max keeps the first of equals
    dev = _dev(trial)[0]
    return {
        "trial": trial["trial"],
        "config": trial["config"],
        "seed": chosen["seed"],
        "seeds": [r["seed"] for r in runs],
        "dev": seed_stats([r["dev_score"] for r in runs]),
        "test": seed_stats([r["test_score"] for r in runs]),
        "tied_on_dev": sum(1 for t in trials if _eligible(t) and _dev(t)[0] == dev),
        "rule": TIE_BREAK,
    }
