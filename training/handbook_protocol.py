"""The Handbook's evaluation protocol: its train / delay / test split and its three metrics.

Le Borgne, Siblini, Lebichot, Bontempi, *Reproducible Machine Learning for Credit Card Fraud
Detection — Practical Handbook*: chapter 3 (the split of `get_train_test_set`), chapter 4 (card
precision top-k) and chapter 5 (validation periods shifted back in time). Our own code, written to
give the same numbers on the same data.

Pure functions over numpy arrays: each transaction's day (days since the dataset's first midnight,
UTC), card, label and score. `day_index` derives the day from the simulator's epoch-millisecond
timestamps, and every period is an offset from the dataset's start, so a dataset simulated with
another `--start` is split the same way (the Handbook's dataset starts 2018-04-01; training starts
115 days later, on 2018-07-25).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

MS_PER_DAY = 86_400_000
HANDBOOK_DATASET_START = date(2018, 4, 1)
HANDBOOK_TRAIN_START = date(2018, 7, 25)
TRAIN_OFFSET_DAYS = (HANDBOOK_TRAIN_START - HANDBOOK_DATASET_START).days  # 115
DELTA_TRAIN = 7
DELTA_DELAY = 7  # the feedback delay: labels are known one week after the transaction
DELTA_TEST = 7
TOP_K = 100  # investigators can check 100 cards a day


@dataclass(frozen=True)
class Period:
    """Train / delay / test windows, in whole days since the dataset's start."""

    train_start_day: int = TRAIN_OFFSET_DAYS
    delta_train: int = DELTA_TRAIN
    delta_delay: int = DELTA_DELAY
    delta_test: int = DELTA_TEST

    @property
    def delay_start_day(self) -> int:
        return self.train_start_day + self.delta_train

    @property
    def test_start_day(self) -> int:
        return self.delay_start_day + self.delta_delay

    @property
    def end_day(self) -> int:
        """The first day after the test window; the dataset must reach it."""
        return self.test_start_day + self.delta_test

    def shifted(self, days: int) -> Period:
        return Period(self.train_start_day + days, self.delta_train, self.delta_delay, self.delta_test)

    def calendar(self, dataset_start: date) -> dict[str, list[str]]:
        """First and last calendar day (ISO, inclusive) of each window, for the report."""

        def window(first: int, length: int) -> list[str]:
            return [
                (dataset_start + timedelta(days=first)).isoformat(),
                (dataset_start + timedelta(days=first + length - 1)).isoformat(),
            ]

        return {
            "trained": window(self.train_start_day, self.delta_train),
            "skipped": window(self.delay_start_day, self.delta_delay),
            "tested": window(self.test_start_day, self.delta_test),
        }


def validation_periods(test_period: Period, folds: int = 1) -> list[Period]:
    """The Handbook's validation periods for model selection (chapter 5).

    The whole protocol moved back by one delay plus one test week: the first fold's assessment
    week is the test protocol's own training week, so tuning never sees the delay or test weeks.
    Each further fold steps back one more week (prequential validation).
    """
    first = test_period.shifted(-(test_period.delta_delay + test_period.delta_test))
    return [first.shifted(-fold * test_period.delta_test) for fold in range(folds)]


def dataset_start(timestamps_ms: np.ndarray) -> date:
    """The UTC calendar day of the earliest transaction: day 0 of the dataset."""
    first = int(np.min(timestamps_ms))
    return datetime.fromtimestamp(first / 1000, tz=UTC).date()


def day_index(timestamps_ms: np.ndarray, start: date) -> np.ndarray:
    """Whole days since `start`'s midnight UTC (the Handbook's TX_TIME_DAYS)."""
    origin_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 1000
    return (np.asarray(timestamps_ms, dtype=np.int64) - origin_ms) // MS_PER_DAY


@dataclass(frozen=True)
class Split:
    """Row positions (ascending) of the training and test transactions."""

    train: np.ndarray
    test: np.ndarray
    removed_known_cards: list[int] = field(default_factory=list)  # test rows dropped, per test day


