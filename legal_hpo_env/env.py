"""``LegalHPO-v0``: hyperparameter tuning of legal-model fine-tuning as an MDP."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from legal_hpo_env.backends.base import ReplayBackend, TrialResult
from legal_hpo_env.backends.table import TableBackend
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
        + ["log_train_size", "log_num_labels", "majority_share", "log_mean_chars"]
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
    k = 7 hyperparameters on grids (``legal_hpo_env.SPACE``): learning_rate (15 values,
    1e-5..1, log), batch_size (4..64), weight_decay (0, 0.01, 0.1), warmup_ratio
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
    ``Box(0, 1, (k + 16,), float32)``; names in :func:`observation_layout`. Every entry is
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
    | k+14        | share of the most frequent training label (class balance)    |
    | k+15        | log10(mean input characters) / 5                             |

    With ``observation="adaptive"`` the search history follows
    (:func:`legal_hpo_env.history.history_layout`, 2k + 3 + 2g entries for g grid values in
    all: 89): the incumbent's configuration and score, the previous configuration, the
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
      the opt-in ``observation="adaptive"``; the learning-rate grid widened from
      1e-5..1e-2 (10 values) to 1e-5..1e-1 (13 values: 3e-4, 3e-2 and 1e-1 added), then
      to 1e-5..1 (15 values: 3e-1 and 1 added), each of which changes the normalised
      learning rate in observations and the decoding of ``direct`` actions (policies
      trained before it must be retrained); the class balance of the task (share of its
      most frequent training label) added to the task descriptors; ``table="head"``
      replays version 3 of the head table (version 2 as ``"head-v2"``).

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
        # -- the step path's constants, computed once (see step) --
        self._k = k
        self._basic_size = len(observation_layout())
        self._obs_size = len(observation_layout(cfg.observation))
        top = tuple(len(d.grid) - 1 for d in self.hp_space.dimensions)
        self._top = top
        # how an action is checked: the space's kind, shape and bound (see _checked_action)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            nvec = [int(n) for n in self.action_space.nvec]
            bound = nvec[0] if nvec.count(nvec[0]) == len(nvec) else tuple(nvec)
            self._check: tuple[str, tuple[int, ...], Any] = ("multi", self.action_space.shape, bound)
        elif isinstance(self.action_space, spaces.Discrete):
            self._check = ("discrete", (), int(self.action_space.n))
        else:  # the Box built above: one bound for every entry
            self._check = ("box", self.action_space.shape, (-1.0, 1.0))
        # delta: _moves[d][i][a] is where a (0 lower, 1 keep, 2 raise) takes index i of grid d;
        # a move past the end of a grid stays at the end
        self._moves = tuple(tuple((max(i - 1, 0), i, min(i + 1, t)) for i in range(t + 1)) for t in top)
        # direct: per hyperparameter, the full grid's last index and, for each index of the
        # full grid, the nearest index on the grid moved on (what hp_space.to_indices gives
        # of the full grid's value there)
        self._direct = tuple(
            (len(full.grid) - 1, tuple(mine.nearest_index(value) for value in full.grid))
            for full, mine in zip(SPACE.dimensions, self.hp_space.dimensions, strict=True)
        )
        self._start = self.hp_space.to_indices(DEFAULT_RECIPE)
        # per task: its observation features, the observation's base, and its grid points
        self._tasks_seen: dict[str, tuple[list[float], np.ndarray, dict[tuple[int, ...], _Point]]] = {}

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
        self._static = _is_static_table(backend)
        self._land = self._landscape()
        meta = self._objective.meta_features()
        features = self._encode_task(meta)
        self._task_features = features
        seen = self._tasks_seen.get(name)
        if seen is None or seen[0] != features:  # the points' observations hold the task's features
            base = np.zeros(self._obs_size, np.float32)
            base[self._k + 5 : self._basic_size] = features
            seen = self._tasks_seen[name] = (features, base, {})
        self._obs_base, self._points = seen[1], seen[2]
        if self.start == "random":
            start = tuple(int(self.np_random.integers(len(d.grid))) for d in self.hp_space.dimensions)
        else:
            start = self._start
        self._point = point = self._point_at(start)
        self._indices, self._config = point.indices, point.config
        self._trials = 0
        self._best: tuple[float, HyperParams, TrialResult] | None = None
        self._best_obs = 0.0  # the best score's observation entry
        self._incumbent: dict[str, Any] = {"best_config": None, "best_score": None}
        self._last: TrialResult | None = None
        self._last_outcome: _Outcome | None = None
        if self._history is not None:
            self._history.reset()
        return self._observation(), {"task": name, "config": dict(point.config_dict)}

    def step(self, action):
        if self._objective is None:
            raise RuntimeError("step() was called before reset(): call env.reset() first.")
        if self._trials >= self.budget:
            raise RuntimeError(f"the episode is over (budget of {self.budget} trials used): call env.reset().")
        before = self._config
        point = self._point_at(self._move(action))  # the action is checked first: a bad one changes nothing
        self._point, self._indices, self._config = point, point.indices, point.config
        seed = int(self.np_random.integers(self.trial_seeds))
        if self._static:
            # What ReplayBackend.replay returns, runs[seed % len(runs)], with the runs of the
            # point looked up once: the table is fixed at construction (see _is_static_table).
            runs, outcomes = point.runs, point.outcomes
            if runs is None or outcomes is None:  # a MissingTrialError here, as replay() raises it
                assert self._replay is not None
                runs = point.runs = self._replay.runs(self._objective.task_name, point.config)
                outcomes = point.outcomes = [None] * len(runs)
            i = seed % len(runs)
            outcome = outcomes[i]
            if outcome is None:
                outcome = outcomes[i] = _Outcome(runs[i])
        elif self._replay is not None:  # a grid point and an int seed: nothing left to check
            outcome = _Outcome(self._replay.replay(self._objective.task_name, point.config, seed))
        else:
            outcome = _Outcome(self._objective(point.config, seed))
        result = outcome.result
        reward = shaped_reward(
            self.reward_kind,
            result.dev_score,
            self._best[0] if self._best is not None else 0.0,
            diverged=result.diverged,
            seconds=outcome.cost_seconds,
            cost_penalty=self.cost_penalty,
            diverged_penalty=self.diverged_penalty,
            landscape=self._land,
        )
        self._trials += 1
        self._last, self._last_outcome = result, outcome
        if self._history is not None:
            self._history.record(before, point.config, result.dev_score, result.diverged)
        if not result.diverged and (self._best is None or result.dev_score > self._best[0]):
            self._best = (result.dev_score, point.config, result)
            self._best_obs = outcome.score  # the new best score, clamped to [0, 1]
            self._incumbent = self._incumbent_info(point)
        terminated = self._trials >= self.budget
        info = self._info(outcome, seed)
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

    def _move(self, action) -> tuple[int, ...]:
        """The grid indices ``action`` leads to from the current ones (a ValueError if it is no action)."""
        values = _checked_action(action, *self._check)
        if values is None:
            raise ValueError(
                f"action {action!r} is outside the action space {self.action_space} (action_mode={self.action_mode!r})."
            )
        indices = self._indices
        if self.action_mode == "delta":  # values checked to be 0, 1 or 2: indices into the moves
            return tuple([moves[i][a] for moves, i, a in zip(self._moves, indices, values)])
        if self.action_mode == "single":
            if values == 0:
                return indices
            dim = (values - 1) // 2
            moved = list(indices)
            moved[dim] = min(max(indices[dim] + (1 if values % 2 == 0 else -1), 0), self._top[dim])
            return tuple(moved)
        # direct: decoded on the full space, then snapped to the grid moved on, so that an
        # action means the same configuration on every backend. The full grid's index is
        # SPACE.decode_unit's, written out to skip the configuration it builds (a test checks
        # that they agree); its clamp to [-1, 1] is left out as the action was checked to lie there.
        return tuple([snap[round((u + 1.0) / 2.0 * last)] for (last, snap), u in zip(self._direct, values)])

    def _point_at(self, indices: tuple[int, ...]) -> _Point:
        """The episode task's grid point at ``indices`` (in range), built on first use."""
        point = self._points.get(indices)
        if point is None:
            config = self.hp_space.from_indices(indices)
            obs = self._obs_base.copy()
            obs[: self._k] = SPACE.normalise(config)  # the full space: one meaning on every backend
            point = self._points[indices] = _Point(indices, config, obs)
        return point

    def _landscape(self) -> Landscape | None:
        objective = self._objective
        if objective is None or not isinstance(objective.backend, ReplayBackend):
            return None
        return objective.backend.landscape(objective.task_name)

    def _incumbent_info(self, point: _Point) -> dict[str, Any]:
        """What ``info`` says of the best configuration so far (computed when it changes)."""
        assert self._best is not None and self._objective is not None
        out: dict[str, Any] = {"best_config": dict(point.config_dict), "best_score": self._best[0]}
        land = self._land
        if land is not None:
            # Regret of the incumbent, scored on its mean over recorded seeds (not on the
            # one noisy seed the agent saw), in both normalisations. Of a static table, a
            # pure function of the point: kept with it.
            regrets = point.regrets
            if regrets is None:
                expected = self._objective.replay_backend.mean_score(self._objective.task_name, point.config)
                regrets = (land.regret(expected), land.regret_to_median(expected))
                if self._static:
                    point.regrets = regrets
            out["regret"], out["regret_to_median"] = regrets
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
            # tables recorded before this descriptor existed lack it: taken as balanced
            clip(meta.get("majority_share", 1.0 / max(1.0, meta["num_labels"]))),
            clip(math.log10(max(1.0, meta["mean_chars"])) / 5),
        ]

    def _observation(self) -> np.ndarray:
        # A fresh array each call (callers keep observations), copied from the point's
        # template, which holds the normalised hyperparameters and the task's features; the
        # five entries of the search so far are 0 in it. Each entry is in [0, 1] by
        # construction (hyperparameters normalised and clipped, task features clipped, the
        # two scores clamped in _Outcome), so no array-wide clip. Writing a Python float into
        # a float32 entry rounds it as np.array(..., dtype=np.float32) does.
        obs = self._point.obs.copy()
        k = self._k
        last = self._last_outcome
        if last is not None:
            obs[k] = last.score
            obs[k + 1] = self._best_obs
            obs[k + 2] = last.loss
            obs[k + 3] = self._trials / self.budget
            obs[k + 4] = last.diverged
        if self._history is not None:
            self._history.write(obs[self._basic_size :])
        return obs

    def _info(self, outcome: _Outcome, seed: int) -> dict[str, Any]:
        # A fresh dict each step (users keep infos, and may change them), its lists and
        # dicts fresh too; the result's own entries are copied from the outcome's template.
        info = outcome.info.copy()
        info["config"] = dict(self._point.config_dict)
        info["trial_seed"] = seed
        info["dev_curve"] = list(outcome.result.dev_curve)
        info["trials"] = self._trials
        info.update(self._incumbent)
        if self._best is not None:
            info["best_config"] = dict(self._incumbent["best_config"])
        if outcome.failed:
            info["failed"] = outcome.failed[0]
        return info


