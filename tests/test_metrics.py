"""Metrics: hand-computed cases, a brute-force twin, properties over random labels, and the input checks."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convnp.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    format_confusion,
    format_per_class,
    precision_recall,
)


def brute_force_confusion(y_true, y_pred, K):
    """The definition, one sample at a time."""
    out = np.zeros((K, K), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        out[t, p] += 1
    return out


@st.composite
def labelled(draw):
    """(y_true, y_pred, K) with K in 1..6 and 0..60 samples."""
    K = draw(st.integers(1, 6))
    n = draw(st.integers(0, 60))
    labels = st.lists(st.integers(0, K - 1), min_size=n, max_size=n)
    return np.array(draw(labels), dtype=np.int64), np.array(draw(labels), dtype=np.int64), K


# ---- hand-computed ---------------------------------------------------------------------------------------------------
def test_confusion_matrix_small_case_by_hand():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    expected = np.array([
        [1, 1, 0],  # true 0: one right, one taken for 1
        [0, 2, 1],  # true 1: two right, one taken for 2
        [1, 0, 0],  # true 2: taken for 0
    ])
    confusion = confusion_matrix(y_true, y_pred)
    assert confusion.dtype == np.int64 and confusion.shape == (3, 3)
    np.testing.assert_array_equal(confusion, expected)

    precision, recall = precision_recall(confusion)
    np.testing.assert_allclose(precision, [1 / 2, 2 / 3, 0 / 1])  # column sums 2, 3, 1
    np.testing.assert_allclose(recall, [1 / 2, 2 / 3, 0 / 1])  # row sums 2, 3, 1


def test_precision_and_recall_differ_when_errors_are_asymmetric():
    # Class 1 is over-predicted: every 0 is called 1.
    confusion = confusion_matrix([0, 0, 1, 1], [1, 1, 1, 1])
    np.testing.assert_array_equal(confusion, [[0, 2], [0, 2]])
    precision, recall = precision_recall(confusion)
    np.testing.assert_allclose(precision, [0.0, 0.5])  # class 0 never predicted -> 0 by definition
    np.testing.assert_allclose(recall, [0.0, 1.0])


def test_n_classes_adds_rows_and_columns_for_absent_classes():
    confusion = confusion_matrix([1, 1], [1, 2], n_classes=5)
    assert confusion.shape == (5, 5)
    assert confusion[1, 1] == 1 and confusion[1, 2] == 1 and confusion.sum() == 2
    precision, recall = precision_recall(confusion)
    # Class 0, 3, 4: never present and never predicted; class 2: predicted but absent.
    np.testing.assert_array_equal(precision, [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(recall, [0, 0.5, 0, 0, 0])


def test_zero_division_gives_zero_not_nan():
    precision, recall = precision_recall(np.zeros((3, 3), dtype=np.int64))
    np.testing.assert_array_equal(precision, 0.0)
    np.testing.assert_array_equal(recall, 0.0)
    report = classification_report([], [], n_classes=3)
    assert report["n_samples"] == 0 and report["accuracy"] == 0.0
    assert all(row["f1"] == 0.0 and row["support"] == 0 for row in report["per_class"])


def test_empty_labels_without_n_classes_give_an_empty_matrix():
    assert confusion_matrix([], []).shape == (0, 0)


def test_classification_report_by_hand():
    report = classification_report([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 0])
    assert report["n_samples"] == 6
    assert report["accuracy"] == pytest.approx(3 / 6)
    row = report["per_class"][1]
    assert row == {"class": 1, "support": 3, "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                   "f1": pytest.approx(2 / 3)}
    assert [r["support"] for r in report["per_class"]] == [2, 3, 1]


def test_accuracy_from_logits():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0]])
    assert accuracy(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[3, 2\]"):
        accuracy(logits, np.array([1, 0]))


# ---- text tables -----------------------------------------------------------------------------------------------------
def test_format_confusion_is_an_aligned_table():
    confusion = np.array([[980, 0], [3, 1132]])
    text = format_confusion(confusion)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["true", "\\", "predicted", "0", "1"]
    assert lines[1].split() == ["0", "980", "0"] and lines[2].split() == ["1", "3", "1132"]
    # Numbers are right-aligned: every line ends at the same column.
    assert len({len(line) for line in lines}) == 1
    named = format_confusion(confusion, labels=["cat", "dog"])
    assert named.splitlines()[0].split()[-2:] == ["cat", "dog"]
    assert named.splitlines()[2].startswith("dog")
    with pytest.raises(ValueError, match="expected 2 labels, one per class, got 3"):
        format_confusion(confusion, labels=["a", "b", "c"])


def test_format_per_class_lists_every_class():
    text = format_per_class(classification_report([0, 1, 1], [0, 1, 0]))
    lines = text.splitlines()
    assert lines[0].split() == ["class", "support", "precision", "recall", "f1"]
    assert lines[1].split() == ["0", "1", "0.5000", "1.0000", "0.6667"]
    assert lines[2].split() == ["1", "2", "1.0000", "0.5000", "0.6667"]


# ---- agreement and properties ----------------------------------------------------------------------------------------
def test_agrees_with_brute_force_on_random_labels():
    rng = np.random.default_rng(0)
    for K in (1, 2, 10, 37):
        y_true = rng.integers(0, K, size=500)
        y_pred = rng.integers(0, K, size=500)
        np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, K), brute_force_confusion(y_true, y_pred, K))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no clock
@given(labelled())
def test_confusion_properties(data):
    y_true, y_pred, K = data
    confusion = confusion_matrix(y_true, y_pred, n_classes=K)
    np.testing.assert_array_equal(confusion, brute_force_confusion(y_true, y_pred, K))
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(y_true, minlength=K))  # rows: class counts
    np.testing.assert_array_equal(confusion.sum(axis=0), np.bincount(y_pred, minlength=K))  # columns: predictions
    assert confusion.sum() == len(y_true)
    if len(y_true):
        assert np.trace(confusion) / len(y_true) == pytest.approx(np.mean(y_true == y_pred))

    precision, recall = precision_recall(confusion)
    assert np.all((0 <= precision) & (precision <= 1)) and np.all((0 <= recall) & (recall <= 1))
    never_predicted = confusion.sum(axis=0) == 0
    never_present = confusion.sum(axis=1) == 0
    np.testing.assert_array_equal(precision[never_predicted], 0.0)
    np.testing.assert_array_equal(recall[never_present], 0.0)
    for k in np.flatnonzero(~never_predicted):
        assert precision[k] == pytest.approx(np.mean(y_true[y_pred == k] == k))
    for k in np.flatnonzero(~never_present):
        assert recall[k] == pytest.approx(np.mean(y_pred[y_true == k] == k))

    report = classification_report(y_true, y_pred, n_classes=K)
    assert report["accuracy"] == pytest.approx(np.mean(y_true == y_pred) if len(y_true) else 0.0)
    assert sum(row["support"] for row in report["per_class"]) == len(y_true)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no clock
@given(labelled())
def test_inferred_n_classes_is_one_past_the_largest_label(data):
    y_true, y_pred, _ = data
    confusion = confusion_matrix(y_true, y_pred)
    K = max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1
    assert confusion.shape == (K, K)


# ---- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y_true, y_pred, kwargs, error, message",
    [
        ([0, 1, 1], [0, 1], {}, ValueError, r"inconsistent numbers of samples: \[3, 2\]"),
        (np.zeros((2, 2), int), [0, 1], {}, ValueError, r"y_true must have shape \(N,\).*got shape \(2, 2\)"),
        ([0, 1], [0.0, 1.0], {}, ValueError, "y_pred must hold integer class indices, got dtype float64"),
        ([True, False], [0, 1], {}, ValueError, "y_true must hold integer class indices, got dtype bool"),
        (["a", "b"], [0, 1], {}, ValueError, "y_true must hold integer class indices"),
        ([0, -1], [0, 1], {}, ValueError, r"y_true must be >= 0 \(class indices\), found -1 at index 1"),
        ([0, 1], [0, 3], {"n_classes": 3}, ValueError, r"y_pred holds class 3 .* labels must lie in \[0, 2\]"),
        ([0, 1], [0, 1], {"n_classes": 0}, ValueError, "n_classes must be >= 1, got 0"),
        ([0, 1], [0, 1], {"n_classes": 2.0}, TypeError, "n_classes must be an int, got float"),
    ],
)
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, kwargs, error, message):
    with pytest.raises(error, match=message):
        confusion_matrix(y_true, y_pred, **kwargs)


@pytest.mark.parametrize(
    "confusion, message",
    [
        (np.zeros((2, 3)), r"square confusion matrix of shape \(K, K\), got shape \(2, 3\)"),
        (np.zeros(4), r"got shape \(4,\)"),
        (np.array([[1, -1], [0, 2]]), "counts must be >= 0"),
        (np.array([[1.0, np.nan], [0.0, 2.0]]), "NaN or inf"),
        (np.array([["a"]]), "expected counts"),
    ],
)
def test_precision_recall_rejects_bad_matrices(confusion, message):
    with pytest.raises(ValueError, match=message):
        precision_recall(confusion)
