"""Reward definitions: small pure functions of a trial's score and the search so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from legal_hpo_env.landscape import Landscape

__all__ = ["REWARDS", "score_reward", "improvement_reward", "regret_reward", "shaped_reward"]


def score_reward(score: float, best_before: float) -> float:
    """The validation score of the new configuration (the seed MDP's reward)."""
    return score


def improvement_reward(score: float, best_before: float) -> float:
    """Gain of the best score so far.

    An episode's return is then the best score found (``best_before`` starts at 0), the
    quantity an HPO user cares about.
    """
    return max(0.0, score - best_before)


def regret_reward(score: float, best_before: float, *, landscape: Landscape) -> float:
    """Minus the normalised regret of the incumbent after this trial, clipped at 0 regret.

    That is ``-landscape.regret(max(best_before, score))``, clipped at 0 because a lucky seed
    can beat the best mean. The return is minus the area under the regret curve: an agent is
    paid for finding good configurations early.
    """
    return -max(0.0, landscape.regret(max(best_before, score)))


REWARDS: dict[str, Callable[..., float]] = {
    "score": score_reward, "improvement": improvement_reward, "regret": regret_reward
}



def shaped_reward(
    kind: str,
    score: float,
    best_before: float,
    *,
    diverged: bool,
    seconds: float,
    cost_penalty: float,
    diverged_penalty: float,
    landscape: Landscape | None = None,
) -> float:
    """The reward of one step: ``REWARDS[kind]``, or ``-diverged_penalty`` for a diverged trial.

    Either is less ``cost_penalty`` per compute second. ``landscape`` (the task's recorded
    best and worst) is needed by ``regret``.
    """
    if kind == "regret":
        if landscape is None:
            raise ValueError("reward='regret' needs a replayed task (backend='recorded'), whose optimum is known.")
        base = regret_reward(score, best_before, landscape=landscape)
        return base - (diverged_penalty if diverged else 0.0) - cost_penalty * seconds
    base = -diverged_penalty if diverged else REWARDS[kind](score, best_before)
    return base - cost_penalty * seconds