class _Point:
    """One grid point of an env's task, with what the step path needs of it, built once.

    Everything here is a function of the task and the configuration alone (the
    observation template also of the task's features, which the env checks at reset), so
    it is reused over steps and episodes. ``runs``, ``outcomes`` and ``regrets`` are filled
    on first use, and only for a static table (see :func:`_is_static_table`).
    """

    __slots__ = ("indices", "config", "config_dict", "obs", "runs", "outcomes", "regrets")

    def __init__(self, indices: tuple[int, ...], config: HyperParams, obs: np.ndarray) -> None:
        self.indices = indices
        self.config = config
        self.config_dict = config.to_dict()  # never handed out: copied into each info
        self.obs = obs  # never handed out: copied into each observation
        self.runs: list[TrialResult] | None = None
        self.outcomes: list[_Outcome | None] | None = None
        self.regrets: tuple[float, float] | None = None


class _Outcome:
    """What a step reports of one trial result, computed once per result.

    A replayed result recurs (a table holds a few runs per configuration), so this is kept
    with its point; of a live trial, it is built each step. All of it is a function of the
    result alone: reward, info and observation entries stay exactly those of the result.
    """

    __slots__ = ("result", "info", "score", "loss", "diverged", "cost_seconds", "failed")

    def __init__(self, result: TrialResult) -> None:
        self.result = result
        train_loss = result.train_loss
        final = train_loss[-1] if train_loss else math.nan
        # the observation's entries: the clamped score, the squashed loss, the diverged flag
        self.score = min(1.0, max(0.0, result.dev_score))
        self.loss = 1.0 if result.diverged or not math.isfinite(final) else final / (1.0 + final)
        self.diverged = 1.0 if result.diverged else 0.0
        # the compute the trial cost now: none when read from the store
        self.cost_seconds = 0.0 if result.from_store else result.seconds
        # why a live trial failed, if it did: (reason,), else ()
        self.failed = (result.extra["failed"],) if "failed" in result.extra else ()
        # info's key order; the None entries are filled per step (LegalHPOEnv._info)
        self.info: dict[str, Any] = {
            "task": result.task,
            "config": None,
            "trial_seed": None,
            "dev_score": result.dev_score,
            "dev_curve": None,
            "dev_accuracy": result.dev_accuracy,
            "dev_macro_f1": result.dev_macro_f1,
            "train_loss": final,
            "diverged": result.diverged,
            "from_store": result.from_store,
            "seconds": result.seconds,
            "trials": None,
        }


