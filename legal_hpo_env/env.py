"""``LegalHPO-v0``: hyperparameter tuning of legal-model fine-tuning as an MDP."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from legal_hpo_env.backends.base import ReplayBackend, TrialResult
from legal_hpo_env.config import ACTION_MODES, EnvConfig
from legal_hpo_env.history import SearchHistory, history_layout
from legal_hpo_env.landscape import Landscape
from legal_hpo_env.objective import Objective
from legal_hpo_env.rewards import shaped_reward
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE, HyperParams, SearchSpace
from legal_hpo_env.tasks import FAMILIES

__all__ = ["LegalHPOEnv", "ACTION_MODES", "TaskView", "observation_layout"]


@dataclass(frozen=True)
class TaskView:
    """What agents and benchmarks may read of an env's current episode (read-only).

    Attributes:
        task: the task of the episode.
        space: the grid the agent moves on (the recorded sub-grid when replaying).
        landscape: the task's landscape when replaying (``None`` when training live).
        objective: the episode's objective (its backend, fidelity and store).
    """

    task: str
    space: SearchSpace
    landscape: Landscape | None
    objective: Objective

    def mean_score(self, config: HyperParams) -> float:
        """Mean dev score over recorded seeds of ``config`` (replay backends only)."""
        return self.objective.replay_backend.mean_score(self.task, config)


def observation_layout(observation: str = "basic") -> list[str]:
    """Names of the observation's entries, in order (``"adaptive"`` appends the search history)."""
    basic = (
        [f"hp/{name}" for name in SPACE.names]
        + ["last_score", "best_score", "last_train_loss", "budget_used", "last_diverged"]
        + [f"family/{f}" for f in FAMILIES]
        + ["log_train_size", "log_num_labels", "log_mean_chars"]
    )
    return basic + history_layout() if observation == "adaptive" else basic


