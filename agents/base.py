"""What every tuning agent shares: the record of one run, the searcher interface, and the episode loop.

The one loop plays an episode of ``LegalHPO-v0`` and records it.

A *searcher* chooses configurations; the environment evaluates them. Every searcher, a
baseline or a trained policy, plays its episode through :func:`play_episode`, so that all
runs are recorded the same way and compare fairly: same budget, same trial seeds (drawn
by the env's RNG from the episode seed), same notion of "best so far".
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from legal_hpo_env.backends.base import DIVERGED_SCORE
from legal_hpo_env.space import SPACE, HyperParams, SearchSpace

__all__ = [
    "PolicyFileError",
    "TuningRun",
    "Searcher",
    "play_episode",
    "config_to_action",
    "indices_to_action",
    "require_action_mode",
]


class PolicyFileError(ValueError):
    """A policy file that is missing, damaged, of another format, or made for other spaces.

    Policy files hold weights and plain data only: loading one never runs code from it.
    """


@dataclass
class TuningRun:
    """The record of one tuning episode: what was tried and what was found.

    Attributes:
        method: name of the searcher (``"random"``, ``"tpe"``, ``"reinforce"``...).
        task: the task the episode tuned.
        seed: the episode seed (``env.reset(seed=...)``), which also fixes trial seeds.
        configs: the configuration of every trial, in order.
        dev_scores: the dev score of every trial (0 for a diverged trial).
        best_curve: best dev score after each trial (0 until a trial has not diverged).
        best_config: the best configuration found (``None`` if every trial diverged).
        best_score: its dev score.
        best_test_score: its test score (as the env reports it at the episode end).
        best_seed: the training seed of the trial that found it (to train that model again).
        seconds: wall-clock seconds of the episode (the agent's and the env's time).
        trial_seconds: training seconds reported by the trials (recorded seconds when a
            table replays them: the compute the search would have cost).
    """

    method: str
    task: str
    seed: int | None
    configs: list[dict[str, Any]] = field(default_factory=list)
    dev_scores: list[float] = field(default_factory=list)
    best_curve: list[float] = field(default_factory=list)
    best_config: dict[str, Any] | None = None
    best_score: float = DIVERGED_SCORE
    best_test_score: float = DIVERGED_SCORE
    best_seed: int | None = None
    seconds: float = 0.0
    trial_seconds: float = 0.0

    @property
    def trials(self) -> int:
        return len(self.configs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable) of the run."""
        return asdict(self)


class Searcher(abc.ABC):
    """A strategy that plays one tuning episode and reports what it found.

    Subclasses set :attr:`name` and implement :meth:`run`, normally by handing an action
    rule to :func:`play_episode`.
    """

    #: Registry name of the method (also ``TuningRun.method``).
    name: ClassVar[str] = "searcher"

    @abc.abstractmethod
    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        """Play one episode (``env.unwrapped.budget`` trials) on ``env`` and record it.

        Args:
            env: a ``LegalHPO-v0`` env, raw or from ``gym.make`` (wrappers are fine).
            seed: episode seed; the same seed gives the same run.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def play_episode(
    env: gym.Env,
    choose_action: Callable[[np.ndarray], Any],
    seed: int | None = None,
    *,
    method: str = "searcher",
    on_result: Callable[[dict[str, Any]], None] | None = None,
    options: dict[str, Any] | None = None,
) -> TuningRun:
    """Play one episode, asking ``choose_action(obs)`` for each action, and record it.

    Args:
        env: a ``LegalHPO-v0`` env (raw or wrapped).
        choose_action: maps the current observation to an action of ``env.action_space``.
        seed: passed to ``env.reset(seed=...)``.
        method: name stored in the returned run.
        on_result: called with each step's ``info`` (searchers that learn within the
            episode, such as TPE, read the dev score there).
        options: passed to ``env.reset(options=...)`` (e.g. ``{"task": name}``).

    Returns:
        The record of the episode.
    """
    start = time.perf_counter()
    obs, info = env.reset(seed=seed, options=options)
    run = TuningRun(method=method, task=str(info.get("task", "")), seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(choose_action(obs))
        if on_result is not None:
            on_result(info)
        run.configs.append(dict(info["config"]))
        run.dev_scores.append(float(info["dev_score"]))
        best = info.get("best_score")
        if best is not None and (not run.best_curve or float(best) > run.best_curve[-1]):
            run.best_seed = info.get("trial_seed")  # this trial became the incumbent
        run.best_curve.append(DIVERGED_SCORE if best is None else float(best))
        run.trial_seconds += float(info.get("seconds", 0.0))
    run.best_config = None if info.get("best_config") is None else dict(info["best_config"])
    run.best_score = run.best_curve[-1] if run.best_curve else DIVERGED_SCORE
    run.best_test_score = float(info.get("best_test_score", DIVERGED_SCORE))
    run.seconds = time.perf_counter() - start
    return run


def indices_to_action(space: SearchSpace, indices: Sequence[int]) -> np.ndarray:
    """The ``direct`` action that the env decodes to the point at these indices of ``space``.

    ``space`` is the grid the env moves on, :attr:`TaskView.space`.

    Direct actions are decoded on the full search space, so the point's value ``v`` of a
    dimension with full grid of ``n`` values at position ``i`` goes to ``u = 2 i / (n - 1) - 1``,
    the centre of the interval of ``[-1, 1]`` that decodes to it.
    """
    if len(indices) != len(space):
        raise ValueError(f"got {len(indices)} indices for a space of {len(space)} hyperparameters {list(space.names)}.")
    for d, i in zip(space.dimensions, indices):
        if not 0 <= int(i) < len(d.grid):
            raise ValueError(f"index {i} of {d.name} is off its grid of {len(d.grid)} values {list(d.grid)}.")
    return config_to_action(space.from_indices(indices))


def config_to_action(config: HyperParams) -> np.ndarray:
    """The ``direct`` action (a point of ``[-1, 1]^k``) that decodes to ``config`` on every backend.

    A configuration off the grid is first snapped to its nearest grid point.
    """
    unit = []
    for d, i in zip(SPACE.dimensions, SPACE.to_indices(config)):
        n = len(d.grid)
        unit.append(0.0 if n == 1 else 2.0 * i / (n - 1) - 1.0)
    return np.asarray(unit, dtype=np.float32)


def require_action_mode(env: gym.Env, modes: Sequence[str], who: str) -> None:
    """Raise a clear error when ``env`` does not use one of the ``modes`` of action."""
    mode = getattr(env.unwrapped, "action_mode", None)
    if mode not in modes:
        raise ValueError(
            f"{who} chooses whole configurations and needs an env with action_mode in {list(modes)}, "
            f"not {mode!r}: create it with gym.make('LegalHPO-v0', ..., action_mode='direct')."
        )
