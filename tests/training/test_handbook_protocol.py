"""The Handbook's protocol: its split dates, the removal of known compromised cards, its metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training import handbook_protocol as hp


def _ms(year, month, day, hour=0, minute=0, second=0, ms=0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000 + ms


def test_default_period_is_the_handbooks_dates():
    period = hp.Period()
    assert (period.train_start_day, period.delay_start_day, period.test_start_day, period.end_day) == (
        115,
        122,
        129,
        136,
    )
    assert period.calendar(date(2018, 4, 1)) == {
        "trained": ["2018-07-25", "2018-07-31"],
        "skipped": ["2018-08-01", "2018-08-07"],
        "tested": ["2018-08-08", "2018-08-14"],
    }


def test_period_follows_another_dataset_start():
    assert hp.Period().calendar(date(2021, 1, 1)) == {
        "trained": ["2021-04-26", "2021-05-02"],
        "skipped": ["2021-05-03", "2021-05-09"],
        "tested": ["2021-05-10", "2021-05-16"],
    }


def test_validation_periods_end_before_the_test_protocol_delay():
    test = hp.Period()
    folds = hp.validation_periods(test, folds=3)
    assert [f.train_start_day for f in folds] == [101, 94, 87]
    # The first fold is assessed on the test protocol's training week; none touches its delay or test.
    assert folds[0].test_start_day == test.train_start_day
    assert all(f.end_day <= test.delay_start_day for f in folds)


def test_days_are_utc_calendar_days_from_the_first_transaction():
    stamps = np.array(
        [_ms(2018, 4, 1, 10), _ms(2018, 4, 1, 23, 59, 59, 999), _ms(2018, 4, 2), _ms(2018, 4, 9, 6)]
    )
    start = hp.dataset_start(stamps)
    assert start == date(2018, 4, 1)
    assert hp.day_index(stamps, start).tolist() == [0, 0, 1, 8]


# A hand-made dataset: 2 training days, 2 delay days, 3 test days.
SMALL = hp.Period(train_start_day=0, delta_train=2, delta_delay=2, delta_test=3)
#                    card  day  fraud
HAND_MADE = np.array(
    [
        [1, 1, 1],  # card 1: fraud in training -> known from the first test day on
        [1, 4, 0],
        [1, 6, 0],
        [2, 2, 1],  # card 2: fraud on the first delay day -> known from test day 1 (day 5)
        [2, 4, 0],
        [2, 5, 0],
        [2, 6, 1],
        [3, 3, 1],  # card 3: fraud on the second delay day -> known from test day 2 (day 6)
        [3, 4, 1],
        [3, 5, 0],
        [3, 6, 0],
        [4, 4, 1],  # card 4: fraud in the test week -> never known within it
        [4, 5, 1],
        [4, 6, 1],
        [5, 0, 0],  # card 5: genuine -> always kept
        [5, 4, 0],
        [6, 7, 0],  # after the test week
    ]
)


def test_split_keeps_the_training_days_and_drops_cards_known_compromised_on_each_test_day():
    card, day, label = HAND_MADE[:, 0], HAND_MADE[:, 1], HAND_MADE[:, 2]
    split = hp.train_test_split(day, card, label, SMALL)
    assert split.train.tolist() == [0, 14]  # days 0-1
    kept = {(int(card[i]), int(day[i])) for i in split.test}
    assert kept == {(2, 4), (3, 4), (4, 4), (5, 4), (3, 5), (4, 5), (4, 6)}
    assert split.removed_known_cards == [1, 1, 3]
    assert np.all(np.diff(split.test) > 0)


def _reference_split(day, card, label, period):
    """The Handbook's `get_train_test_set`, restated as plainly as possible, as a test oracle."""
    train = [i for i in range(len(day)) if period.train_start_day <= day[i] < period.delay_start_day]
    known = {card[i] for i in train if label[i] == 1}
    test = []
    for d in range(period.delta_test):
        known |= {card[i] for i in range(len(day)) if day[i] == period.delay_start_day + d - 1 and label[i]}
        test += [i for i in range(len(day)) if day[i] == period.test_start_day + d and card[i] not in known]
    return train, sorted(test)