class LegalHPOEnv(gym.Env):
    """Tune the fine-tuning of a legal language model, one trial per step.

    ## Description
    The agent holds a hyperparameter configuration of fine-tuning a pretrained
    transformer on a legal task (clause classification, contract QA, judgment
    prediction). Each step it changes the configuration; the environment fine-tunes the
    model with the new one (or replays a recorded run) and returns its validation score.
    The episode is one tuning run of ``budget`` trials; the result is the best
    configuration found (``info["best_config"]``).

    ## Action Space
    k = 7 hyperparameters on grids (``legal_hpo_env.SPACE``): learning_rate (10 values,
    1e-5..1e-2, log), batch_size (4..64), weight_decay (0, 0.01, 0.1), warmup_ratio
    (0..0.2), epochs (1..8), dropout (0..0.3), class_weighting (none, balanced).

    | action_mode      | space                       | meaning                                             |
    |------------------|-----------------------------|-----------------------------------------------------|
    | ``"delta"``      | ``MultiDiscrete([3] * k)``  | per hyperparameter: 0 lower, 1 keep, 2 raise one grid step |
    | ``"single"``     | ``Discrete(2k + 1)``        | 0 keep all; 2i+1 lower / 2i+2 raise hyperparameter i |
    | ``"direct"``     | ``Box(-1, 1, (k,), float32)`` | each value decoded to the nearest grid point      |

    Moves past the end of a grid stay at the end. On a replaying backend ``delta`` and
    ``single`` step along the recorded sub-grid, and a ``direct`` action is decoded on the
    full grid, then snapped to the nearest recorded value: an action means the same
    configuration on every backend.

    ## Observation Space
    ``Box(0, 1, (k + 15,), float32)``; names in :func:`observation_layout`. Every entry is
    normalised against the full search space, whatever the backend: one configuration has
    one observation everywhere, so one policy means the same thing on every backend.

    | index       | entry                                                       |
    |-------------|-------------------------------------------------------------|
    | 0..k-1      | current hyperparameters, normalised to [0, 1] (log where log-scaled) |
    | k           | dev score of the last trial (0 before the first)             |
    | k+1         | best dev score so far                                        |
    | k+2         | last mean train loss, squashed as l / (1 + l) (1 if diverged) |
    | k+3         | fraction of the budget used                                  |
    | k+4         | 1 if the last trial diverged                                 |
    | k+5..k+11   | task family one-hot (``legal_hpo_env.tasks.FAMILIES``; none for custom data) |
    | k+12        | log10(training examples) / 6                                 |
    | k+13        | log2(labels) / 7                                             |
    | k+14        | log10(mean input characters) / 5                             |

    With ``observation="adaptive"`` the search history follows
    (:func:`legal_hpo_env.history.history_layout`, 2k + 3 + 2g entries for g grid values in
    all: 83): the incumbent's configuration and score, the previous configuration, the
    effect of the last move ((last - previous score + 1) / 2) and whether it improved the
    incumbent, then for every value of every grid whether a trial used it and the best dev
    score such a trial gave.

    ## Rewards
    ``reward="score"``: the dev score (headline metric) of the new configuration.
    ``reward="improvement"``: the gain of the best dev score so far (the return is then
    the best score found). ``reward="regret"`` (replay backends only): minus the
    normalised regret (best - incumbent) / (best - worst) after the trial, so the return
    is minus the area under the regret curve. A diverged trial gets ``-diverged_penalty``
    instead of (for ``regret``: on top of) its reward, and ``cost_penalty`` is subtracted
    per compute second of the trial (recorded seconds on the recorded backend).

    ## Starting State
    The default recipe (LexGLUE: lr 3e-5, batch 8), snapped to the grid, or a uniformly
    random grid point with ``start="random"``. No trial is run at reset.

    ## Episode End
    Terminated after ``budget`` trials: the budget is part of the problem and its used
    fraction is observed. ``truncated`` is always False. At the end ``info`` holds
    ``best_test_score``, the test score of the best configuration.

    ## Arguments
    The fields of :class:`~legal_hpo_env.config.EnvConfig`, by keyword (or one
    ``EnvConfig``): ``task`` (name or list of names, sampled per episode;
    ``reset(options={"task": ...})`` picks one), ``backend`` ("recorded": replay the
    packaged ``table``, instant and offline; "head" and "finetune" train live), ``budget``
    (20), ``action_mode`` ("delta"), ``reward`` ("score"), the penalties, the live
    backends' ``model``, ``data_dir``, fidelity (``max_train``, ``max_length``,
    ``max_eval``), ``store`` and ``device``, which a replay backend refuses rather than
    ignores, ``trial_seeds``, ``start`` and ``render_mode``.

    Live trials can run on a Ray cluster (``pip install 'legal-hpo-env[ray]'``):
    ``ray=True`` or ``ray={"address": ..., "trial_cpus": 1, "trial_gpus": 0}`` (see
    :class:`~legal_hpo_env.distributed.RayOptions`). A trial whose worker dies counts as
    diverged and ``info["failed"]`` says why.

    On a replay backend ``info`` also holds ``regret`` and ``regret_to_median``: the
    incumbent's normalised regret, scored on its mean over recorded seeds.

    ## Version History
    * v0: initial version. Later within v0: observations and ``direct`` actions
      normalised against the full search space on every backend; seven task families;
      the opt-in ``observation="adaptive"``.

    >>> import gymnasium as gym, legal_hpo_env
    >>> env = gym.make("LegalHPO-v0", task="unfair_tos", backend="head")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                                      # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())  # doctest: +SKIP
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: EnvConfig | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("give the env an EnvConfig or keyword arguments, not both.")
        if config is not None and not isinstance(config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(config).__name__}: pass arguments by keyword.")
        self.config = cfg = config or EnvConfig.of(kwargs)
        backend: Any = cfg.backend
        if backend == "recorded":  # one table shared by every task's objective
            from legal_hpo_env.backends.recorded import RecordedBackend

            backend = RecordedBackend(fidelity=cfg.table)
        elif cfg.table != "head":
            raise ValueError(f"table={cfg.table!r} chooses a recorded table: it needs backend='recorded'.")
        executor = None
        if cfg.ray is not None:
            from legal_hpo_env.distributed.executor import RayExecutor  # imports ray only when used

            executor = RayExecutor(cfg.ray)
        # Objectives are created here (not lazily) so that a wrong task, backend, model or
        # data directory fails at construction with a clear error.
        self._objectives = {
            name: Objective(name, backend, model=cfg.model, data_dir=cfg.data_dir, fidelity=cfg.fidelity(),
                            store=cfg.store, device=cfg.device, executor=executor)
            for name in dict.fromkeys(cfg.tasks)
        }
        self.tasks = cfg.tasks
        self.hp_space = self._shared_space()
        first = next(iter(self._objectives.values()))
        if cfg.reward == "regret" and not first.replays:
            raise ValueError("reward='regret' needs a replay backend (backend='recorded'), whose optimum is known; "
                             "with live backends use 'score' or 'improvement'.")
        self.budget = cfg.budget
        self.action_mode = cfg.action_mode
        self.reward_kind = cfg.reward
        self.cost_penalty = cfg.cost_penalty
        self.diverged_penalty = cfg.diverged_penalty
        # Replaying: every recorded seed (training noise is part of the problem); live: one
        # seed, so that a configuration asked twice is trained once.
        self.trial_seeds = cfg.trial_seeds or (first.replay_backend.num_seeds() if first.replays else 1)
        self.start = cfg.start
        self.render_mode = cfg.render_mode
        k = len(SPACE)
        if self.action_mode == "delta":
            self.action_space: spaces.Space = spaces.MultiDiscrete([3] * k)
        elif self.action_mode == "single":
            self.action_space = spaces.Discrete(2 * k + 1)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (k,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (len(observation_layout(cfg.observation)),), np.float32)
        self._history = SearchHistory() if cfg.observation == "adaptive" else None
        self._objective: Objective | None = None
        self._replay: ReplayBackend | None = None
        # the step path's constants: each grid's last index, and the action space's bounds
        self._top = tuple(len(d.grid) - 1 for d in self.hp_space.dimensions)
        self._nvec = tuple(int(n) for n in getattr(self.action_space, "nvec", ()))

    def _shared_space(self) -> SearchSpace:
        """The grid agents move on: the full space, or the recorded sub-grid of a replaying backend.

        It is the same for every task of the env, so that one policy fits all.
        """
        first = next(iter(self._objectives.values()))
        if not first.replays:
            return SPACE
        spaces_ = [o.replay_backend.space(o.task_name) for o in self._objectives.values()]
        if any(s.dimensions != spaces_[0].dimensions for s in spaces_[1:]):
            raise ValueError("the tasks of one env must share one recorded grid; these differ.")
        return spaces_[0]

    @property
    def view(self) -> TaskView:
        """The current episode, read-only: task, grid, landscape, objective."""
        if self._objective is None:
            raise RuntimeError("the env has no episode yet: call env.reset() first.")
        return TaskView(self._objective.task_name, self.hp_space, self._land, self._objective)

    def close(self) -> None:
        """Release every objective's store connection."""
        for objective in self._objectives.values():
            objective.close()
        super().close()

    # -- Gymnasium API -------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ValueError(f"reset options={options!r} must be a dict such as {{'task': name}}, or None.")
        unknown = sorted(map(str, set(options) - {"task"}))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}: the only option is 'task'.")
        if "task" in options:
            name = options["task"]
            if not isinstance(name, str) or name not in self._objectives:
                raise ValueError(f"reset task {name!r} is not one of this env's tasks {list(self._objectives)}.")
        else:
            name = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self._objective = self._objectives[name]
        backend = self._objective.backend
        self._replay = backend if isinstance(backend, ReplayBackend) else None
        if self.start == "random":
            self._indices = [int(self.np_random.integers(len(d.grid))) for d in self.hp_space.dimensions]
        else:
            self._indices = list(self.hp_space.to_indices(DEFAULT_RECIPE))
        self._config = self.hp_space.from_indices(self._indices)
        self._trials = 0
        self._best: tuple[float, HyperParams, TrialResult] | None = None
        self._incumbent: dict[str, Any] = {"best_config": None, "best_score": None}
        self._last: TrialResult | None = None
        if self._history is not None:
            self._history.reset()
        self._land = self._landscape()
        meta = self._objective.meta_features()
        self._task_features = self._encode_task(meta)
        return self._observation(), {"task": name, "config": self._config.to_dict()}

    def step(self, action):
        if self._objective is None:
            raise RuntimeError("step() was called before reset(): call env.reset() first.")
        if self._trials >= self.budget:
            raise RuntimeError(f"the episode is over (budget of {self.budget} trials used): call env.reset().")
        before = self._config
        self._indices = self._apply(action)
        self._config = self.hp_space.from_indices(self._indices)
        seed = int(self.np_random.integers(self.trial_seeds))
        if self._replay is not None:  # a grid point and an int seed: nothing left to check, a table lookup
            result = self._replay.replay(self._objective.task_name, self._config, seed)
        else:
            result = self._objective(self._config, seed)
        best_before = self._best[0] if self._best is not None else 0.0
        landscape = self._land
        reward = shaped_reward(
            self.reward_kind,
            result.dev_score,
            best_before,
            diverged=result.diverged,
            seconds=0.0 if result.from_store else result.seconds,
            cost_penalty=self.cost_penalty,
            diverged_penalty=self.diverged_penalty,
            landscape=landscape,
        )
        self._trials += 1
        self._last = result
        if self._history is not None:
            self._history.record(before, self._config, result.dev_score, result.diverged)
        if not result.diverged and (self._best is None or result.dev_score > self._best[0]):
            self._best = (result.dev_score, self._config, result)
            self._incumbent = self._incumbent_info()
        terminated = self._trials >= self.budget
        info = self._info(result, seed)
        if terminated:
            info["best_test_score"] = self._best[2].test_score if self._best else 0.0
        return self._observation(), float(reward), terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        last = "none yet" if self._last is None else f"dev {self._last.dev_score:.4f}"
        best = "none" if self._best is None else f"{self._best[0]:.4f}"
        return f"trial {self._trials}/{self.budget} {self._config.to_dict()} last {last} best {best}"

    # -- internals -----------------------------------------------------------------

    def _apply(self, action) -> list[int]:
        arr = _checked_action(action, self.action_space, self._nvec)
        if arr is None:
            raise ValueError(
                f"action {action!r} is outside the action space {self.action_space} (action_mode={self.action_mode!r})."
            )
        top = self._top
        if self.action_mode == "delta":  # one pass: a move past the end of a grid stays at the end
            return [j if 0 <= (j := i + a - 1) <= t else i for i, a, t in zip(self._indices, arr, top)]
        indices = list(self._indices)
        if self.action_mode == "single":
            if arr > 0:
                dim = (arr - 1) // 2
                indices[dim] = min(max(indices[dim] + (1 if arr % 2 == 0 else -1), 0), top[dim])
            return indices
        # direct: decoded on the full space, then snapped to the grid moved on, so that an
        # action means the same configuration on every backend
        return list(self.hp_space.to_indices(SPACE.decode_unit(arr)))

    def _landscape(self) -> Landscape | None:
        objective = self._objective
        if objective is None or not isinstance(objective.backend, ReplayBackend):
            return None
        return objective.backend.landscape(objective.task_name)

    def _incumbent_info(self) -> dict[str, Any]:
        """What ``info`` says of the best configuration so far (computed when it changes)."""
        assert self._best is not None and self._objective is not None
        score, config, _ = self._best
        out: dict[str, Any] = {"best_config": config.to_dict(), "best_score": score}
        land = self._land
        if land is not None:
            # Regret of the incumbent, scored on its mean over recorded seeds (not on the
            # one noisy seed the agent saw), in both normalisations.
            expected = self._objective.replay_backend.mean_score(self._objective.task_name, config)
            out["regret"] = land.regret(expected)
            out["regret_to_median"] = land.regret_to_median(expected)
        return out

    @staticmethod
    def _encode_task(meta: dict[str, float]) -> list[float]:
        family = [0.0] * len(FAMILIES)
        if meta["family"] >= 0:  # a custom task's family is in no slot
            family[int(meta["family"])] = 1.0
        clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return family + [
            clip(math.log10(max(1.0, meta["train_size"])) / 6),
            clip(math.log2(max(1.0, meta["num_labels"])) / 7),
            clip(math.log10(max(1.0, meta["mean_chars"])) / 5),
        ]

    def _observation(self) -> np.ndarray:
        last = self._last
        if last is None:
            loss = 0.0
        else:
            final = last.train_loss[-1] if last.train_loss else math.nan
            loss = 1.0 if last.diverged or not math.isfinite(final) else final / (1.0 + final)
        # Each entry is in [0, 1] by construction (hyperparameters normalised and clipped,
        # scores validated, task features clipped), so no array-wide clip: clamping the two
        # scores keeps the guarantee for any backend's results.
        obs = SPACE.normalise(self._config) + [  # the full space: one meaning on every backend
            0.0 if last is None else min(1.0, max(0.0, last.dev_score)),
            0.0 if self._best is None else min(1.0, max(0.0, self._best[0])),
            loss,
            self._trials / self.budget,
            1.0 if last is not None and last.diverged else 0.0,
            *self._task_features,
        ]
        if self._history is not None:
            obs += self._history.features()
        return np.array(obs, dtype=np.float32)

    def _info(self, result: TrialResult, seed: int) -> dict[str, Any]:
        train_loss = result.train_loss
        info = {
            "task": result.task,
            "config": self._config.to_dict(),
            "trial_seed": seed,
            "dev_score": result.dev_score,
            "dev_curve": list(result.dev_curve),
            "dev_accuracy": result.dev_accuracy,
            "dev_macro_f1": result.dev_macro_f1,
            "train_loss": train_loss[-1] if train_loss else math.nan,
            "diverged": result.diverged,
            "from_store": result.from_store,
            "seconds": result.seconds,
            "trials": self._trials,
        }
        info.update(self._incumbent)
        if self._best is not None:  # a fresh dict each step: users keep infos, and may change them
            info["best_config"] = dict(self._incumbent["best_config"])
        if "failed" in result.extra:
            info["failed"] = result.extra["failed"]
        return info


