"""Classification metrics, cross-checked against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as sk

import tinygrad_like as tg
from tinygrad_like import metrics

NUM_CLASSES = 5


@pytest.fixture(params=[0, 1, 2])
def labels(request):
    """Random targets over all classes; predictions never use the last class."""
    rng = np.random.default_rng(request.param)
    target = rng.integers(0, NUM_CLASSES, 60)
    pred = np.where(rng.random(60) < 0.5, target, rng.integers(0, NUM_CLASSES - 1, 60))
    pred[pred == NUM_CLASSES - 1] = 0
    return tg.tensor(pred), tg.tensor(target)


def test_accuracy_matches_sklearn(labels):
    pred, target = labels
    result = metrics.accuracy(pred, target)
    assert type(result) is float
    assert result == pytest.approx(sk.accuracy_score(target.numpy(), pred.numpy()))


def test_confusion_matrix_matches_sklearn(labels):
    pred, target = labels
    expected = sk.confusion_matrix(target.numpy(), pred.numpy(), labels=range(NUM_CLASSES))
    result = metrics.confusion_matrix(pred, target, NUM_CLASSES)
    np.testing.assert_array_equal(result, expected)
    assert result[:, -1].sum() == 0  # the class that is never predicted


@pytest.mark.parametrize("ours, theirs", [
    (metrics.precision, sk.precision_score),
    (metrics.recall, sk.recall_score),
    (metrics.f1_score, sk.f1_score),
])
@pytest.mark.parametrize("average", ["macro", None])
def test_scores_match_sklearn(labels, ours, theirs, average):
    pred, target = labels
    expected = theirs(target.numpy(), pred.numpy(), labels=range(NUM_CLASSES), average=average,
                      zero_division=0)
    result = ours(pred, target, average=average, num_classes=NUM_CLASSES)
    if average is None:
        assert isinstance(result, np.ndarray) and result.shape == (NUM_CLASSES,)
    else:
        assert type(result) is float
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_class_absent_from_both_counts_as_zero():
    pred, target = [0, 1, 1], [0, 1, 0]
    assert metrics.recall(pred, target, average=None, num_classes=3).tolist()[2] == 0.0
    expected = sk.f1_score(target, pred, labels=range(3), average="macro", zero_division=0)
    assert metrics.f1_score(pred, target, num_classes=3) == pytest.approx(expected)


def test_num_classes_defaults_to_largest_label_plus_one():
    assert metrics.confusion_matrix([0, 3], [1, 3]).shape == (4, 4)


def test_bad_inputs_raise_clear_errors():
    logits = tg.randn(4, 3)
    with pytest.raises(ValueError, match="argmax"):
        metrics.accuracy(logits, tg.tensor([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="integer class indices"):
        metrics.precision(tg.tensor([0.0, 1.0]), tg.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside 0..2"):
        metrics.confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="average"):
        metrics.recall([0, 1], [0, 1], average="micro")
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy([], [])
