"""Reward definitions: small pure functions of a trial's score and the search so far."""

from __future__ import annotations

__all__ = ["REWARDS", "score_reward", "improvement_reward", "shaped_reward"]


def score_reward(score: float, best_before: float) -> float:
    """The validation score of the new configuration (the seed MDP's reward)."""
    return score


def improvement_reward(score: float, best_before: float) -> float:
    """Gain of the best score so far. An episode's return is then the best score found
    (``best_before`` starts at 0), the quantity an HPO user cares about."""
    return max(0.0, score - best_before)


REWARDS = {"score": score_reward, "improvement": improvement_reward}


def shaped_reward(
    kind: str,
    score: float,
    best_before: float,
    *,
    diverged: bool,
    seconds: float,
    cost_penalty: float,
    diverged_penalty: float,
) -> float:
    """The reward of one step: ``REWARDS[kind]``, or ``-diverged_penalty`` for a diverged
    trial, minus ``cost_penalty`` per compute second."""
    base = -diverged_penalty if diverged else REWARDS[kind](score, best_before)
    return base - cost_penalty * seconds
