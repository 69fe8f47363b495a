"""REINFORCE (Williams, 1992): the plainest policy gradient, written to be read.

The policy gradient theorem, as this file computes it:

    ∇θ J(θ) = E_τ~πθ [ Σ_t ∇θ log πθ(a_t | s_t) · (G_t − b_t) ]

* ``G_t = Σ_{t' ≥ t} γ^(t'−t) r_t'`` is the return-to-go of step t (:func:`returns_to_go`);
  an action is credited only with the rewards that follow it.
* ``b_t`` is a baseline: the mean return-to-go at step t over the batch of episodes of one
  update (:func:`time_step_baseline`). Tuning episodes all last ``budget`` steps and the
  observation holds the budget used, so the step index is a good state summary to centre
  on. A baseline that does not depend on the action leaves the expected gradient's
  direction unchanged (it includes the episode's own return, which scales the expectation
  by (N − 1)/N) and cuts its variance a lot.
* The expectation is estimated by the mean over every step of ``episodes_per_update``
  sampled episodes; the loss minimised is ``−mean(log π · A) − ent_coef · mean(entropy)``.

The policy is an MLP with ReLU units and one output head per kind of action space:

| action space      | distribution                                                         |
|-------------------|----------------------------------------------------------------------|
| ``Discrete``      | categorical (softmax of logits)                                      |
| ``MultiDiscrete`` | factorised categorical: one softmax per dimension, log-probs summed  |
| ``Box``           | diagonal Gaussian: mean from the MLP, state-independent ``log_std``  |

Gaussian samples are clipped to the Box only when sent to the env; the gradient uses the
log-probability of the unclipped sample, as stable-baselines3 does.

The API follows stable-baselines3 (``learn``, ``predict``, ``save``, ``load``):

>>> import gymnasium as gym, legal_hpo_env
>>> from agents.reinforce import REINFORCE
>>> env = gym.make("LegalHPO-v0", task="unfair_tos", budget=10)   # doctest: +SKIP
>>> agent = REINFORCE(env, seed=0).learn(total_timesteps=2_000)     # doctest: +SKIP
>>> action, _ = agent.predict(env.reset(seed=1)[0], deterministic=True)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.base import PolicyFileError, Searcher, TuningRun, play_episode
from legal_hpo_env.checks import is_int

__all__ = ["Args", "REINFORCE", "PolicySearcher", "returns_to_go", "time_step_baseline"]

#: Version of the checkpoint layout written by :meth:`REINFORCE.save`.
CHECKPOINT_FORMAT = "agents.reinforce/1"

#: ``callback(locals_, agent)`` of :meth:`REINFORCE.learn`; returning ``False`` stops training.
Callback = Callable[[dict[str, Any], "REINFORCE"], Any]


@dataclass(frozen=True)
class Args:
    """Hyperparameters of REINFORCE (the agent's own, not the ones it tunes)."""

    hidden: int = 64
    """units in each hidden ReLU layer of the policy MLP"""
    n_layers: int = 1
    """hidden layers of the policy MLP"""
    learning_rate: float = 3e-3
    """Adam step size"""
    gamma: float = 1.0
    """discount of the returns-to-go (1: every trial of the budget counts the same)"""
    episodes_per_update: int = 8
    """episodes sampled per gradient step (the batch the baseline averages over; >= 2)"""
    ent_coef: float = 0.01
    """weight of the entropy bonus that keeps the policy exploring"""
    max_grad_norm: float = 0.5
    """the gradient's global norm is clipped to this"""
    normalize_advantages: bool = True
    """scale the advantages of a batch to mean 0 and standard deviation 1"""
    log_std_init: float = -0.5
    """initial log standard deviation of the Gaussian policy (Box actions only)"""
    seed: int = 0
    """seeds the policy's initialisation, its action sampling and the first env reset"""
    torch_threads: int = 1
    """CPU threads of torch during learn (a tiny MLP is fastest on one; 0 keeps torch's setting)"""

    def __post_init__(self) -> None:
        for name in ("hidden", "n_layers", "episodes_per_update", "seed", "torch_threads"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise ValueError(f"REINFORCE {name}={value!r} must be a non-negative integer.")
        if self.hidden < 1 or self.n_layers < 1:
            raise ValueError(f"REINFORCE needs hidden >= 1 and n_layers >= 1, got {self.hidden}, {self.n_layers}.")
        if self.episodes_per_update < 2:
            # With one episode the time-step baseline equals its return: every advantage is 0.
            raise ValueError(
                f"episodes_per_update={self.episodes_per_update} must be >= 2 (the baseline is a batch mean)."
            )
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma={self.gamma!r} must lie in [0, 1].")
        if not self.learning_rate > 0 or not self.max_grad_norm > 0 or self.ent_coef < 0:
            raise ValueError("learning_rate and max_grad_norm must be > 0 and ent_coef >= 0.")


# -- returns and baseline: the two quantities of the gradient estimate --------------------


def returns_to_go(rewards: list[float], gamma: float) -> list[float]:
    """``G_t = r_t + γ G_{t+1}`` for every step of one episode (``G_T = 0``)."""
    out, g = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def time_step_baseline(returns: list[list[float]]) -> list[float]:
    """``b_t``: the mean return-to-go at step t over the episodes that reached step t."""
    horizon = max(len(g) for g in returns)
    return [float(np.mean([g[t] for g in returns if len(g) > t])) for t in range(horizon)]


# -- the policy ------------------------------------------------------------------------


def describe_action_space(space: spaces.Space) -> dict[str, Any]:
    """Plain data that rebuilds the policy's output head (stored in checkpoints)."""
    if isinstance(space, spaces.Discrete):
        return {"kind": "discrete", "nvec": [int(space.n)], "start": [int(space.start)]}
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return {"kind": "multidiscrete", "nvec": space.nvec.tolist(), "start": np.asarray(space.start).tolist()}
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return {"kind": "box", "low": space.low.tolist(), "high": space.high.tolist()}
    raise TypeError(f"REINFORCE supports Discrete, 1-D MultiDiscrete and 1-D Box actions, not {space}.")


class Policy(nn.Module):
    """``πθ(a | s)``: an MLP from observation to the parameters of the action distribution."""

    def __init__(self, obs_dim: int, action: dict[str, Any], hidden: int, n_layers: int, log_std_init: float) -> None:
        super().__init__()
        self.kind = action["kind"]
        layers: list[nn.Module] = []
        width = obs_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        if self.kind == "box":
            self.action_dim = len(action["low"])
            self.head = nn.Linear(width, self.action_dim)  # the Gaussian's mean
            self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)))
        else:
            self.nvec = list(action["nvec"])
            self.head = nn.Linear(width, sum(self.nvec))  # all categoricals' logits, side by side
            valid = torch.tensor([[j < n for j in range(max(self.nvec))] for n in self.nvec])
            self.register_buffer("valid", valid, persistent=False)
        # Small output weights start the policy near uniform (or at mean 0): exploration first.
        nn.init.orthogonal_(self.head.weight, gain=0.01)
        nn.init.zeros_(self.head.bias)

    def _log_probs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of every categorical, laid out ``(n, dims, max categories)``.

        Each dimension's logits are padded to the widest one; padded entries are masked
        out (probability 0) by the returned boolean ``valid`` mask.
        """
        logits = self.head(self.body(obs))
        width = max(self.nvec)
        chunks = [nn.functional.pad(c, (0, width - c.shape[-1]), value=-1e9) for c in logits.split(self.nvec, -1)]
        log_probs = torch.log_softmax(torch.stack(chunks, dim=-2), dim=-1)
        return log_probs, self.get_buffer("valid")

    def _gaussian(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.head(self.body(obs)), self.log_std.exp())

    def sample(self, obs: torch.Tensor, generator: torch.Generator, deterministic: bool = False) -> torch.Tensor:
        """Actions for a batch of observations: ``(n, dims)`` of category indices or reals.

        Sampling draws from ``generator`` (not torch's global RNG), so the agent's seed
        alone fixes its actions.
        """
        if self.kind == "box":
            dist = self._gaussian(obs)
            if deterministic:
                return dist.mean
            noise = torch.randn(dist.mean.shape, generator=generator)
            return dist.mean + dist.stddev * noise
        log_probs, _ = self._log_probs(obs)
        if deterministic:
            return log_probs.argmax(dim=-1)
        flat = log_probs.exp().reshape(-1, log_probs.shape[-1])  # one row per (observation, dimension)
        return torch.multinomial(flat, 1, generator=generator).reshape(log_probs.shape[:-1])

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log πθ(a | s)`` and the entropy of ``πθ(· | s)``, summed over action dimensions.

        The dimensions are independent given s: a factorised distribution.
        """
        if self.kind == "box":
            dist = self._gaussian(obs)
            return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)
        log_probs, valid = self._log_probs(obs)
        taken = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (n, dims)
        entropy = -(log_probs.exp() * log_probs).masked_fill(~valid, 0.0).sum(-1)  # (n, dims)
        return taken.sum(-1), entropy.sum(-1)