def train_test_split(day: np.ndarray, card: np.ndarray, label: np.ndarray, period: Period) -> Split:
    """The Handbook's `get_train_test_set`.

    Training: every transaction of the `delta_train` days from `train_start_day`. Test: each of the
    `delta_test` test days without the cards already *known* compromised on that day. With a
    feedback delay of `delta_delay` days, test day d (counted from 0) knows the labels of every
    day before `delay_start_day + d`: the frauds of the training week plus those of the first d
    delay days. A known compromised card would be blocked in practice, so the Handbook drops its
    transactions rather than rewarding a model for re-finding it.
    """
    day = np.asarray(day)
    card = np.asarray(card)
    fraud = np.asarray(label) == 1
    train = np.flatnonzero((day >= period.train_start_day) & (day < period.delay_start_day))
    known = set(card[train][fraud[train]].tolist())
    test_parts, removed = [], []
    for d in range(period.delta_test):
        # Frauds of the day just before (test day - delay) have become known; for d = 0 that day
        # is the last training day, already counted.
        revealed = (day == period.delay_start_day + d - 1) & fraud
        known.update(card[revealed].tolist())
        todays = day == period.test_start_day + d
        keep = todays & ~np.isin(card, list(known))
        removed.append(int(np.count_nonzero(todays)) - int(np.count_nonzero(keep)))
        test_parts.append(np.flatnonzero(keep))
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, dtype=np.int64)
    return Split(train=train, test=test, removed_known_cards=removed)


@dataclass(frozen=True)
class CardPrecision:
    mean: float
    per_day: list[float]
    compromised_cards_per_day: list[int]  # after removing cards detected on earlier days


def card_precision_at_k(
    day: np.ndarray,
    card: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    k: int = TOP_K,
    *,
    remove_detected: bool = True,
) -> CardPrecision:
    """The Handbook's Card Precision@k, averaged over the days present.

    Per day: each card's highest score (and whether any of its transactions that day is a fraud),
    the k highest-scoring cards, the share of them that are compromised — divided by k even on a
    day with fewer than k cards, as the Handbook does. A compromised card found in the top k is
    removed from the following days (investigators have blocked it). Ties in score are broken by
    ascending card id so the figure is deterministic (the Handbook's pandas sort leaves them to the
    sorting algorithm).
    """
    day, card = np.asarray(day), np.asarray(card)
    label, score = np.asarray(label), np.asarray(score, dtype=np.float64)
    detected: set = set()
    per_day, compromised = [], []
    for today in np.unique(day):
        rows = day == today
        if remove_detected and detected:
            rows &= ~np.isin(card, list(detected))
        cards, inverse = np.unique(card[rows], return_inverse=True)
        best = np.full(len(cards), -np.inf)
        np.maximum.at(best, inverse, score[rows])
        is_fraud = np.zeros(len(cards), dtype=bool)
        np.logical_or.at(is_fraud, inverse, label[rows] == 1)
        # lexsort: last key is primary -> descending score, then ascending card id (`cards` is sorted).
        top = np.lexsort((np.arange(len(cards)), -best))[:k]
        found = cards[top][is_fraud[top]]
        per_day.append(len(found) / k)
        compromised.append(int(np.count_nonzero(is_fraud)))
        if remove_detected:
            detected.update(found.tolist())
    mean = float(np.mean(per_day)) if per_day else float("nan")
    return CardPrecision(mean=mean, per_day=per_day, compromised_cards_per_day=compromised)


@dataclass(frozen=True)
class Metrics:
    auc_roc: float
    average_precision: float
    card_precision_at_100: float
    card_precision_per_day: list[float]
    frauds: int
    transactions: int

    def headline(self) -> dict[str, float]:
        return {
            "auc_roc": self.auc_roc,
            "average_precision": self.average_precision,
            "card_precision_at_100": self.card_precision_at_100,
        }


def evaluate(day: np.ndarray, card: np.ndarray, label: np.ndarray, score: np.ndarray) -> Metrics:
    """AUC ROC and Average Precision (scikit-learn, per transaction) and CP@100 (per card and day)."""
    label = np.asarray(label).astype(np.int8)
    score = np.asarray(score, dtype=np.float64)
    cp = card_precision_at_k(day, card, label, score, TOP_K)
    return Metrics(
        auc_roc=float(roc_auc_score(label, score)),
        average_precision=float(average_precision_score(label, score)),
        card_precision_at_100=cp.mean,
        card_precision_per_day=cp.per_day,
        frauds=int(label.sum()),
        transactions=len(label),
    )


