"""Wrappers for ablations of what a tuning policy observes.

:class:`BlankFeedback` hides every observation entry that comes from a trial's outcome
(scores, losses, divergence, and which configuration is the incumbent), leaving what the
agent would know without running a single trial: its own configurations, the budget used
and the task descriptors. A policy that plays as well blanked as unblanked does not use
what it observes; one that plays worse does.

>>> import gymnasium as gym, legal_hpo_env
>>> from legal_hpo_env.wrappers import BlankFeedback
>>> env = BlankFeedback(gym.make("LegalHPO-v0", observation="adaptive"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from legal_hpo_env.env import observation_layout

__all__ = ["BlankFeedback", "feedback_entries"]

#: Entries of the observation that a trial's outcome sets (by name or name prefix).
_FEEDBACK_NAMES = frozenset(
    {"last_score", "best_score", "last_train_loss", "last_diverged", "incumbent_score", "last_move_effect",
     "last_move_improved"}
)
_FEEDBACK_PREFIXES = ("incumbent/hp/", "best/")


def feedback_entries(observation: str = "basic") -> list[int]:
    """Indices of the entries of :func:`~legal_hpo_env.env.observation_layout` that report outcomes.

    The current and previous configurations and which grid values were tried are the
    agent's own choices, not feedback, and stay visible; the incumbent's configuration is
    feedback (which trial scored best).
    """
    return [
        i for i, name in enumerate(observation_layout(observation))
        if name in _FEEDBACK_NAMES or name.startswith(_FEEDBACK_PREFIXES)
    ]


class BlankFeedback(gym.ObservationWrapper):
    """Hold every feedback entry of a ``LegalHPO-v0`` observation at its value at reset.

    At reset no trial has run, so those values are the ones of "nothing observed yet":
    the policy sees its budget advance and its configuration change, never a score.

    Args:
        env: a ``LegalHPO-v0`` env (raw or wrapped), with either observation.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        observation = getattr(getattr(env.unwrapped, "config", None), "observation", None)
        if observation is None or (len(observation_layout(observation)),) != env.observation_space.shape:
            raise TypeError(
                f"BlankFeedback wraps a LegalHPO-v0 env; got {env.unwrapped!r} with observation space "
                f"{env.observation_space}."
            )
        self._entries = np.asarray(feedback_entries(observation), dtype=np.int64)
        self._blank: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._blank = obs[self._entries].copy()
        return obs, info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self._blank is None:  # reset() sets it before the first observation passes here
            raise RuntimeError("BlankFeedback needs env.reset() before env.step().")
        out = np.array(observation, dtype=np.float32, copy=True)
        out[self._entries] = self._blank
        return out