# -- the agent -------------------------------------------------------------------------


class REINFORCE:
    """REINFORCE with a time-step baseline, advantage normalisation and an entropy bonus.

    Args:
        env: a single (not vectorised) Gymnasium env with a flat Box observation, e.g.
            ``gym.make("LegalHPO-v0", ...)`` in any action mode.
        args: the agent's hyperparameters (default :class:`Args`).
        **overrides: fields of :class:`Args` to change, e.g. ``seed=1, learning_rate=1e-2``.

    Attributes:
        num_timesteps: env steps taken by :meth:`learn` so far.
        history: one dict per update: timesteps, mean (undiscounted) episode return, mean
            best score of the episodes, loss, entropy.
    """

    def __init__(self, env: gym.Env, args: Args | None = None, **overrides: Any) -> None:
        known = {f.name for f in fields(Args)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown REINFORCE argument(s) {unknown}: valid ones are {sorted(known)}.")
        args = replace(args or Args(), **overrides)
        obs_space = env.observation_space
        if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
            raise TypeError(f"REINFORCE needs a flat Box observation space, not {obs_space}.")
        self._setup(env, int(obs_space.shape[0]), describe_action_space(env.action_space), args)

    def _setup(self, env: gym.Env | None, obs_dim: int, action: dict[str, Any], args: Args) -> None:
        self.env = env
        self.args = args
        self.obs_dim = obs_dim
        self.action_description = action
        # Initialise from the seed without disturbing torch's global RNG for the caller.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            self.policy = Policy(obs_dim, action, args.hidden, args.n_layers, args.log_std_init)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=args.learning_rate)
        self._rng = torch.Generator().manual_seed(args.seed)
        self._reset_seed: int | None = args.seed  # used by the first reset only
        self.num_timesteps = 0
        self.history: list[dict[str, float]] = []

    # -- acting --------------------------------------------------------------------

    def _to_env(self, action: torch.Tensor) -> Any:
        """A policy output (one row) as the env's action: shifted categories or clipped reals."""
        desc = self.action_description
        if desc["kind"] == "box":
            return np.clip(action.numpy().astype(np.float32), desc["low"], desc["high"]).astype(np.float32)
        values = action.numpy().astype(np.int64) + np.asarray(desc["start"], dtype=np.int64)
        return values[0] if desc["kind"] == "discrete" else values

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, None]:
        """The action for one observation (or a batch of them), as the env takes it.

        Args:
            observation: shape ``(obs_dim,)``, or ``(n, obs_dim)`` for a batch.
            state: unused (stable-baselines3 signature: this policy has no memory).
            episode_start: unused.
            deterministic: most likely action (argmax, or the Gaussian's mean) instead of a sample.

        Returns:
            ``(action, None)``; a batch gives an array of actions.
        """
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32))
        single = obs.ndim == 1
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation of shape {tuple(obs.shape)} does not match the policy's ({self.obs_dim},).")
        with torch.no_grad():
            actions = self.policy.sample(obs.reshape(-1, self.obs_dim), self._rng, deterministic)
        out = [self._to_env(a) for a in actions]
        return (np.asarray(out[0]) if single else np.stack(out)), None

    def set_random_seed(self, seed: int) -> None:
        """Reseed the agent's action sampling (and the next env reset of :meth:`learn`)."""
        self._rng.manual_seed(seed)
        self._reset_seed = seed

    def _play_episode(self) -> dict[str, Any]:
        """Sample one episode with the current policy; keep what the gradient needs."""
        if self.env is None:
            raise RuntimeError(
                "this agent has no env to play: give one to REINFORCE(...) or REINFORCE.load(..., env=env)."
            )
        env = self.env
        obs, _ = env.reset(seed=self._reset_seed)
        self._reset_seed = None  # later resets continue the env's own RNG stream
        observations, actions, rewards = [], [], []
        done = False
        info: dict[str, Any] = {}
        while not done:
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
            with torch.no_grad():
                action = self.policy.sample(obs_t, self._rng)[0]
            obs, reward, terminated, truncated, info = env.step(self._to_env(action))
            observations.append(obs_t[0])
            actions.append(action)
            rewards.append(float(reward))
            done = terminated or truncated
        best = info.get("best_score")
        return {
            "obs": torch.stack(observations),
            "actions": torch.stack(actions),
            "rewards": rewards,
            "best_score": float(best) if best is not None else 0.0,
        }

    # -- learning ------------------------------------------------------------------

    def learn(self, total_timesteps: int, callback: Callback | None = None) -> REINFORCE:
        """Train for at least ``total_timesteps`` env steps, in whole batches of episodes.

        Args:
            total_timesteps: env steps to take (rounded up to whole updates).
            callback: called after every update as ``callback(locals_, agent)``, where
                ``locals_`` holds the update's variables (``stats``, the new entry of
                :attr:`history`; ``batch``; ``advantages``...); returning ``False`` stops
                training (stable-baselines3's convention for callables).

        Returns:
            ``self``.
        """
        if self.env is None:
            raise RuntimeError("this agent has no env (loaded without one): pass env= to REINFORCE.load to train.")
        threads = torch.get_num_threads()
        if self.args.torch_threads:
            # Thread start-up costs more than a 64-unit layer: one thread is several times faster.
            torch.set_num_threads(self.args.torch_threads)
        try:
            self._learn(int(total_timesteps), callback)
        finally:
            torch.set_num_threads(threads)
        return self

    def _learn(self, total_timesteps: int, callback: Callback | None) -> None:
        args = self.args
        target = self.num_timesteps + total_timesteps
        while self.num_timesteps < target:
            # 1. Sample a batch of episodes with the current policy πθ.
            batch = [self._play_episode() for _ in range(args.episodes_per_update)]
            # 2. Returns-to-go G_t, and advantages A_t = G_t - b_t against the time-step baseline.
            returns = [returns_to_go(ep["rewards"], args.gamma) for ep in batch]
            baseline = time_step_baseline(returns)
            advantages = torch.tensor(
                [g_t - baseline[t] for g in returns for t, g_t in enumerate(g)], dtype=torch.float32
            )
            if args.normalize_advantages and len(advantages) > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            # 3. log πθ(a_t | s_t) of the actions taken, recomputed with gradients.
            obs = torch.cat([ep["obs"] for ep in batch])
            actions = torch.cat([ep["actions"] for ep in batch])
            log_prob, entropy = self.policy.log_prob_and_entropy(obs, actions)
            # 4. Gradient ascent on mean(log π · A) + ent_coef · entropy, as descent on its negative.
            pg_loss = -(log_prob * advantages).mean()
            loss = pg_loss - args.ent_coef * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), args.max_grad_norm)
            self.optimizer.step()

            self.num_timesteps += len(actions)
            stats = {
                "timesteps": float(self.num_timesteps),
                "mean_return": float(np.mean([sum(ep["rewards"]) for ep in batch])),  # undiscounted
                "mean_best_score": float(np.mean([ep["best_score"] for ep in batch])),
                "loss": float(loss.item()),
                "entropy": float(entropy.mean().item()),
            }
            self.history.append(stats)
            if callback is not None and callback(locals(), self) is False:
                break

    # -- persistence ---------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy, the args, the spaces and the sampling RNG state to ``path``."""
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "args": asdict(self.args),
                "obs_dim": self.obs_dim,
                "action": self.action_description,
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng_state": self._rng.get_state(),
                "num_timesteps": self.num_timesteps,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None) -> REINFORCE:
        """Rebuild a saved agent; give ``env`` (with the same spaces) to train it further.

        Without an env the agent can still :meth:`predict`.
        """
        name = os.fspath(path)
        if not os.path.isfile(name):
            raise PolicyFileError(f"policy file {name!r} does not exist (or is not a file): check the path.")
        try:
            # weights_only: tensors and plain containers only, so loading a file runs no code
            ckpt = torch.load(name, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, empty, random bytes, a pickle with code in it: all refused
            raise PolicyFileError(
                f"{name!r} is not a readable REINFORCE policy "
                f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}); "
                "save one with `legal-hpo train-agent --agent reinforce`."
            ) from e
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise PolicyFileError(f"{name!r} is not a REINFORCE checkpoint of format {CHECKPOINT_FORMAT!r}.")
        if env is not None:
            obs_space = env.observation_space
            if obs_space.shape != (ckpt["obs_dim"],) or describe_action_space(env.action_space) != ckpt["action"]:
                raise PolicyFileError(
                    f"the env's spaces ({obs_space}, {env.action_space}) differ from the saved agent's "
                    f"(observation ({ckpt['obs_dim']},), action {ckpt['action']})."
                )
        agent = cls.__new__(cls)
        agent._setup(env, int(ckpt["obs_dim"]), ckpt["action"], Args(**ckpt["args"]))
        agent.policy.load_state_dict(ckpt["policy"])
        agent.optimizer.load_state_dict(ckpt["optimizer"])
        agent._rng.set_state(ckpt["rng_state"])
        agent._reset_seed = None  # a resumed run continues, it does not replay the first reset
        agent.num_timesteps = int(ckpt["num_timesteps"])
        return agent

    def __repr__(self) -> str:
        return f"REINFORCE({self.args}, num_timesteps={self.num_timesteps})"


