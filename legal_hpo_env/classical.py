"""Classical baselines beside a tuned model: TF-IDF + linear SVM, and the majority class.

Both train and score on exactly the examples a live trial does: the stratified training
subset of the fidelity's ``max_train`` and the dev and test subsets of its ``max_eval``
(:meth:`~legal_hpo_env.tasks.TaskData.subset`, as the ``head`` and ``finetune`` backends
take them), scored with the package's own metrics, so that their numbers compare with the
tuned model's headline metric.

>>> from legal_hpo_env.backends import Fidelity
>>> from legal_hpo_env.tasks import load_task
>>> baselines = classical_baselines(load_task("overruling"), Fidelity(max_train=400))  # doctest: +SKIP
>>> baselines["tfidf_svm"]["test"]["score"], baselines["majority"]["test"]["score"]   # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from legal_hpo_env.backends.base import Fidelity
from legal_hpo_env.backends.metrics import scores

if TYPE_CHECKING:
    from legal_hpo_env.tasks import Example, TaskData

__all__ = [
    "C_GRID",
    "CLASS_WEIGHTINGS",
    "BaselineError",
    "BaselineResult",
    "Split",
    "classical_baselines",
    "majority_baseline",
    "split_of",
    "tfidf_svm_baseline",
]

#: The SVM's regularisation constants tried on dev, strongest regularisation first.
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: Class weightings tried on dev, as the tuned model's search space offers them.
CLASS_WEIGHTINGS = ("none", "balanced")


class BaselineError(ValueError):
    """The task's training texts cannot give a baseline (no word to build features from)."""


@dataclass(frozen=True)
class Split:
    """The examples one trial trains and is scored on, at one fidelity."""

    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


@dataclass(frozen=True)
class BaselineResult:
    """A baseline's scores on dev and test (accuracy, macro-F1, and ``score``: the headline metric).

    Attributes:
        name: ``"tfidf_svm"`` or ``"majority"``.
        metric: the task's headline metric, which ``score`` repeats.
        dev: scores on the dev subset.
        test: scores on the test subset.
        seconds: wall-clock seconds of fitting (every setting tried) and scoring.
        settings: what was chosen on dev (the SVM's ``C`` and class weighting; the majority label).
        tried: the dev score of every setting tried (the SVM's grid).
    """

    name: str
    metric: str
    dev: dict[str, float]
    test: dict[str, float]
    seconds: float
    settings: dict[str, Any]
    tried: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_of(task: TaskData, fidelity: Fidelity) -> Split:
    """The training, dev and test examples a live trial uses at ``fidelity``."""
    pick = lambda split, cap: tuple(getattr(task, split)[i] for i in task.subset(split, cap))  # noqa: E731
    return Split(pick("train", fidelity.max_train), pick("dev", fidelity.max_eval), pick("test", fidelity.max_eval))


def _scored(examples: Sequence[Example], predictions: Sequence[int], metric: str) -> dict[str, float]:
    out = scores([ex.label for ex in examples], list(predictions))
    return {**out, "score": out[metric]}


def majority_baseline(task: TaskData, fidelity: Fidelity, split: Split | None = None) -> BaselineResult:
    """Predict the most frequent training label everywhere (ties: the lowest label index)."""
    start = time.perf_counter()
    split = split or split_of(task, fidelity)
    counts = Counter(ex.label for ex in split.train)
    label = min(counts, key=lambda y: (-counts[y], y))
    metric = task.spec.metric
    return BaselineResult(
        name="majority",
        metric=metric,
        dev=_scored(split.dev, [label] * len(split.dev), metric),
        test=_scored(split.test, [label] * len(split.test), metric),
        seconds=time.perf_counter() - start,
        settings={"label": task.label_names[label], "train_share": counts[label] / len(split.train)},
    )


