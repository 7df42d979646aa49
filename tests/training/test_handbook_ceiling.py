"""The oracle ceiling of the Handbook protocol's test week: the invisible-fraud rule on hand-checked
cases, the oracle's metrics on hand-computable sets, and — at a reduced size — a real model trained by
the protocol's own code never scoring above it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from contracts import features as spec
from fraud_data import features as offline
from fraud_data import simulator
from fraud_data.transactions import COLUMNS
from training import handbook_ceiling as hc
from training import handbook_models as hm
from training import handbook_protocol as hp

START_MS = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp()) * 1000
DAY, HOUR = hp.MS_PER_DAY, 3_600_000


def _at(day: float) -> int:
    return START_MS + int(day * DAY)


def test_a_streak_started_3_days_before_is_invisible_and_one_started_9_days_before_is_not():
    # GIVEN two compromised terminals: A's streak began 3 days before the transaction, B's 9 days before
    rows = [
        # (timestamp, terminal, label, scenario, amount)
        (_at(10.5), "A", 1, 2, 30.0),  # A's first S2 fraud: the streak starts here
        (_at(13.5), "A", 1, 2, 40.0),  # 3 days later: no label of A known yet -> invisible
        (_at(4.5), "B", 1, 2, 30.0),  # B's first S2 fraud
        (_at(13.5), "B", 1, 2, 40.0),  # 9 days later: B's first label known since day 11.5 -> visible
        (_at(11.5), "B", 1, 2, 25.0),  # exactly 7 days: the label arrives at that instant -> visible
        (_at(11.5) - 1, "B", 1, 2, 25.0),  # 1 ms earlier -> invisible
        (_at(13.6), "A", 1, 2, 300.0),  # within A's first week, but above S1's 220: its amount shows
        (_at(13.7), "A", 0, 0, 40.0),  # genuine
        (_at(13.8), "A", 1, 3, 200.0),  # a scenario-3 fraud at A: the card's behaviour shows it
        (_at(13.9), "C", 1, 1, 250.0),  # scenario 1
        (_at(4.5 + 9 + 28), "B", 1, 2, 30.0),  # 28 days after B's previous S2 fraud: a new streak
        (_at(4.5 + 9 + 28 + 2), "B", 1, 2, 30.0),  # 2 days into that new streak -> invisible
    ]
    stamps, terminal, label, scenario, amount = (np.array(c) for c in zip(*rows, strict=True))

    # WHEN the streak ages and the invisible mask are computed
    age = hc.s2_streak_age_days(stamps, terminal, label, scenario)
    invisible = hc.invisible_frauds(stamps, terminal, label, scenario, amount)

    # THEN the ages are the hand-computed ones and only the young streaks' frauds are invisible
    expected_age = [0, 3, 0, 9, 7, 7 - 1 / DAY, 3.1, np.nan, np.nan, np.nan, 0, 2]
    np.testing.assert_allclose(age, expected_age, rtol=0, atol=1e-9)
    assert np.flatnonzero(invisible).tolist() == [0, 1, 2, 5, 10, 11]


def test_a_terminal_compromised_again_before_its_streak_ends_keeps_one_streak():
    # GIVEN S2 frauds at one terminal every 5 days for 40 days (overlapping 28-day compromises)
    stamps = np.array([_at(d) for d in range(0, 41, 5)])
    ones = np.ones(len(stamps), dtype=int)

    # THEN it is one streak, whose labels are known from day 7 on: past 28 days it is still visible
    age = hc.s2_streak_age_days(stamps, np.array(["D"] * len(stamps)), ones, 2 * ones)
    np.testing.assert_allclose(age, np.arange(0, 41, 5))
    invisible = hc.invisible_frauds(stamps, np.array(["D"] * len(stamps)), ones, 2 * ones, 10.0 * ones)
    assert np.flatnonzero(invisible).tolist() == [0, 1]


def test_perfect_ranking_without_invisible_frauds_gives_ap_and_auc_1():
    # GIVEN two days, 3 compromised cards out of 6 on day 0 and 1 of 4 on day 1, nothing invisible
    day = np.array([0] * 8 + [1] * 5)
    card = np.array([1, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 10])
    label = np.array([1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0])

    # WHEN the oracle is measured
    c = hc.ceiling_on(day, card, label, np.zeros(len(label), dtype=bool), draws=5)

    # THEN every fraud is ranked first: AP and AUC are 1, every draw alike; CP@100 is each day's
    # compromised cards over 100 (3 then 1), averaged
    assert c.average_precision == 1.0
    assert c.auc_roc == 1.0
    assert c.card_precision_at_100 == pytest.approx((3 / 100 + 1 / 100) / 2)
    assert c.std == {"auc_roc": 0.0, "average_precision": 0.0, "card_precision_at_100": 0.0}
    assert (c.test_frauds, c.invisible_frauds, c.invisible_share) == (4, 0, 0.0)


def test_invisible_frauds_are_ranked_at_random_among_the_genuine_ones():
    # GIVEN one visible and one invisible fraud among two genuine transactions
    day, card = np.zeros(4, dtype=int), np.arange(4)
    label = np.array([1, 1, 0, 0])
    invisible = np.array([False, True, False, False])

    # WHEN the oracle is averaged over many draws
    c = hc.ceiling_on(day, card, label, invisible, draws=200)

    # THEN AP is its expectation: the visible fraud first (precision 1), the invisible one at rank
    # 2, 3 or 4 with equal chance (precision 2/2, 2/3, 2/4); AUC: the invisible fraud beats each
    # genuine transaction half the time
    assert c.average_precision == pytest.approx((1 + (1 + 2 / 3 + 2 / 4) / 3) / 2, abs=0.025)
    assert c.auc_roc == pytest.approx(0.75, abs=0.05)
    assert c.std["average_precision"] > 0
    assert c.invisible_share == 0.5
    with pytest.raises(ValueError, match="only frauds"):
        hc.ceiling_on(day, card, label, np.array([False, False, True, False]))


# Terminals per customer and S2's 2 terminals a day scaled so that ~1/5 of the test frauds are invisible,
# as at full size; 59 days: the protocol moved to 38 days after the start (30-day windows filled),
# test days 52-58.
def test_the_cp_references_rank_every_fraud_first_or_the_busiest_cards_first():
    # GIVEN one day: 250 cards with one genuine transaction, a card with one visible fraud, and a
    # busy card (4 transactions) whose one fraud is invisible
    card = np.r_[np.arange(250), 1000, [2000] * 4]
    label = np.r_[np.zeros(250, int), 1, [0, 1, 0, 0]]
    invisible = np.r_[np.zeros(251, bool), [False, True, False, False]]
    day = np.zeros(len(card), int)

    # WHEN the oracle and its references are measured
    c = hc.ceiling_on(day, card, label, invisible, draws=30)

    # THEN knowing every fraud finds both cards; ranking the busiest card first finds both too, every
    # draw; at random the busy card misses the top 100 (99 places left among 251 cards) most often
    assert c.card_precision_at_100_all_frauds_visible == 0.02
    assert c.card_precision_at_100_by_card_activity == pytest.approx(0.02)
    assert 0.01 <= c.card_precision_at_100 < 0.02


REDUCED = simulator.SimulationConfig(customers=600, terminals=3000, days=59, seed=5)
PERIOD = hp.Period(train_start_day=38)


@pytest.fixture(scope="module")
def reduced():
    table = simulator.simulate(REDUCED).transactions
    tx = pd.DataFrame({c: getattr(table, c) for c in COLUMNS})
    columns = offline.compute_features(table, spec.BASELINE_FEATURES)
    feats = pd.DataFrame({"transaction_id": table.transaction_id, **columns})
    return tx, hm.ProtocolData.from_frames(tx, feats)


def test_no_model_trained_by_the_protocol_scores_above_the_ceiling(reduced):
    # GIVEN a reduced simulated dataset and the protocol's reproduction row trained on it
    tx, data = reduced
    model = hm.Model(hm.REPRODUCTION, "xgboost", spec.BASELINE_FEATURES, hm.HANDBOOK_XGBOOST_HIST)
    result = hm.run(model, data, PERIOD)

    # WHEN the ceiling is computed on the same test week
    c = hc.protocol_ceiling(tx, PERIOD, draws=20)

    # THEN it is measured on the same test set, some frauds are invisible, the model learnt something
    # real, and the ceiling is above it on every metric
    assert c.test_frauds == result.metrics.frauds
    assert 0.1 < c.invisible_share < 0.4
    base_rate = result.metrics.frauds / result.metrics.transactions
    assert result.metrics.average_precision > 3 * base_rate
    assert c.average_precision > result.metrics.average_precision
    assert c.auc_roc > result.metrics.auc_roc
    assert c.card_precision_at_100 >= result.metrics.card_precision_at_100
    assert c.average_precision < 1.0


def test_the_ceiling_is_reproducible_and_refuses_a_dataset_that_misses_the_test_week(reduced):
    tx, _ = reduced
    assert hc.protocol_ceiling(tx, PERIOD, draws=3) == hc.protocol_ceiling(tx, PERIOD, draws=3)
    with pytest.raises(ValueError, match="protocol needs day"):
        hc.protocol_ceiling(tx, PERIOD.shifted(1), draws=1)
