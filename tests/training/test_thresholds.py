"""training.thresholds on inputs whose answers are known by hand."""

from __future__ import annotations

import pytest

from training.thresholds import anomaly_threshold, best_f1_threshold, confusion_at


def test_best_f1_separable_scores_cut_halfway_between_the_classes():
    labels = [0, 0, 0, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.7, 0.9]
    choice = best_f1_threshold(labels, scores)
    assert choice.threshold == pytest.approx(0.5)
    assert choice.confusion.f1 == 1.0


def test_best_f1_trades_precision_for_recall_where_f1_says_so():
    # Ranked: 0.9(1) 0.8(0) 0.7(1) 0.6(1) 0.2(0) 0.1(1)
    # cut after 0.9: P=1, R=1/4 -> F1 .4; after 0.6: P=3/4, R=3/4 -> F1 .75; after 0.1: P=4/6, R=1 -> .8
    labels = [1, 0, 1, 1, 0, 1]
    scores = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1]
    choice = best_f1_threshold(labels, scores)
    assert choice.threshold == pytest.approx(0.1)
    assert choice.confusion.f1 == pytest.approx(0.8)
    assert (choice.confusion.true_positives, choice.confusion.false_positives) == (4, 2)


def test_best_f1_never_splits_tied_scores():
    labels = [1, 0, 1, 0]
    scores = [0.5, 0.5, 0.2, 0.2]
    choice = best_f1_threshold(labels, scores)
    # Cut-offs only between distinct scores: {0.5s} gives F1 .5, {all} gives F1 .667.
    assert choice.threshold == 0.2
    assert choice.confusion.f1 == pytest.approx(2 / 3)
    predicted = [s >= choice.threshold for s in scores]
    assert predicted[0] == predicted[1]
    assert predicted[2] == predicted[3]


def test_confusion_uses_the_lambdas_greater_or_equal_rule():
    c = confusion_at([1, 0, 1, 0], [0.5, 0.5, 0.4, 0.1], 0.5)
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == (1, 1, 1, 1)
    assert c.precision == 0.5
    assert c.recall == 0.5


def test_anomaly_threshold_is_mean_plus_three_population_std():
    assert anomaly_threshold([1.0, 3.0] * 50) == pytest.approx(2.0 + 3 * 1.0)
    assert anomaly_threshold([2.0, 2.0, 2.0]) == 2.0
    assert anomaly_threshold([0.0, 4.0], k=1.0) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: best_f1_threshold([0, 0], [0.1, 0.2]), "no positive labels"),
        (lambda: best_f1_threshold([0, 1], [0.1]), "2 labels but 1 scores"),
        (lambda: best_f1_threshold([0, 1], [0.1, float("nan")]), "finite"),
        (lambda: anomaly_threshold([]), "no scores"),
        (lambda: anomaly_threshold([1.0, float("inf")]), "finite"),
    ],
)
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