def test_split_matches_the_reference_on_random_data():
    rng = np.random.default_rng(3)
    n = 3000
    day, card = rng.integers(0, 25, n), rng.integers(0, 80, n)
    label = (rng.random(n) < 0.05).astype(int)
    period = hp.Period(train_start_day=4, delta_train=7, delta_delay=7, delta_test=7)
    split = hp.train_test_split(day, card, label, period)
    train, test = _reference_split(day.tolist(), card.tolist(), label.tolist(), period)
    assert split.train.tolist() == train
    assert split.test.tolist() == test


# Card precision with k = 2 on three days (hand-computed).
#              day card score fraud
CP_CASE = np.array(
    [
        [0, 1, 0.90, 0],
        [0, 1, 0.10, 1],  # card 1: max score 0.9 and a fraud that day -> compromised
        [0, 2, 0.80, 1],
        [0, 3, 0.95, 0],  # day 0 top 2: cards 3, 1 -> 1 of 2; card 1 detected
        [1, 1, 0.99, 1],  # card 1 already detected: removed
        [1, 2, 0.70, 1],
        [1, 4, 0.60, 0],
        [1, 5, 0.50, 1],  # day 1 top 2: cards 2, 4 -> 1 of 2; card 2 detected
        [2, 5, 0.30, 1],  # day 2: one card only, still divided by k -> 1 of 2
    ]
)


def _cp(case, k, **kwargs):
    return hp.card_precision_at_k(
        case[:, 0], case[:, 1].astype(int), case[:, 3].astype(int), case[:, 2], k, **kwargs
    )


def test_card_precision_hand_computed_with_removal_of_detected_cards():
    cp = _cp(CP_CASE, 2)
    assert cp.per_day == [0.5, 0.5, 0.5]
    assert cp.mean == pytest.approx(0.5)
    assert cp.compromised_cards_per_day == [2, 2, 1]


def test_card_precision_without_removal_counts_the_detected_card_again():
    cp = _cp(CP_CASE, 2, remove_detected=False)
    assert cp.per_day == [0.5, 1.0, 0.5]
    assert cp.mean == pytest.approx(2 / 3)


def test_card_precision_breaks_ties_by_card_id():
    #                  day card score fraud
    case = np.array([[0, 9, 0.5, 0], [0, 7, 0.5, 1], [0, 8, 0.5, 0]])
    assert _cp(case, 1).per_day == [1.0]  # card 7 first
    case[1, 3], case[0, 3] = 0, 1
    assert _cp(case, 1).per_day == [0.0]
    assert _cp(case, 3).per_day == [pytest.approx(1 / 3)]


def test_auc_and_average_precision_agree_with_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    label = (rng.random(5000) < 0.02).astype(int)
    score = np.round(rng.random(5000) * 0.7 + label * 0.3, 2)  # many ties
    day, card = rng.integers(0, 7, 5000), rng.integers(0, 900, 5000)
    metrics = hp.evaluate(day, card, label, score)
    assert metrics.auc_roc == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert metrics.average_precision == pytest.approx(average_precision_score(label, score), abs=1e-12)
    auc, ap = hp.ranking_metrics(label, score)
    assert auc == pytest.approx(metrics.auc_roc, abs=1e-12)
    assert ap == pytest.approx(metrics.average_precision, abs=1e-12)


def test_a_constant_score_is_random():
    rng = np.random.default_rng(1)
    label = (rng.random(4000) < 0.01).astype(int)
    auc, ap = hp.ranking_metrics(label, np.full(4000, 0.5))
    assert auc == 0.5
    assert ap == pytest.approx(label.mean())


def test_bootstrap_intervals_bracket_the_estimate_and_pair_the_models():
    rng = np.random.default_rng(2)
    n = 6000
    day, card = rng.integers(0, 7, n), rng.integers(0, 1500, n)
    label = (rng.random(n) < 0.03).astype(int)
    good = label * 0.6 + rng.random(n)
    scores = {"good": good, "same": good.copy(), "noise": rng.random(n)}
    out = hp.bootstrap_intervals(day, card, label, scores, reference="good", resamples=60, seed=5)
    point = hp.evaluate(day, card, label, good)
    for metric, value in point.headline().items():
        low, high = out["good"][metric]
        assert low <= value <= high
    assert out["same - good"]["average_precision"] == [0.0, 0.0]
    assert out["noise - good"]["average_precision"][1] < 0
    again = hp.bootstrap_intervals(day, card, label, scores, reference="good", resamples=60, seed=5)
    assert again == out