def _is_static_table(backend: Any) -> bool:
    """Whether replaying on ``backend`` is a pure lookup in a table fixed at construction.

    True for a :class:`TableBackend` (the recorded backend included) whose ``replay``,
    ``runs`` and ``mean_score`` are the stock ones: then the runs of a configuration, and
    so each step's result and the incumbent's mean score, can be looked up once and kept.
    A subclass overriding any of them takes the general path, one ``replay`` call a step.
    """
    cls = type(backend)
    return (
        isinstance(backend, TableBackend)
        and cls.replay is ReplayBackend.replay
        and cls.runs is TableBackend.runs
        and cls.mean_score is ReplayBackend.mean_score
    )


def _checked_action(action: Any, kind: str, shape: tuple[int, ...], bound: Any) -> Any:
    """The action as plain Python numbers if the action space contains it, else ``None``.

    ``kind``, ``shape`` and ``bound`` describe the space (``LegalHPOEnv._check``):
    ``"multi"`` (``MultiDiscrete``; ``bound`` the one size of every entry, or the sizes),
    ``"discrete"`` (``bound`` its ``n``) or ``"box"`` (``bound`` its low and high, the same
    for every entry). Returned: a list of ints, an int, or a list of float32-rounded floats.

    ``None`` also for what cannot be an action at all (strings, ragged lists, objects,
    booleans, complex numbers).

    The same test as ``space.contains``, written out because it sits on the step path: on a
    handful of values, Python's builtins beat numpy's reductions.
    """
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError, OverflowError):
        return None
    if kind == "box":
        # float32() of a string parses it, and of a huge int overflows: numbers only
        if arr.dtype.kind not in "iuf" or arr.shape != shape:
            return None
        values = arr.astype(np.float32).tolist()
        low, high = bound
        # chained comparisons are False for NaN, so NaN is refused as np.all(low <= arr <= high) does
        return values if all(low <= v <= high for v in values) else None
    if arr.dtype.kind not in "iu":
        return None
    if kind == "multi":
        if arr.shape != shape:
            return None
        values = arr.tolist()
        if isinstance(bound, int):  # one size (delta: 3): two builtins check them all
            return values if min(values) >= 0 and max(values) < bound else None
        return values if all(0 <= a < n for a, n in zip(values, bound)) else None
    # Discrete: a scalar, as gymnasium's Discrete.contains wants it
    return int(arr) if arr.shape == () and 0 <= int(arr) < bound else None
