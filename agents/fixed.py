"""The best fixed action sequence: an open-loop baseline learned from recorded tables.

A policy that ignores what it observes plays, at best, one fixed sequence of actions on
every task. :meth:`FixedSequence.fit` builds that sequence from the training tasks of a
recorded table, greedily: each step takes the action that most lowers the mean, over the
training tasks, of the incumbent's normalised regret (scored on mean dev scores over
seeds, so that every task weighs the same). In ``direct`` mode the sequence is a
portfolio of configurations (as auto-sklearn 2.0's portfolios); in ``delta`` mode it is
one path of raise/lower moves from the recipe start (``start="default"``).

A learned policy that cannot beat the fixed sequence of its own action mode, fitted on
the same training tasks, has learned nothing that depends on what it observes.

>>> from legal_hpo_env.backends.recorded import RecordedBackend
>>> from agents.fixed import FixedSequence
>>> backend = RecordedBackend("head")                                        # doctest: +SKIP
>>> fixed = FixedSequence.fit(backend, ["overruling", "scotus"], budget=20)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Searcher, TuningRun, config_to_action, play_episode, require_action_mode
from legal_hpo_env.backends.base import ReplayBackend
from legal_hpo_env.space import DEFAULT_RECIPE

__all__ = ["FixedSequence"]


class FixedSequence(Searcher):
    """Play the same actions, in order, on every task, whatever the scores say.

    Args:
        actions: one action per trial, as the env of ``action_mode`` takes it.
        action_mode: ``"direct"`` or ``"delta"``.
        name: method name of the runs (default ``"fixed-<action_mode>"``).
    """

    name: ClassVar[str] = "fixed"

    def __init__(self, actions: Sequence[Any], action_mode: str, name: str | None = None) -> None:
        if action_mode not in ("direct", "delta"):
            raise ValueError(f"action_mode={action_mode!r}: a fixed sequence plays 'direct' or 'delta' actions.")
        if not actions:
            raise ValueError("a fixed sequence needs at least one action.")
        self.actions = [np.asarray(a) for a in actions]
        self.action_mode = action_mode
        self.method = name or f"fixed-{action_mode}"

    def __repr__(self) -> str:
        return f"FixedSequence({len(self.actions)} actions, action_mode={self.action_mode!r})"

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        require_action_mode(env, (self.action_mode,), "FixedSequence")
        budget = env.unwrapped.budget
        if budget > len(self.actions):
            raise ValueError(f"the env's budget of {budget} trials is longer than the sequence ({len(self.actions)}).")
        step = iter(self.actions)
        return play_episode(env, lambda obs: next(step), seed, method=self.method)

    @classmethod
    def fit(
        cls, backend: ReplayBackend, tasks: Sequence[str], budget: int, action_mode: str = "direct"
    ) -> FixedSequence:
        """The greedy best sequence of ``budget`` actions over ``tasks`` of a replay backend.

        Args:
            backend: a replay backend holding every task on one shared grid.
            tasks: the tasks to fit on (never the ones the sequence is tested on).
            budget: the number of actions (trials) in the sequence.
            action_mode: ``"direct"`` (a portfolio of grid points) or ``"delta"`` (moves from the recipe).
        """
        if action_mode not in ("direct", "delta"):
            raise ValueError(f"action_mode={action_mode!r}: fit 'direct' or 'delta' sequences.")
        if not tasks:
            raise ValueError("fit a fixed sequence on at least one task.")
        space = backend.space(tasks[0])
        if any(backend.space(t).dimensions != space.dimensions for t in tasks[1:]):
            raise ValueError("the tasks must share one recorded grid to share a fixed sequence.")
        shape = tuple(len(d.grid) for d in space.dimensions)
        # regret[t, p]: normalised regret on task t of grid point p (points in index order)
        points = space.grid_points()
        regret = np.array([[backend.landscape(t).regret(backend.mean_score(t, c)) for c in points] for t in tasks])
        incumbent = np.ones(len(tasks))  # no trial yet: the worst configuration's regret
        if action_mode == "direct":
            chosen = []
            for _ in range(budget):
                pick = _greedy_step(regret, incumbent, np.arange(len(points)))
                chosen.append(pick)
                incumbent = np.minimum(incumbent, regret[:, pick])
            return cls([config_to_action(points[p]) for p in chosen], "direct")
        moves = np.array(list(itertools.product((0, 1, 2), repeat=len(shape))))  # every delta action
        top = np.array(shape) - 1
        position = np.array(space.to_indices(DEFAULT_RECIPE))
        actions = []
        for _ in range(budget):
            moved = position + moves - 1
            moved = np.where((moved < 0) | (moved > top), position, moved)  # the env's rule: stay at the end
            reached = np.ravel_multi_index(moved.T, shape)
            pick = _greedy_step(regret, incumbent, reached)
            actions.append(moves[int(np.flatnonzero(reached == pick)[0])].astype(np.int64))
            position = np.array(np.unravel_index(pick, shape))
            incumbent = np.minimum(incumbent, regret[:, pick])
        return cls(actions, "delta")


def _greedy_step(regret: np.ndarray, incumbent: np.ndarray, options: np.ndarray) -> int:
    """The grid point among ``options`` that minimises the mean incumbent regret after it.

    Ties (no option lowers it any more) go to the point with the lowest mean regret over
    the tasks: the safest single configuration.
    """
    after = np.minimum(incumbent[:, None], regret[:, options]).mean(axis=0)
    tied = options[after <= after.min() + 1e-12]
    return int(tied[np.argmin(regret[:, tied].mean(axis=0))])
