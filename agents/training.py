"""How the learned tuners are trained: one recipe for ``legal-hpo train-agent``, the protocol and the shipped policies.

A tuner sees the ``adaptive`` observation (the incumbent, the last move's effect and
what every grid value gave so far) and is paid, after every trial, minus the
incumbent's normalised regret when the landscape is known (recorded tables: the return
is minus the area under the regret curve, so finding good configurations early pays)
and the incumbent's improvement otherwise (live trials: the return is the best score
found). Returns are not discounted: every trial of the budget counts the same.

>>> from agents.training import train_tuner, tuner_env_kwargs
>>> kwargs = tuner_env_kwargs(["overruling", "scotus"], action_mode="delta")  # doctest: +SKIP
>>> policy = train_tuner("reinforce", kwargs, steps=60_000, progress=True)     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__all__ = ["AGENTS", "REINFORCE_SETTINGS", "PPO_SETTINGS", "tuner_env_kwargs", "train_tuner"]

#: The learned tuners (``recurrent-ppo``: sb3-contrib's RecurrentPPO, an LSTM policy).
AGENTS = ("reinforce", "ppo", "recurrent-ppo")
#: REINFORCE's settings for tuning episodes (its network is the default: 64 ReLU units).
REINFORCE_SETTINGS: dict[str, Any] = {"gamma": 1.0, "learning_rate": 3e-3, "episodes_per_update": 16}
#: PPO's settings for tuning episodes (besides :func:`agents.ppo.make_ppo`'s defaults).
PPO_SETTINGS: dict[str, Any] = {"n_envs": 4, "gamma": 1.0}
#: Where training episodes start: delta-mode tuners from random grid points, so that they
#: learn to move from anywhere; direct-mode tuners choose whole configurations anyway.
TRAIN_START = {"direct": "default", "delta": "random"}


def tuner_env_kwargs(task: str | list[str], action_mode: str = "direct", backend: str = "recorded",
                     **kwargs: Any) -> dict[str, Any]:
    """The env a tuner trains in: ``LegalHPO-v0``'s arguments, the recipe's defaults filled in."""
    reward = "regret" if backend == "recorded" else "improvement"
    return {"task": task, "backend": backend, "action_mode": action_mode, "observation": "adaptive",
            "reward": reward, "start": TRAIN_START.get(action_mode, "default"), **kwargs}


def train_tuner(agent: str, env_kwargs: dict[str, Any], steps: int, seed: int = 0, *,
                tensorboard: str | None = None, progress: bool = False) -> Any:
    """Train ``agent`` (``"reinforce"`` or ``"ppo"``) for ``steps`` env steps in the env of ``env_kwargs``.

    Args:
        agent: which learned tuner (:data:`AGENTS`).
        env_kwargs: arguments of ``gym.make("LegalHPO-v0", ...)`` (see :func:`tuner_env_kwargs`).
        steps: env steps (trials) of training.
        seed: seeds the policy and the envs.
        tensorboard: a folder for TensorBoard logs (``None``: none).
        progress: show a progress bar (stderr) with the mean best score of recent episodes.

    Returns:
        The trained policy (a :class:`~agents.reinforce.REINFORCE`, an SB3 ``PPO`` or an
        sb3-contrib ``RecurrentPPO``).
    """
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}: the learned tuners are {list(AGENTS)}.")
    import torch
    from tqdm.auto import tqdm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small are fastest on one thread (restored after)
    bar = tqdm(total=steps, desc=f"training {agent}", unit="step", disable=not progress)
    try:
        if agent == "reinforce":
            return _train_reinforce(env_kwargs, steps, seed, tensorboard, bar)
        return _train_ppo(env_kwargs, steps, seed, tensorboard, bar, recurrent=agent == "recurrent-ppo")
    finally:
        bar.close()
        torch.set_num_threads(threads)


def _train_reinforce(env_kwargs: dict[str, Any], steps: int, seed: int, tensorboard: str | None, bar: Any) -> Any:
    import legal_hpo_env  # noqa: F401  (registers the env)
    from agents.reinforce import REINFORCE

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(tensorboard)

    def callback(locals_: dict[str, Any], agent: REINFORCE) -> None:
        stats = locals_["stats"]
        bar.update(int(stats["timesteps"]) - bar.n)
        bar.set_postfix(best=f"{stats['mean_best_score']:.3f}")
        if writer is not None:
            for key, value in stats.items():
                if key != "timesteps":
                    writer.add_scalar(f"tuning/{key}", value, int(stats["timesteps"]))

    agent = REINFORCE(gym.make("LegalHPO-v0", **env_kwargs), seed=seed, **REINFORCE_SETTINGS)
    try:
        return agent.learn(steps, callback=callback)
    finally:
        if writer is not None:
            writer.close()


def _train_ppo(env_kwargs: dict[str, Any], steps: int, seed: int, tensorboard: str | None, bar: Any,
               recurrent: bool) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from agents.ppo import BestScoreCallback, make_ppo

    class _Progress(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(self.num_timesteps - bar.n)
            return True

    settings = dict(PPO_SETTINGS)
    model = make_ppo(env_kwargs, n_envs=settings.pop("n_envs"), seed=seed, tensorboard_log=tensorboard,
                     recurrent=recurrent, **settings)
    return model.learn(steps, callback=CallbackList([BestScoreCallback(), _Progress()]))
