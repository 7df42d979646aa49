"""The reference per-transaction implementation on hand-computed cases: window edges, the 7-day
delay, empty windows, ties, night and weekend hours."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.features import ALL_FEATURES, DAY_MS, HOUR_MS, compute_dict, is_night, is_weekend

# Wednesday 2018-07-11 12:00 UTC.
T = int(dt.datetime(2018, 7, 11, 12, tzinfo=dt.UTC).timestamp() * 1000)


def features(card=(), terminal=(), amount=10.0, t=T):
    return compute_dict(t, amount, list(card), list(terminal), ALL_FEATURES)


def test_first_transaction_of_a_card_and_terminal():
    f = features(amount=42.5)
    assert f["TX_AMOUNT"] == 42.5
    for days in (1, 7, 30):
        assert f[f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW"] == 1  # the current transaction itself
        assert f[f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW"] == 42.5
        assert f[f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW"] == 0  # empty delayed windows give 0
        assert f[f"TERMINAL_ID_RISK_{days}DAY_WINDOW"] == 0
    assert f["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 30 * 86_400  # "no previous" = the window length
    # No known fraud: none counted, "since" = delay + window (nothing older is kept), no share.
    assert f["TERMINAL_ID_NB_FRAUD_30DAY_WINDOW"] == 0
    assert f["TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 37.0
    assert f["TERMINAL_ID_DAYS_SINCE_LAST_FRAUD_30DAY_WINDOW"] == 37.0
    assert f["TERMINAL_ID_RISK_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 0
    assert f["CUSTOMER_ID_AMOUNT_TO_AVG_30DAY_WINDOW"] == 1.0
    assert f["TERMINAL_ID_NB_TX_1HOUR_NODELAY_WINDOW"] == 1


def test_card_window_edges_are_open_at_t_minus_n_days():
    card = [(T - DAY_MS, 100.0), (T - DAY_MS + 1, 20.0), (T - 7 * DAY_MS, 1000.0), (T - 30 * DAY_MS + 1, 4.0)]
    f = features(card, amount=10.0)
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2  # t - 1 day exactly is out, 1 ms later is in
    assert f["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == pytest.approx(15.0, rel=1e-12)
    assert f["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3  # t - 7 days exactly is out
    assert f["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == pytest.approx(130 / 3, rel=1e-12)
    assert f["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 5
    assert f["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] == pytest.approx(1134 / 5, rel=1e-12)
    assert f["CUSTOMER_ID_AMOUNT_TO_AVG_30DAY_WINDOW"] == pytest.approx(10 / (1134 / 5), rel=1e-12)
    assert f["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == pytest.approx((DAY_MS - 1) / 1000)
    old = features([(T - 30 * DAY_MS, 5.0)])  # exactly 30 days before: outside the state
    assert old["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 1
    assert old["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 30 * 86_400


def test_short_card_windows():
    card = [(T - 600_000, 1.0), (T - 599_999, 2.0), (T - HOUR_MS, 4.0), (T - HOUR_MS + 1, 8.0)]
    f = features(card, amount=16.0)
    assert f["CUSTOMER_ID_NB_TX_10MIN_WINDOW"] == 2
    assert f["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"] == 18.0
    assert f["CUSTOMER_ID_NB_TX_1HOUR_WINDOW"] == 4
    assert f["CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW"] == 27.0
    assert f["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 599.999


def test_terminal_windows_are_delayed_by_7_days():
    terminal = [
        (T - 7 * DAY_MS, 1),  # exactly t - 7 days: the newest event the delayed windows see
        (T - 7 * DAY_MS + 1, None),  # 1 ms too recent: its label is not needed (nor known)
        (T - 8 * DAY_MS, 0),  # exactly t - 8 days: out of the 1-day window, in the 7-day one
        (T - 8 * DAY_MS + 1, 0),
        (T - 14 * DAY_MS + 1, 1),
        (T - 14 * DAY_MS, 1),  # out of the 7-day window (t - 14 days is its open edge)
        (T - 37 * DAY_MS, 1),  # out of the 30-day window
        (T - HOUR_MS + 1, None),
    ]
    f = features(terminal=terminal)
    assert f["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 2
    assert f["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.5
    assert f["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 4
    assert f["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.5
    assert f["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 5
    assert f["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.6
    # No-delay counts see every earlier event plus the current one.
    assert f["TERMINAL_ID_NB_TX_1HOUR_NODELAY_WINDOW"] == 2
    assert f["TERMINAL_ID_NB_TX_1DAY_NODELAY_WINDOW"] == 2


def test_a_terminals_fraud_history_over_the_delayed_30_days():
    terminal = [
        (T - 37 * DAY_MS, 1),  # the window's open edge: out
        (T - 30 * DAY_MS, 0),  # in, before the first fraud
        (T - 20 * DAY_MS, 0),  # at the first fraud's millisecond: "since" includes it (tie rule)
        (T - 20 * DAY_MS, 1),  # the first known fraud
        (T - 12 * DAY_MS, 0),
        (T - 7 * DAY_MS, 1),  # exactly t - 7 days: the last one the window sees
        (T - DAY_MS, 1),  # inside the delay: not known yet
    ]
    f = features(terminal=terminal)
    assert f["TERMINAL_ID_NB_FRAUD_30DAY_WINDOW"] == 2
    assert f["TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 20.0
    assert f["TERMINAL_ID_DAYS_SINCE_LAST_FRAUD_30DAY_WINDOW"] == 7.0
    assert f["TERMINAL_ID_RISK_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 2 / 4
    assert f["TERMINAL_ID_RISK_30DAY_WINDOW"] == 2 / 5
    # The order of the history does not matter, ties included.
    assert features(terminal=terminal[::-1]) == f


def test_recent_frauds_do_not_reach_the_terminal_risk():
    recent = [(T - 7 * DAY_MS + 1, 1), (T - DAY_MS, 1), (T, 1)]
    f = features(terminal=recent)
    assert f["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 0
    assert f["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0
    assert f["TERMINAL_ID_NB_FRAUD_30DAY_WINDOW"] == 0
    assert f["TERMINAL_ID_DAYS_SINCE_LAST_FRAUD_30DAY_WINDOW"] == 37.0


def test_ties_at_the_same_timestamp():
    # History = the events that precede in event order; at the same time those are the smaller ids.
    f = features(card=[(T, 3.0), (T, 5.0)], amount=7.0)
    assert f["CUSTOMER_ID_NB_TX_10MIN_WINDOW"] == 3
    assert f["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"] == 15.0
    assert f["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 0.0
    with pytest.raises(ValueError, match="after the transaction"):
        features(card=[(T + 1, 3.0)])


def test_an_unknown_label_inside_the_delayed_window_is_an_error():
    with pytest.raises(ValueError, match="label"):
        features(terminal=[(T - 10 * DAY_MS, None)])


def test_means_are_exact_sums():
    amounts = [0.1] * 10 + [1e16, -1e16]  # naive left-to-right summation loses the 0.1s
    f = features(card=[(T - i, a) for i, a in enumerate(amounts, start=1)], amount=0.0)
    assert f["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 1.0 / 13


@pytest.mark.parametrize(
    ("when", "night", "weekend"),
    [
        (dt.datetime(2018, 7, 11, 0, 0), 1, 0),  # Wednesday midnight
        (dt.datetime(2018, 7, 11, 6, 59, 59, 999000), 1, 0),  # hour 6 is still night
        (dt.datetime(2018, 7, 11, 7, 0), 0, 0),
        (dt.datetime(2018, 7, 11, 23, 59), 0, 0),
        (dt.datetime(2018, 7, 13, 23, 59, 59, 999000), 0, 0),  # Friday
        (dt.datetime(2018, 7, 14, 0, 0), 1, 1),  # Saturday
        (dt.datetime(2018, 7, 15, 23, 59, 59), 0, 1),  # Sunday
        (dt.datetime(2018, 7, 16, 0, 0), 1, 0),  # Monday
    ],
)
def test_night_and_weekend_in_utc(when, night, weekend):
    ms = int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)
    assert (is_night(ms), is_weekend(ms)) == (night, weekend)
    f = features(t=ms)
    assert (f["TX_DURING_NIGHT"], f["TX_DURING_WEEKEND"]) == (night, weekend)