class PolicySearcher(Searcher):
    """Play tuning episodes with a trained policy.

    The policy is this package's :class:`REINFORCE`, a stable-baselines3 model, or any object with
    ``predict(obs, deterministic=...)``.

    Args:
        model: the trained policy.
        name: method name of the runs (default: the model's class name, lower case).
        deterministic: take the most likely action (the default, as stable-baselines3's
            ``evaluate_policy``); with ``False`` the model's sampling is reseeded with the
            episode seed where it has ``set_random_seed``, so a seed fixes the run.
    """

    name: ClassVar[str] = "policy"

    def __init__(self, model: Any, name: str | None = None, deterministic: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must have predict(obs, deterministic=...); a {type(model).__name__} has none.")
        self.model = model
        self.method = name or type(model).__name__.lower()
        self.deterministic = deterministic

    def __repr__(self) -> str:
        return f"PolicySearcher({type(self.model).__name__}, deterministic={self.deterministic})"

    def run(self, env: gym.Env, seed: int | None = None) -> TuningRun:
        if not self.deterministic and seed is not None and hasattr(self.model, "set_random_seed"):
            self.model.set_random_seed(seed)
        # a recurrent policy (sb3-contrib's RecurrentPPO) carries its memory from step to step
        recurrent = "episode_start" in inspect.signature(self.model.predict).parameters
        memory: dict[str, Any] = {"state": None, "start": np.ones((1,), dtype=bool)}

        def choose(obs: np.ndarray) -> Any:
            if not recurrent:
                return self.model.predict(obs, deterministic=self.deterministic)[0]
            action, memory["state"] = self.model.predict(obs, state=memory["state"], episode_start=memory["start"],
                                                         deterministic=self.deterministic)
            memory["start"] = np.zeros((1,), dtype=bool)
            return action

        return play_episode(env, choose, seed, method=self.method)
