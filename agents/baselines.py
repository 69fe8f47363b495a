"""Baseline searchers: random search, Optuna's TPE, and the fixed LexGLUE recipe.

Random search and TPE choose whole configurations, so they play ``action_mode="direct"``
envs: each chosen grid point is sent as the exact action that decodes to it
(:func:`agents.base.config_to_action`). The env draws every trial's training seed, so
baselines and learned policies face the same noise.

>>> import gymnasium as gym, legal_hpo_env
>>> from agents import RandomSearch
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", action_mode="direct")  # doctest: +SKIP
>>> RandomSearch().run(env, seed=0).best_score                               # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Searcher, TuningRun, config_to_action, indices_to_action, play_episode, require_action_mode
from legal_hpo_env.checks import is_int
from legal_hpo_env.space import DEFAULT_RECIPE, Dimension, HyperParams

__all__ = ["RandomSearch", "TPESearch", "DefaultRecipe"]


class RandomSearch(Searcher):
    """Every trial a grid point drawn uniformly (with replacement) from the env's grid.

    The draws come from a generator seeded with the episode seed, so a seed fixes the run.
    """

    name: ClassVar[str] = "random"

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        require_action_mode(env, ("direct",), "RandomSearch")
        space = env.unwrapped.hp_space
        rng = np.random.default_rng(seed)

        def choose(obs: np.ndarray) -> np.ndarray:
            return indices_to_action(space, [int(rng.integers(len(d.grid))) for d in space.dimensions])

        return play_episode(env, choose, seed, method=self.name)


class TPESearch(Searcher):
    """Optuna's Tree-structured Parzen Estimator, driven trial by trial (ask and tell).

    Each dimension is asked as a choice among its grid indices, so TPE sees exactly the
    env's grid, and each trial's dev score is told back before the next ask. By default
    every index is a categorical choice; with ``ordered=True`` the indices of numeric
    dimensions are asked as integers, which lets TPE use their order (a learning rate next
    to a good one is likely good). On a smooth problem that helps at small budgets.

    Args:
        n_startup_trials: random trials before TPE models the scores (Optuna's default is 10;
            lower it for short budgets).
        multivariate: model the dimensions jointly (Optuna's multivariate TPE).
        ordered: ask numeric dimensions as ordered integer indices instead of categories.
        sampler_kwargs: further keyword arguments of ``optuna.samplers.TPESampler``.
    """

    name: ClassVar[str] = "tpe"

    def __init__(
        self, n_startup_trials: int = 10, multivariate: bool = True, ordered: bool = False, **sampler_kwargs: Any
    ) -> None:
        if not is_int(n_startup_trials) or n_startup_trials < 0:
            raise ValueError(f"n_startup_trials={n_startup_trials!r} must be an integer >= 0.")
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate
        self.ordered = ordered
        self.sampler_kwargs = sampler_kwargs

    def __repr__(self) -> str:
        return (
            f"TPESearch(n_startup_trials={self.n_startup_trials}, multivariate={self.multivariate}, "
            f"ordered={self.ordered})"
        )

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        require_action_mode(env, ("direct",), "TPESearch")
        optuna = _import_optuna()
        space = env.unwrapped.hp_space
        with warnings.catch_warnings():
            # multivariate TPE is flagged experimental; the flag is a choice made here.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials, multivariate=self.multivariate, seed=seed, **self.sampler_kwargs
            )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        pending: list[Any] = []

        def suggest(trial: Any, dim: Dimension) -> int:
            if self.ordered and not dim.categorical and len(dim.grid) > 1:
                return trial.suggest_int(dim.name, 0, len(dim.grid) - 1)
            return trial.suggest_categorical(dim.name, list(range(len(dim.grid))))

        def choose(obs: np.ndarray) -> np.ndarray:
            trial = study.ask()
            pending.append(trial)
            return indices_to_action(space, [suggest(trial, d) for d in space.dimensions])

        def tell(info: dict[str, Any]) -> None:
            study.tell(pending.pop(), float(info["dev_score"]))

        return play_episode(env, choose, seed, method=self.name, on_result=tell)


class DefaultRecipe(Searcher):
    """The fixed LexGLUE recipe (lr 3e-5, batch 8), snapped to the env's grid, every trial.

    Repeating it only re-draws the training seed: the baseline of a user who does not tune.
    On ``direct`` envs the recipe is sent as an action; on ``delta`` and ``single`` envs
    that start at the recipe (``start="default"``) the agent keeps it.

    Args:
        recipe: the configuration to repeat (default :data:`legal_hpo_env.space.DEFAULT_RECIPE`).
    """

    name: ClassVar[str] = "default"

    def __init__(self, recipe: HyperParams = DEFAULT_RECIPE) -> None:
        self.recipe = recipe

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        base = env.unwrapped
        if base.action_mode == "direct":
            action: Any = config_to_action(self.recipe)
        elif base.start == "default" and self.recipe == DEFAULT_RECIPE:
            # Both move-based modes have a "keep" action: 1 per dimension, or 0.
            action = np.ones(len(base.hp_space), dtype=np.int64) if base.action_mode == "delta" else 0
        else:
            raise ValueError(
                "DefaultRecipe needs an env with action_mode='direct', or one that starts at the recipe "
                f"(start='default'); this one has action_mode={base.action_mode!r}, start={base.start!r}."
            )
        return play_episode(env, lambda obs: action, seed, method=self.name)


def _import_optuna():
    try:
        import optuna
    except ImportError as err:  # only the TPE baseline needs optuna
        raise ImportError("TPESearch needs optuna: pip install legal-hpo-env[optuna]") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