def _checked_action(action: Any, space: spaces.Space, nvec: tuple[int, ...] = ()) -> Any:
    """The action as plain Python numbers if the space contains it, else ``None``.

    A list of ints (``MultiDiscrete``, whose bounds ``nvec`` the caller passes), an int
    (``Discrete``), or a list of float32-rounded floats (``Box``).

    ``None`` also for what cannot be an action at all (strings, ragged lists, objects,
    booleans, complex numbers).

    The same test as ``space.contains``, written out because it sits on the step path.
    """
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(space, spaces.Box):
        # float32() of a string parses it, and of a huge int overflows: numbers only
        if arr.dtype.kind not in "iuf" or arr.shape != space.shape:
            return None
        arr = arr.astype(np.float32)
        return arr.tolist() if bool(np.all(arr >= space.low)) and bool(np.all(arr <= space.high)) else None
    if arr.dtype.kind not in "iu":
        return None
    if isinstance(space, spaces.MultiDiscrete):  # a handful of values: Python beats numpy's reductions
        if arr.shape != space.shape:
            return None
        values = arr.tolist()
        if nvec and nvec.count(nvec[0]) == len(nvec):  # one size (delta: 3): two builtins check them all
            return values if min(values) >= 0 and max(values) < nvec[0] else None
        return values if all(0 <= a < n for a, n in zip(values, nvec)) else None
    # Discrete: a scalar, as gymnasium's Discrete.contains wants it
    return int(arr) if arr.shape == () and 0 <= int(arr) < int(space.n) else None  # type: ignore[attr-defined]
