"""Decision thresholds from data (docs/architecture.md, *Thresholds*). Standard library only.

- FRAUD_THRESHOLD: the classifier cut-off with the best F1 on the validation split.
- ANOMALY_THRESHOLD: mean + 3·std of the anomaly model's scores on the training split.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from training.spec import ANOMALY_STD_MULTIPLIER


@dataclass(frozen=True)
class Confusion:
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    confusion: Confusion


def confusion_at(labels: Sequence[int], scores: Sequence[float], threshold: float) -> Confusion:
    """Counts for the rule `score >= threshold` means positive (the scoring Lambda's rule)."""
    _check(labels, scores)
    tp = fp = tn = fn = 0
    for label, score in zip(labels, scores, strict=True):
        if score >= threshold:
            tp, fp = (tp + 1, fp) if label else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if label else (fn, tn + 1)
    return Confusion(tp, fp, tn, fn)


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> ThresholdChoice:
    """The cut-off maximising F1 of `score >= threshold`; ties go to the higher (stricter) cut-off.

    Candidate cut-offs sit halfway between consecutive distinct scores, so a threshold does not
    coincide with one validation example's exact score.
    """
    _check(labels, scores)
    positives = sum(1 for label in labels if label)
    if positives == 0:
        raise ValueError("no positive labels: F1 is undefined")
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0], reverse=True)
    best_f1, best_threshold = -1.0, ranked[0][0]
    tp = fp = 0
    for i, (score, label) in enumerate(ranked):
        tp, fp = (tp + 1, fp) if label else (tp, fp + 1)
        next_score = ranked[i + 1][0] if i + 1 < len(ranked) else None
        if next_score is not None and next_score == score:
            continue  # the cut-off cannot separate equal scores
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        if f1 > best_f1:
            best_f1 = f1
            best_threshold = score if next_score is None else (score + next_score) / 2
    return ThresholdChoice(best_threshold, confusion_at(labels, scores, best_threshold))


def anomaly_threshold(scores: Sequence[float], *, k: float = ANOMALY_STD_MULTIPLIER) -> float:
    """mean + k·std (population) of the training split's anomaly scores."""
    if not scores:
        raise ValueError("no scores")
    if not all(math.isfinite(s) for s in scores):
        raise ValueError("scores must be finite")
    return statistics.fmean(scores) + k * statistics.pstdev(scores)


def _check(labels: Sequence[int], scores: Sequence[float]) -> None:
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    if not labels:
        raise ValueError("no examples")
    if not all(math.isfinite(s) for s in scores):
        raise ValueError("scores must be finite")
