"""Classification metrics, from scikit-learn (offline, standard definitions)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["scores"]


def scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1.

    Macro-F1 averages over the classes present in either ``y_true`` or ``y_pred``, so a
    majority-class predictor scores 1/k of a perfect one.
    """
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