def ranking_metrics(label: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC ROC, Average Precision) from one sort — scikit-learn's definitions, ties included — fast
    enough to run hundreds of times in the bootstrap."""
    label = np.asarray(label).astype(bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    ranked_score, ranked_label = np.asarray(score, dtype=np.float64)[order], label[order]
    # One point per distinct score: cumulative true / false positives at each threshold.
    last_of_tie = np.r_[np.flatnonzero(np.diff(ranked_score)), len(ranked_score) - 1]
    tp = np.cumsum(ranked_label)[last_of_tie].astype(np.float64)
    fp = (last_of_tie + 1) - tp
    positives, negatives = tp[-1], fp[-1]
    if positives == 0 or negatives == 0:
        return float("nan"), float("nan")
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    auc = float(np.trapezoid(tpr, fpr))
    precision = tp / (tp + fp)
    recall_steps = np.diff(np.r_[0.0, tp / positives])
    ap = float(np.sum(recall_steps * precision))
    return auc, ap


@dataclass(frozen=True)
class _CardClusters:
    """Test rows grouped by card, for drawing whole cards at once."""

    order: np.ndarray  # row positions sorted by card
    starts: np.ndarray  # first position in `order` of each card
    counts: np.ndarray  # rows per card

    @classmethod
    def of(cls, card: np.ndarray) -> _CardClusters:
        _, position = np.unique(card, return_inverse=True)
        counts = np.bincount(position)
        return cls(np.argsort(position, kind="stable"), np.r_[0, np.cumsum(counts)[:-1]], counts)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Rows of as many cards as there are, drawn with replacement, and a fresh card id per draw
        (a card drawn twice counts as two cards for CP@100)."""
        drawn = rng.integers(0, len(self.counts), len(self.counts))
        lengths = self.counts[drawn]
        first_out = np.cumsum(lengths) - lengths
        rows = self.order[np.repeat(self.starts[drawn] - first_out, lengths) + np.arange(lengths.sum())]
        return rows, np.repeat(np.arange(len(drawn)), lengths)


METRIC_NAMES = ("auc_roc", "average_precision", "card_precision_at_100")


def bootstrap_intervals(
    day: np.ndarray,
    card: np.ndarray,
    label: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    reference: str | None = None,
    resamples: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """Percentile bootstrap intervals of the three metrics, resampling *cards* of the test set.

    Why cards: frauds come in bursts on one card (scenario 3 compromises a card for 14 days) and
    CP@100 counts cards, so transactions are not independent draws — resampling them would give
    intervals that are too narrow. Days are too few (7) for a useful interval, and the removal of
    detected cards links them. Frauds sharing a compromised terminal (scenario 2) are still
    correlated across cards, so these intervals remain, if anything, slightly optimistic.

    Every model is scored on the same resampled cards, so with `reference` set, the returned dict
    also holds the interval of each model's difference to it, under "<name> - <reference>".
    """
    day, card, label = np.asarray(day), np.asarray(card), np.asarray(label).astype(np.int8)
    clusters = _CardClusters.of(card)
    rng = np.random.default_rng(seed)
    draws = {name: np.empty((resamples, len(METRIC_NAMES))) for name in scores}
    for r in range(resamples):
        rows, card_ids = clusters.draw(rng)
        for name, score in scores.items():
            auc, ap = ranking_metrics(label[rows], score[rows])
            cp = card_precision_at_k(day[rows], card_ids, label[rows], score[rows]).mean
            draws[name][r] = (auc, ap, cp)
    tail = (1 - confidence) / 2 * 100

    def interval(values: np.ndarray) -> dict[str, list[float]]:
        bounds = np.nanpercentile(values, [tail, 100 - tail], axis=0)
        return {metric: [float(bounds[0, i]), float(bounds[1, i])] for i, metric in enumerate(METRIC_NAMES)}

    result = {name: interval(values) for name, values in draws.items()}
    if reference is not None:
        for name, values in draws.items():
            if name != reference:
                result[f"{name} - {reference}"] = interval(values - draws[reference])
    return result
