"""Classification metrics on class indices, matching scikit-learn's definitions.

Inputs are Tensors, arrays or lists of integer class indices of the same shape (for
logits, pass `logits.argmax(dim=-1)`). Classes are 0..num_classes-1, with num_classes
defaulting to the largest label seen plus one. A ratio whose denominator is zero (a class
never predicted, or absent from the targets) counts as 0, as scikit-learn's default does.
"""

from __future__ import annotations

import numpy as np

_AVERAGES = ("macro", None)


def _as_labels(pred, target, op: str) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        hint = (" (pred looks like scores; pass pred.argmax(dim=-1))"
                if pred.ndim == target.ndim + 1 else "")
        raise ValueError(f"{op}: pred of shape {pred.shape} and target of shape {target.shape} "
                         f"must have the same shape{hint}")
    for name, labels in (("pred", pred), ("target", target)):
        if labels.size and labels.dtype.kind not in "iub":
            raise TypeError(f"{op}: {name} must hold integer class indices, got dtype "
                            f"{labels.dtype}")
    if pred.size == 0:
        raise ValueError(f"{op}: pred and target are empty")
    return pred.reshape(-1).astype(np.int64), target.reshape(-1).astype(np.int64)


def confusion_matrix(pred, target, num_classes: int | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    pred, target = _as_labels(pred, target, "confusion_matrix")
    if num_classes is None:
        num_classes = int(max(pred.max(), target.max())) + 1
    for name, labels in (("pred", pred), ("target", target)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"confusion_matrix: {name} holds labels in "
                             f"[{labels.min()}, {labels.max()}], outside 0..{num_classes - 1} "
                             f"(num_classes={num_classes})")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def accuracy(pred, target) -> float:
    """The fraction of positions where pred equals target."""
    pred, target = _as_labels(pred, target, "accuracy")
    return float(np.mean(pred == target))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _reduce(per_class: np.ndarray, average: str | None, op: str):
    if average not in _AVERAGES:
        raise ValueError(f"{op}: average must be one of {_AVERAGES}, got {average!r}")
    return float(per_class.mean()) if average == "macro" else per_class


def _counts(pred, target, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: true positives, false positives, false negatives."""
    matrix = confusion_matrix(pred, target, num_classes)
    true_positives = np.diag(matrix)
    return true_positives, matrix.sum(0) - true_positives, matrix.sum(1) - true_positives


def precision(pred, target, average: str | None = "macro", num_classes: int | None = None):
    """tp / (tp + fp) per class; their mean (a float) for "macro", the array for None."""
    tp, fp, _ = _counts(pred, target, num_classes)
    return _reduce(_ratio(tp, tp + fp), average, "precision")


def recall(pred, target, average: str | None = "macro", num_classes: int | None = None):
    """tp / (tp + fn) per class; their mean (a float) for "macro", the array for None."""
    tp, _, fn = _counts(pred, target, num_classes)
    return _reduce(_ratio(tp, tp + fn), average, "recall")


def f1_score(pred, target, average: str | None = "macro", num_classes: int | None = None):
    """2tp / (2tp + fp + fn) per class (the harmonic mean of precision and recall)."""
    tp, fp, fn = _counts(pred, target, num_classes)
    return _reduce(_ratio(2 * tp, 2 * tp + fp + fn), average, "f1_score")
