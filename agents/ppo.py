"""PPO from stable-baselines3, set up for ``LegalHPO-v0``, and sb3-contrib's RecurrentPPO.

:func:`make_ppo` builds vectorised copies of the env and a PPO model whose rollouts hold
whole tuning episodes (with ``recurrent=True`` a RecurrentPPO, whose LSTM policy carries a
memory of the episode's trials beyond what the observation summarises);
:class:`BestScoreCallback` logs what an HPO user cares about, the best dev (and test) score
of each finished episode, under ``tuning/`` in the SB3 logger (and TensorBoard when
``tensorboard_log`` is set).

>>> from agents.ppo import BestScoreCallback, make_ppo
>>> model = make_ppo({"task": "unfair_tos", "budget": 10}, n_envs=4, seed=0)  # doctest: +SKIP
>>> model.learn(20_000, callback=BestScoreCallback())                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import legal_hpo_env  # noqa: F401  (registers LegalHPO-v0; cheap)
from legal_hpo_env.checks import is_int

try:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
except ImportError as err:  # this module is the SB3 adapter; `import agents` does not need it
    raise ImportError(f"agents.ppo needs stable-baselines3 ({err}): pip install legal-hpo-env[sb3]") from err

__all__ = ["make_ppo", "make_env_factory", "load_ppo", "BestScoreCallback", "VEC_ENVS"]

#: ``vec_env=`` names of :func:`make_ppo`.
VEC_ENVS = ("dummy", "subproc")

#: Total rollout steps (over all envs) aimed at per PPO update, before rounding to episodes.
_ROLLOUT_TARGET = 512
#: Mini-batch size aimed at (a divisor of the rollout close to it is used).
_MINIBATCH_TARGET = 64


def make_env_factory(env_id: str = "LegalHPO-v0") -> Callable[..., gym.Env]:
    """A picklable ``factory(**env_kwargs) -> env`` that ``gym.make``s ``env_id``.

    Passing this to ``make_vec_env`` instead of the id spares a warning: with an id, SB3
    first asks for ``render_mode="rgb_array"``, which ``LegalHPO-v0`` ignores (it renders
    ``"ansi"`` only).
    The bare id is qualified with its module, so that subprocess workers (spawn, forkserver),
    which have not imported ``legal_hpo_env``, register it themselves.
    """
    if env_id == "LegalHPO-v0":
        env_id = "legal_hpo_env:LegalHPO-v0"
    return functools.partial(gym.make, env_id)


def _minibatch_size(rollout: int, target: int = _MINIBATCH_TARGET) -> int:
    """The divisor of ``rollout`` closest to ``target`` (on a log scale), at least 2."""
    divisors = [d for d in range(2, rollout + 1) if rollout % d == 0] or [rollout]
    return min(divisors, key=lambda d: (abs(math.log(d / target)), -d))


def make_ppo(
    env_kwargs: dict[str, Any] | None = None,
    n_envs: int = 4,
    seed: int = 0,
    hidden: int = 64,
    tensorboard_log: str | None = None,
    vec_env: str = "dummy",
    *,
    env_id: str | Callable[..., gym.Env] = "LegalHPO-v0",
    verbose: int = 0,
    recurrent: bool = False,
    **ppo_kwargs: Any,
) -> OnPolicyAlgorithm:
    """A stable-baselines3 PPO on ``n_envs`` copies of ``LegalHPO-v0``.

    Defaults chosen for tuning episodes: ``n_steps`` (per env) is a multiple of the
    episode budget, so every rollout holds whole episodes and advantages are computed from
    finished ones; the rollout holds about 512 steps over all envs; the mini-batch size
    divides it; a small entropy bonus (0.01) keeps PPO exploring configurations; the policy
    and value nets are ``[hidden, hidden]`` MLPs; the model runs on the CPU (an MLP this
    small gains nothing from a GPU, while the env's own training may use it). On a busy
    CPU, ``torch.set_num_threads(1)`` makes PPO's updates several times faster.

    Args:
        env_kwargs: keyword arguments of the env (``task``, ``backend``, ``budget``...). With
            ``vec_env="subproc"`` they are sent to worker processes: keep them plain data
            (a backend name, not a backend object).
        n_envs: parallel copies of the env; copy ``i`` is seeded with ``seed + i``.
        seed: seeds the model (torch, numpy) and the envs.
        hidden: units of each of the two hidden layers of the policy and value nets.
        tensorboard_log: folder for TensorBoard logs (``None``: no TensorBoard).
        vec_env: ``"dummy"`` (in process, sequential) or ``"subproc"`` (one process per env:
            worth it when trials train models, not when a table replays them).
        env_id: the registered id, or a callable ``factory(**env_kwargs) -> env``.
        verbose: SB3 verbosity (0 silent, 1 info).
        recurrent: an sb3-contrib ``RecurrentPPO`` with an LSTM of ``hidden`` units before the
            ``[hidden, hidden]`` nets (``MlpLstmPolicy``), instead of a PPO.
        **ppo_kwargs: any other argument of ``stable_baselines3.PPO`` (overrides the above;
            an ``n_steps`` given is rounded up to a multiple of the budget).

    Returns:
        The PPO model (``model.env`` is the vectorised env); train it with
        ``model.learn(total_timesteps, callback=BestScoreCallback())``.
    """
    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env={vec_env!r} is not valid: choose one of {list(VEC_ENVS)}.")
    if not is_int(n_envs) or n_envs < 1:
        raise ValueError(f"n_envs={n_envs!r} must be an integer >= 1.")
    factory = make_env_factory(env_id) if isinstance(env_id, str) else env_id
    env_kwargs = dict(env_kwargs or {})
    if vec_env == "subproc" and env_kwargs.get("ray"):
        # every worker process joins the cluster this one is on, a local instance included
        from legal_hpo_env.distributed import RayOptions, connect

        options = RayOptions.of(env_kwargs["ray"])
        env_kwargs["ray"] = dataclasses.replace(options, address=options.address or connect())
    venv = make_vec_env(
        factory,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        vec_env_cls=DummyVecEnv if vec_env == "dummy" else SubprocVecEnv,
    )
    budget = int(venv.get_attr("budget")[0])
    per_env = ppo_kwargs.pop("n_steps", None)
    if per_env is None:
        per_env = budget * max(1, round(_ROLLOUT_TARGET / (budget * n_envs)))
    n_steps = budget * math.ceil(int(per_env) / budget)
    settings: dict[str, Any] = {
        "n_steps": n_steps,
        "batch_size": _minibatch_size(n_steps * n_envs),
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": {"pi": [hidden, hidden], "vf": [hidden, hidden]}},
        "device": "cpu",
    }
    if recurrent:
        try:
            from sb3_contrib import RecurrentPPO
        except ImportError as err:
            raise ImportError(f"recurrent=True needs sb3-contrib ({err}): pip install legal-hpo-env[sb3]") from err
        settings["policy_kwargs"] = {**settings["policy_kwargs"], "lstm_hidden_size": hidden}
        settings.update(ppo_kwargs)
        return RecurrentPPO("MlpLstmPolicy", venv, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose,
                            **settings)
    settings.update(ppo_kwargs)
    return PPO("MlpPolicy", venv, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose, **settings)


#: What a policy file may hold (an SB3 zip): the policy's weights are read, as tensors only.
#: SB3's ``data`` entry (cloudpickled spaces, schedules, classes) and the optimizer's state
#: are never read: unpickling them could run any code the file's author chose.
POLICY_WEIGHTS = "policy.pth"


def load_ppo(
    path: str | os.PathLike, env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any
) -> OnPolicyAlgorithm:
    """Load a PPO policy saved by ``model.save(path)`` without running code from the file.

    ``legal-hpo train-agent --agent ppo`` saves such a file. ``PPO.load`` unpickles the
    zip's ``data`` entry, which can hold arbitrary code. This reads only ``policy.pth``,
    with ``torch.load(weights_only=True)`` (tensors, no code), rebuilds the network from
    the weights' shapes on a fresh :func:`make_ppo` for ``env_kwargs`` (a RecurrentPPO when
    they hold an LSTM), and loads them into it: a policy for other spaces is refused by name.

    Args:
        path: the ``.zip`` that ``model.save`` wrote.
        env_kwargs: the env to act in (its spaces must be the policy's).
        **make_kwargs: further arguments of :func:`make_ppo` (``n_envs``, ``seed``...).

    Raises:
        PolicyFileError: a missing, damaged or foreign file, or weights for other spaces.
    """
    import io
    import zipfile

    import torch

    from agents.base import PolicyFileError

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise PolicyFileError(f"policy file {name!r} does not exist (or is not a file): check the path.")
    try:
        with zipfile.ZipFile(name) as archive:
            if POLICY_WEIGHTS not in archive.namelist():
                raise PolicyFileError(f"{name!r} holds no {POLICY_WEIGHTS}: it is not a PPO policy saved by SB3.")
            state = torch.load(io.BytesIO(archive.read(POLICY_WEIGHTS)), map_location="cpu", weights_only=True)
    except PolicyFileError:
        raise
    except Exception as e:  # not a zip, truncated, or a pickle that wants to run code: refused alike
        raise PolicyFileError(
            f"{name!r} is not a readable PPO policy ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]});"
            " save one with `legal-hpo train-agent --agent ppo`."
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PolicyFileError(f"{name!r}: {POLICY_WEIGHTS} is not a dict of tensors.")
    first = state.get("mlp_extractor.policy_net.0.weight")
    hidden = int(first.shape[0]) if first is not None else 64
    recurrent = "lstm_actor.weight_hh_l0" in state
    model = make_ppo(env_kwargs, hidden=hidden, recurrent=recurrent, **make_kwargs)
    try:
        model.policy.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PolicyFileError(
            f"{name!r} was trained for other spaces or another network than this env's "
            f"(observation {model.observation_space}, action {model.action_space}): {str(e).splitlines()[0]}"
        ) from e
    return model


class BestScoreCallback(BaseCallback):
    """Log the best dev score of every finished tuning episode to the SB3 logger.

    At each episode end it records ``tuning/best_score`` (and ``tuning/best_test_score``)
    with ``logger.record_mean``, so each logged value is the mean over the episodes that
    ended since the last dump; with ``tensorboard_log`` set they appear in TensorBoard.

    Attributes:
        episodes: one dict per finished episode: ``timestep``, ``best_score``,
            ``best_test_score`` (``None`` when the env reported none), ``task``.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episodes: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if not done:
                continue
            best = info.get("best_score")
            best_score = 0.0 if best is None else float(best)  # every trial diverged
            test = info.get("best_test_score")
            self.logger.record_mean("tuning/best_score", best_score)
            if test is not None:
                self.logger.record_mean("tuning/best_test_score", float(test))
            self.episodes.append(
                {
                    "timestep": self.num_timesteps,
                    "best_score": best_score,
                    "best_test_score": None if test is None else float(test),
                    "task": info.get("task"),
                }
            )
        return True
