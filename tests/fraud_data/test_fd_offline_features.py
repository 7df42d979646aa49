"""The offline computation: equal to the reference, point-in-time correct, the Handbook's values."""

from __future__ import annotations

import dataclasses
import functools
import random

import numpy as np
import pandas as pd
import pytest

from contracts.features import ALL_FEATURES, BASELINE_FEATURES, DAY_MS, FEATURES, compute_vector
from fraud_data.features import compute_features, event_order
from fraud_data.transactions import Transactions


def _head(tx: Transactions, n: int) -> Transactions:
    return Transactions(*(getattr(tx, f.name)[:n] for f in dataclasses.fields(Transactions)))


def _assert_same(expected, actual, where):
    if isinstance(expected, int):
        assert actual == expected, where  # counts and flags exactly
        assert isinstance(actual, int), where
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), where


def test_offline_equals_the_reference_on_a_simulated_sample(small_sim):
    # The first ~3,000 transactions reach past the 7-day delay; the later rows of the sample add the
    # 30-day windows. Reference histories are all earlier events of the entity, in event order.
    tx = small_sim.transactions
    rows = list(range(0, 3_000)) + list(range(len(tx) // 2, len(tx) // 2 + 600))
    offline = compute_features(_head(tx, rows[-1] + 1), ALL_FEATURES)
    card_history: dict[str, list] = {}
    terminal_history: dict[str, list] = {}
    wanted = set(rows)
    for i in range(rows[-1] + 1):
        card, term, ts, amount = tx.card_id[i], tx.terminal_id[i], tx.timestamp[i], tx.amount[i]
        if i in wanted:
            vector = compute_vector(
                ts, amount, card_history.get(card, []), terminal_history.get(term, []), ALL_FEATURES
            )
            for name, value in zip(ALL_FEATURES, vector, strict=True):
                _assert_same(value, offline[name][i], (name, tx.transaction_id[i]))
        card_history.setdefault(card, []).append((ts, amount))
        terminal_history.setdefault(term, []).append((ts, tx.label[i]))
    later = rows[-1]
    assert offline["TERMINAL_ID_NB_TX_30DAY_WINDOW"][later] > 0  # the sample did reach the long windows


def _table(rows) -> Transactions:
    """rows: (transaction_id, timestamp, card_id, terminal_id, amount, label)."""
    tx = Transactions()
    for tid, ts, card, term, amount, label in rows:
        tx.transaction_id.append(tid)
        tx.timestamp.append(ts)
        tx.card_id.append(card)
        tx.terminal_id.append(term)
        tx.amount.append(amount)
        tx.label.append(label)
        tx.scenario.append(label)
    return tx


def test_ties_follow_transaction_id_order_whatever_the_row_order():
    t = 100 * DAY_MS
    rows = [("c", t, "k", "p", 4.0, 0), ("a", t, "k", "p", 1.0, 0), ("b", t, "k", "p", 2.0, 1)]
    f = compute_features(_table(rows), ALL_FEATURES)
    # Row order c, a, b; event order a, b, c.
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == [3, 1, 2]
    assert f["CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW"] == [7.0, 1.0, 3.0]
    assert f["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == [0.0, 30 * 86_400, 0.0]
    assert f["TERMINAL_ID_NB_TX_10MIN_NODELAY_WINDOW"] == [3, 1, 2]
    assert f["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == [0, 0, 0]
    assert event_order(_table(rows)) == [1, 2, 0]
    with pytest.raises(ValueError, match="duplicate"):
        compute_features(_table([*rows, rows[0]]))


def test_window_edges_and_delay_offline():
    t = 100 * DAY_MS
    rows = [
        ("0", t - 8 * DAY_MS, "k", "p", 1.0, 1),  # terminal: out of the 1-day delayed window
        ("1", t - 8 * DAY_MS + 1, "k", "p", 2.0, 1),
        ("2", t - 7 * DAY_MS, "k", "p", 4.0, 0),  # the newest the delayed windows see
        ("3", t - 7 * DAY_MS + 1, "k", "p", 8.0, 1),  # too recent for them
        ("4", t - DAY_MS, "k", "p", 16.0, 0),  # card: out of the 1-day window
        ("5", t, "k", "p", 32.0, 0),
    ]
    f = compute_features(_table(rows), ALL_FEATURES)
    last = {name: column[-1] for name, column in f.items()}
    assert last["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1
    assert last["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 32.0
    assert last["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3  # t - 7 days exactly is out
    assert last["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == pytest.approx(56 / 3)
    assert last["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 2
    assert last["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.5
    assert last["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 3
    assert last["TERMINAL_ID_RISK_7DAY_WINDOW"] == pytest.approx(2 / 3)
    assert f["TERMINAL_ID_NB_TX_30DAY_WINDOW"][:3] == [0, 0, 0]  # empty windows give 0
    assert f["TERMINAL_ID_RISK_30DAY_WINDOW"][:3] == [0, 0, 0]


def _perturbed_after(tx: Transactions, cutoff: int, rng: random.Random) -> Transactions:
    """Everything after `cutoff` changed: amounts, labels, terminals; new transactions appended,
    including some at exactly `cutoff` that follow in event order (larger ids)."""
    out = Transactions()
    cards, terms = sorted(set(tx.card_id)), sorted(set(tx.terminal_id))
    for tid, ts, card, term, amount, label, scenario in tx.rows():
        if ts > cutoff:
            amount, label, term = round(rng.uniform(0, 500), 2), 1 - label, rng.choice(terms)
        for column, value in zip(
            dataclasses.fields(Transactions), (tid, ts, card, term, amount, label, scenario), strict=True
        ):
            getattr(out, column.name).append(value)
    for k in range(300):
        ts = cutoff if k < 20 else cutoff + rng.randrange(1, 40 * DAY_MS)
        values = (f"zz-{k:04d}", ts, rng.choice(cards), rng.choice(terms), 999.0, 1, 1)
        for column, value in zip(dataclasses.fields(Transactions), values, strict=True):
            getattr(out, column.name).append(value)
    return out


def test_point_in_time_correct(small_sim):
    tx = small_sim.transactions
    cutoff = tx.timestamp[len(tx) * 2 // 3]
    before = compute_features(tx, ALL_FEATURES)
    after = compute_features(_perturbed_after(tx, cutoff, random.Random(1)), ALL_FEATURES)
    checked = 0
    for i, ts in enumerate(tx.timestamp):
        if ts <= cutoff:
            for name in ALL_FEATURES:
                assert after[name][i] == before[name][i], (name, tx.transaction_id[i])
            checked += 1
    assert checked > len(tx) // 2


def test_labels_inside_the_delay_do_not_move_terminal_features(small_sim):
    """Frauds happening within 7 days before t cannot have been reported at t: flipping every label
    in (t - 7 days, t] moves no feature of any transaction up to t, only later ones."""
    tx = small_sim.transactions
    t = tx.timestamp[len(tx) * 3 // 4]
    flipped = [
        1 - lab if t - 7 * DAY_MS < ts <= t else lab for ts, lab in zip(tx.timestamp, tx.label, strict=True)
    ]
    names = [n for n in ALL_FEATURES if FEATURES[n].entity == "terminal"]
    base = compute_features(tx, names)
    moved = compute_features(dataclasses.replace(tx, label=flipped), names)
    up_to_t = [i for i, ts in enumerate(tx.timestamp) if ts <= t]
    assert all(base[n][i] == moved[n][i] for n in names for i in up_to_t)
    assert any(base[n][i] != moved[n][i] for n in names for i in range(len(tx)))  # later ones do move


def test_baseline_matches_the_handbooks_pandas_computation(small_sim):
    """An independent re-statement of the Handbook's pandas code (rolling windows per customer,
    delayed rolling differences per terminal) on the same data."""
    tx = small_sim.transactions
    df = pd.DataFrame(
        {
            "TX_DATETIME": pd.to_datetime(tx.timestamp, unit="ms"),
            "CUSTOMER_ID": tx.card_id,
            "TERMINAL_ID": tx.terminal_id,
            "TX_AMOUNT": tx.amount,
            "TX_FRAUD": tx.label,
        }
    )
    expected = pd.DataFrame(index=df.index)
    expected["TX_DURING_WEEKEND"] = (df.TX_DATETIME.dt.day_of_week >= 5).astype(int)
    expected["TX_DURING_NIGHT"] = (df.TX_DATETIME.dt.hour <= 6).astype(int)

    groups = {entity: df.groupby(entity, sort=False) for entity in ("CUSTOMER_ID", "TERMINAL_ID")}
    # groupby-rolling lists groups in order of appearance, each group's rows in their (event) order.
    positions = {
        entity: np.concatenate([g.indices[key] for key in pd.unique(df[entity])])
        for entity, g in groups.items()
    }

    @functools.cache
    def rolling(entity, column, days, agg):
        values = getattr(groups[entity].rolling(f"{days}D", on="TX_DATETIME")[column], agg)().to_numpy()
        out = np.empty(len(df))
        out[positions[entity]] = values
        return out

    for days in (1, 7, 30):
        count, total = (
            rolling("CUSTOMER_ID", "TX_AMOUNT", days, "count"),
            rolling("CUSTOMER_ID", "TX_AMOUNT", days, "sum"),
        )
        expected[f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW"] = count
        expected[f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW"] = total / count
        n = rolling("TERMINAL_ID", "TX_FRAUD", 7 + days, "count") - rolling(
            "TERMINAL_ID", "TX_FRAUD", 7, "count"
        )
        f = rolling("TERMINAL_ID", "TX_FRAUD", 7 + days, "sum") - rolling("TERMINAL_ID", "TX_FRAUD", 7, "sum")
        expected[f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW"] = n
        expected[f"TERMINAL_ID_RISK_{days}DAY_WINDOW"] = [
            fr / k if k else 0.0 for fr, k in zip(f, n, strict=True)
        ]
    ours = compute_features(tx, BASELINE_FEATURES)
    assert ours["TX_AMOUNT"] == tx.amount
    for name in BASELINE_FEATURES[1:]:
        assert ours[name] == pytest.approx(expected[name].tolist(), rel=1e-9, abs=1e-9), name
