"""Agents that tune ``LegalHPO-v0``: baselines, a hand-written REINFORCE, and SB3's PPO.

Every agent plays a tuning episode through the same loop and returns a
:class:`TuningRun`, so baselines and learned policies compare on equal terms.
Public names load on first use: ``import agents`` imports neither torch, optuna nor
stable-baselines3.

>>> import gymnasium as gym, legal_hpo_env
>>> from agents import make_searcher
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", action_mode="direct")  # doctest: +SKIP
>>> make_searcher("tpe").run(env, seed=0).best_config                       # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.base import Searcher

#: Searchers by name: ``"module:Class"``, imported on first use. RL agents are trained
#: first and then wrapped in :class:`PolicySearcher`, so they are not listed here.
SEARCHERS: dict[str, str] = {
    "random": "agents.baselines:RandomSearch",
    "tpe": "agents.baselines:TPESearch",
    "default": "agents.baselines:DefaultRecipe",
    "asha": "agents.asha:ASHA",
}

# Public names -> module, imported on first access (PEP 562).
_LAZY = {
    "TuningRun": "agents.base",
    "Searcher": "agents.base",
    "play_episode": "agents.base",
    "config_to_action": "agents.base",
    "indices_to_action": "agents.base",
    "RandomSearch": "agents.baselines",
    "TPESearch": "agents.baselines",
    "DefaultRecipe": "agents.baselines",
    "ASHA": "agents.asha",
    "FixedSequence": "agents.fixed",
    "BudgetedTPE": "agents.budgeted",
    "BudgetedRun": "agents.budgeted",
    "REINFORCE": "agents.reinforce",
    "PolicySearcher": "agents.reinforce",
    "make_ppo": "agents.ppo",
    "train_tuner": "agents.training",
    "load_pretrained": "agents.pretrained",
    "BestScoreCallback": "agents.ppo",
}

__all__ = ["SEARCHERS", "make_searcher", *_LAZY]

#: Which distribution this ``agents`` package belongs to: ``agents`` is a common top-level
#: name, and ``legal-hpo`` checks that the one it imports is its own.
DISTRIBUTION = "legal-hpo-env"


def make_searcher(name: str, **kwargs: Any) -> Searcher:
    """Create the searcher called ``name`` (see :data:`SEARCHERS`) with its keyword arguments."""
    if name not in SEARCHERS:
        raise ValueError(
            f"unknown searcher {name!r}: valid names are {sorted(SEARCHERS)} "
            "(train RL agents with agents.REINFORCE or agents.make_ppo, then wrap them in agents.PolicySearcher)."
        )
    module, cls = SEARCHERS[name].split(":")
    return getattr(import_module(module), cls)(**kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
