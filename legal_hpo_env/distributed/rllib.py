"""``LegalHPO-v0`` for RLlib: register the env with Ray's env registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from legal_hpo_env.distributed.cluster import import_ray

__all__ = ["register_rllib_env"]


def _make_env(env_config: Mapping[str, Any]) -> Any:
    import gymnasium as gym

    import legal_hpo_env  # noqa: F401  (registers the id in this process, a Ray worker too)

    return gym.make("LegalHPO-v0", **dict(env_config))


def register_rllib_env(name: str = "LegalHPO-v0") -> str:
    """Register ``LegalHPO-v0`` with Ray (``ray.tune.registry.register_env``) for RLlib.

    The env's keyword arguments are RLlib's ``env_config``:
    ``PPOConfig().environment(name, env_config={"task": "unfair_tos", ...})``.
    """
    import_ray()
    from ray.tune.registry import register_env

    register_env(name, _make_env)
    return name
