"""The env's configuration: plain, validated data, one field per ``gym.make`` argument.

``gym.make("LegalHPO-v0", **kwargs)`` builds an :class:`EnvConfig` from its keyword
arguments, so every argument is checked in one place, before anything is loaded, and a
wrong one is named with its valid values.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from legal_hpo_env.backends.base import Backend, Fidelity, ReplayBackend
from legal_hpo_env.checks import is_int, is_number
from legal_hpo_env.rewards import REWARDS
from legal_hpo_env.tasks.suite import expand_tasks, is_task_set

__all__ = ["EnvConfig", "ACTION_MODES", "OBSERVATIONS", "RENDER_MODES", "MAX_PENALTY"]

ACTION_MODES = ("delta", "single", "direct")
OBSERVATIONS = ("basic", "adaptive")
RENDER_MODES = ("ansi",)
#: Largest ``cost_penalty``/``diverged_penalty``: far beyond any useful value, small enough
#: that a penalty times a trial's seconds cannot overflow to an infinite reward.
MAX_PENALTY = 1e9


@dataclass(frozen=True)
class EnvConfig:
    """Everything ``LegalHPO-v0`` takes.

    Attributes:
        task: a task name, a named set (``"suite:train"``, ``"family:case_law"``, see
            :mod:`legal_hpo_env.tasks.suite`) or a list of them (one task sampled per episode).
        backend: ``"recorded"`` (replay the packaged ``table``: instant, offline),
            ``"head"`` or ``"finetune"`` (train live), or a backend instance.
        table: which recorded table the ``recorded`` backend replays.
        budget: trials per episode.
        action_mode: ``"delta"``, ``"single"`` or ``"direct"`` (see the env's docstring).
        reward: ``"score"``, ``"improvement"`` or ``"regret"`` (replay backends only).
        cost_penalty: subtracted per compute second of a trial.
        diverged_penalty: the reward of a diverged trial is minus this.
        model: Hugging Face model id or folder (live backends); ``None``: packaged MiniLM.
        data_dir: the data folder (live backends); ``None``: ``$LEGAL_HPO_DATA``.
        max_train: cap on training examples (live backends).
        max_length: tokens per input (live backends; ``None``: 128).
        max_eval: cap on dev and test examples (live backends).
        trial_seeds: how many training seeds a trial's seed is drawn from; ``None``:
            every recorded seed when replaying, 1 when training live.
        start: ``"default"`` (the LexGLUE recipe) or ``"random"`` (a random grid point).
        store: trial store file (live backends).
        device: torch device (live backends).
        render_mode: ``None`` or ``"ansi"``; another mode is warned about and ignored.
        observation: ``"basic"`` (the current configuration, last and best score, loss,
            budget, task descriptors) or ``"adaptive"`` (also the incumbent, the previous
            configuration and the effect of the last move, and per grid value whether it was
            tried and its best score: :mod:`legal_hpo_env.history`).
        ray: run live trials on Ray: ``True``, or a mapping of
            :class:`~legal_hpo_env.distributed.RayOptions` fields (address, trial_cpus,
            trial_gpus, retries, max_in_flight).
    """

    task: str | Sequence[str] = "unfair_tos"
    backend: str | Backend | ReplayBackend = "recorded"
    table: str = "head"
    budget: int = 20
    action_mode: str = "delta"
    reward: str = "score"
    cost_penalty: float = 0.0
    diverged_penalty: float = 0.5
    model: str | None = None
    data_dir: str | os.PathLike | None = None
    max_train: int | None = None
    max_length: int | None = None
    max_eval: int | None = None
    trial_seeds: int | None = None
    start: str = "default"
    store: str | os.PathLike | None = None
    device: str | None = None
    render_mode: str | None = None
    ray: Any = None
    observation: str = "basic"

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> EnvConfig:
        """The config of ``gym.make``'s keyword arguments, naming any unknown one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"LegalHPO-v0 got unknown argument(s) {unknown}: valid ones are {sorted(known)}.")
        return cls(**kwargs)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if not isinstance(self.action_mode, str) or self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={self.action_mode!r} is not valid: choose one of {list(ACTION_MODES)}.")
        if not isinstance(self.reward, str) or self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r} is not valid: choose one of {sorted(REWARDS)}.")
        if not is_int(self.budget) or self.budget < 1:
            raise ValueError(f"budget={self.budget!r} must be an integer >= 1 (trials per episode).")
        set_("budget", int(self.budget))
        if not isinstance(self.observation, str) or self.observation not in OBSERVATIONS:
            raise ValueError(f"observation={self.observation!r} is not valid: choose one of {list(OBSERVATIONS)}.")
        if not isinstance(self.start, str) or self.start not in ("default", "random"):
            raise ValueError(f"start={self.start!r} is not valid: choose 'default' or 'random'.")
        for name in ("cost_penalty", "diverged_penalty"):
            value = getattr(self, name)
            # numpy floats included; bounded, so that penalty x seconds stays a finite reward
            if not is_number(value) or not 0 <= float(value) <= MAX_PENALTY:
                raise ValueError(f"{name}={value!r} must be a finite number >= 0 (at most {MAX_PENALTY:g}).")
            set_(name, float(value))
        if self.trial_seeds is not None and (not is_int(self.trial_seeds) or not 1 <= self.trial_seeds <= 2**32):
            raise ValueError(
                f"trial_seeds={self.trial_seeds!r} must be an integer in [1, 2**32] (or None for the default)."
            )
        if self.render_mode is not None:
            if not isinstance(self.render_mode, str):
                raise ValueError(f"render_mode={self.render_mode!r} must be None or 'ansi'.")
            if self.render_mode not in RENDER_MODES:
                # as most envs do: vector-env helpers (SB3's make_vec_env) ask for rgb_array
                warnings.warn(f"LegalHPO-v0 renders text only: render_mode={self.render_mode!r} is ignored "
                              "(use 'ansi').", stacklevel=4)
                set_("render_mode", None)
        tasks = [self.task] if isinstance(self.task, str) else self.task
        if not isinstance(tasks, (list, tuple)) or not all(isinstance(t, str) for t in tasks):
            raise TypeError(f"task={self.task!r} must be a task name (str) or a list of task names.")
        if not tasks:
            raise ValueError("task=[] is empty: give a task name or a list of task names.")
        expanded = expand_tasks(list(tasks))  # named sets (suite:train, family:case_law) become their tasks
        single = isinstance(self.task, str) and not is_task_set(self.task)
        set_("task", expanded[0] if single else tuple(expanded))
        if isinstance(self.backend, str) and self.backend not in ("recorded", "head", "finetune"):
            raise ValueError(f"backend={self.backend!r} is not valid: choose 'recorded', 'head' or 'finetune'.")
        if not isinstance(self.backend, (str, Backend, ReplayBackend)):
            raise TypeError(f"backend={self.backend!r} ({type(self.backend).__name__}) must be 'recorded', 'head', "
                            "'finetune' or a backend instance.")
        if not isinstance(self.table, str):
            raise ValueError(f"table={self.table!r} must be the name of a recorded table, such as 'head'.")
        for name in ("model", "device"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a string (or None).")
        for name in ("store", "data_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{name}={value!r} must be a file path (str) or None.")
        if self.ray is not None and self.ray is not False:
            from legal_hpo_env.distributed.executor import RayOptions

            set_("ray", RayOptions.of(self.ray))
        else:
            set_("ray", None)

    @property
    def tasks(self) -> list[str]:
        return [self.task] if isinstance(self.task, str) else list(self.task)

    def fidelity(self) -> Fidelity | None:
        """The fidelity asked for; ``None`` when none was (a replay backend's own applies)."""
        if self.max_train is None and self.max_length is None and self.max_eval is None:
            return None
        return Fidelity(max_train=self.max_train, max_length=128 if self.max_length is None else self.max_length,
                        max_eval=self.max_eval)
