"""LegalHPO: a Gymnasium environment for learning to tune the fine-tuning of legal language models.

Importing the package registers ``LegalHPO-v0`` and nothing else: torch and
transformers are imported by the code that trains, on first use.

>>> import gymnasium as gym
>>> import legal_hpo_env
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", backend="head")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from gymnasium.envs.registration import register, registry

from legal_hpo_env.version import __version__

ENV_ID = "LegalHPO-v0"

if ENV_ID not in registry:  # idempotent: importing twice (or reloading) registers once
    register(id=ENV_ID, entry_point="legal_hpo_env.env:LegalHPOEnv", disable_env_checker=False)

# Public names, imported on first access so that ``import legal_hpo_env`` stays cheap.
_LAZY = {
    "LegalHPOEnv": "legal_hpo_env.env",
    "observation_layout": "legal_hpo_env.env",
    "evaluate": "legal_hpo_env.objective",
    "Objective": "legal_hpo_env.objective",
    "HyperParams": "legal_hpo_env.space",
    "SPACE": "legal_hpo_env.space",
    "DEFAULT_RECIPE": "legal_hpo_env.space",
    "Fidelity": "legal_hpo_env.backends",
    "TrialResult": "legal_hpo_env.backends",
    "TrialStore": "legal_hpo_env.store",
    "TASKS": "legal_hpo_env.tasks",
    "load_task": "legal_hpo_env.tasks",
    "custom_task": "legal_hpo_env.tasks",
}

__all__ = ["ENV_ID", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'legal_hpo_env' has no attribute {name!r}")