class _Features:
    """TF-IDF features of an example: its text, and its pair in a separate vocabulary.

    Separate vocabularies keep a word of the hypothesis apart from the same word in the
    passage (ContractNLI's 17 hypotheses are themselves informative).
    """

    def __init__(self, language: str, pairs: bool) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        # Chinese has no spaces between words: character n-grams stand in for word n-grams.
        options: dict[str, Any] = {"analyzer": "char"} if language == "zh" else {}
        make = lambda: TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), **options)  # noqa: E731
        self.text = make()
        self.pair = make() if pairs else None

    def fit_transform(self, examples: Sequence[Example]) -> Any:
        try:
            x = self.text.fit_transform([ex.text for ex in examples])
            if self.pair is None:
                return x
            return self._stack(x, self.pair.fit_transform([ex.text_pair or "" for ex in examples]))
        except ValueError as e:  # scikit-learn's "empty vocabulary": no token in any training text
            raise BaselineError(
                f"the training texts give no TF-IDF features ({e}); check the `text` column, or tune with "
                "--no-baselines."
            ) from e

    def transform(self, examples: Sequence[Example]) -> Any:
        x = self.text.transform([ex.text for ex in examples])
        if self.pair is None:
            return x
        return self._stack(x, self.pair.transform([ex.text_pair or "" for ex in examples]))

    @staticmethod
    def _stack(x: Any, y: Any) -> Any:
        from scipy.sparse import hstack

        return hstack([x, y]).tocsr()


def tfidf_svm_baseline(
    task: TaskData, fidelity: Fidelity, split: Split | None = None, c_grid: Sequence[float] = C_GRID
) -> BaselineResult:
    """TF-IDF (word 1-2-grams, sublinear tf) + :class:`sklearn.svm.LinearSVC`, tuned on dev.

    Every ``C`` of ``c_grid`` with every class weighting of :data:`CLASS_WEIGHTINGS` is
    fitted on the training subset and scored on dev with the task's headline metric; the
    best on dev is scored on test (ties: the smaller ``C``, then no weighting). The SVM
    reads each text whole: ``max_length`` truncates the transformer's tokens only.
    Text pairs get a vocabulary of their own.

    Raises:
        BaselineError: the training texts hold no token to build features from.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    split = split or split_of(task, fidelity)
    metric = task.spec.metric
    features = _Features(task.spec.language, pairs=any(ex.text_pair for ex in split.train))
    x_train = features.fit_transform(split.train)
    x_dev, x_test = features.transform(split.dev), features.transform(split.test)
    y_train = [ex.label for ex in split.train]
    tried: list[dict[str, Any]] = []
    best: tuple[float, Any, dict[str, Any]] | None = None
    for c in c_grid:
        for weighting in CLASS_WEIGHTINGS:
            svm = LinearSVC(C=c, class_weight=None if weighting == "none" else "balanced", max_iter=10_000,
                            random_state=0)
            with warnings.catch_warnings():
                # a large C on separable data may stop short of the optimum: its dev score says how good it is
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(x_train, y_train)
            dev = _scored(split.dev, svm.predict(x_dev).tolist(), metric)
            setting = {"C": c, "class_weighting": weighting}
            tried.append({**setting, "dev_score": dev["score"]})
            if best is None or dev["score"] > best[0]:  # strictly better: ties keep the earlier setting
                best = (dev["score"], svm, {**setting, "dev": dev})
    assert best is not None, "c_grid is empty"
    _, svm, chosen = best
    return BaselineResult(
        name="tfidf_svm",
        metric=metric,
        dev=chosen.pop("dev"),
        test=_scored(split.test, svm.predict(x_test).tolist(), metric),
        seconds=time.perf_counter() - start,
        settings=chosen,
        tried=tried,
    )


def classical_baselines(task: TaskData, fidelity: Fidelity | None = None) -> dict[str, Any]:
    """Both baselines on the split a live trial at ``fidelity`` uses, as plain data.

    Returns:
        ``{"metric", "sizes", "fidelity", "tfidf_svm", "majority"}``; each baseline holds
        ``dev`` and ``test`` (``accuracy``, ``macro_f1``, ``score``), ``seconds`` and its
        ``settings``.

    Raises:
        BaselineError: the training texts hold no token to build features from.
    """
    fidelity = Fidelity() if fidelity is None else fidelity
    if not isinstance(fidelity, Fidelity):
        raise TypeError(f"fidelity must be a Fidelity (or None), got {type(fidelity).__name__}.")
    split = split_of(task, fidelity)
    return {
        "metric": task.spec.metric,
        "sizes": split.sizes(),
        "fidelity": fidelity.to_dict(),
        "tfidf_svm": tfidf_svm_baseline(task, fidelity, split).to_dict(),
        "majority": majority_baseline(task, fidelity, split).to_dict(),
    }
