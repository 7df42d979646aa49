"""Offline, point-in-time-correct feature computation over a whole transaction table.

Driven by `contracts.features.SPEC`: for each entity (card, terminal) and each distinct
(window, delay) among the requested features, every transaction gets the index range of its
entity's events inside `(t - delay - window, t - delay]` (binary search over that entity's
time-ordered timestamps), and every feature on that window is then evaluated by the spec's own
`window_rule` on that slice — the same function the per-transaction reference uses, so the two
agree by construction (the tests check it anyway).

Point in time: a transaction's window ends at its own position in event order (delay 0) or at
t - delay, so nothing that happens after it — later transactions, later amounts, later labels —
can reach its features. Standard library only.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence

from contracts.features import (
    FEATURES,
    MODEL_FEATURES,
    Feature,
    needs_stamps,
    transaction_value,
    window_rule,
)
from fraud_data.transactions import Transactions, replaced_on_success

Column = list  # one value per transaction, in the table's row order


def event_order(transactions: Transactions) -> list[int]:
    """Row indices in event order (timestamp, then transaction_id); ValueError on duplicate ids."""
    if len(set(transactions.transaction_id)) != len(transactions):
        raise ValueError("duplicate transaction_id: event order is ambiguous")
    if transactions.is_event_ordered():
        return list(range(len(transactions)))
    ts, tid = transactions.timestamp, transactions.transaction_id
    return sorted(range(len(transactions)), key=lambda i: (ts[i], tid[i]))


def _entity_rows(keys: Sequence[str], order: list[int]) -> list[list[int]]:
    """Each entity's row indices, in event order."""
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(keys[i], []).append(i)
    return list(groups.values())


def _window_columns(
    transactions: Transactions, order: list[int], entity: str, features: list[Feature]
) -> dict[str, Column]:
    n = len(transactions)
    columns: dict[str, Column] = {f.name: [0] * n for f in features}
    keys = transactions.card_id if entity == "card" else transactions.terminal_id
    # What the entity's state holds per event (see contracts.features): a card's amounts, a terminal's labels.
    source = transactions.amount if entity == "card" else transactions.label
    by_window: dict[tuple[int, int], list[Feature]] = {}
    for f in features:
        by_window.setdefault((f.window_ms, f.delay_ms), []).append(f)
    rules = {f.name: window_rule(f) for f in features}
    all_ts, all_amounts = transactions.timestamp, transactions.amount

    for rows in _entity_rows(keys, order):
        ts = [all_ts[i] for i in rows]
        amounts = [all_amounts[i] for i in rows]
        values = amounts if source is all_amounts else [source[i] for i in rows]
        for (window, delay), window_features in by_window.items():
            if delay == 0:
                # Up to and including the current transaction (position k): later ties are not seen yet.
                los = [bisect_right(ts, t - window, 0, k + 1) for k, t in enumerate(ts)]
                his = range(1, len(ts) + 1)
                if any(f.aggregation == "seconds_since_previous" for f in window_features):
                    previous = [ts[k - 1] if k > lo else None for k, lo in enumerate(los)]
                else:
                    previous = [None] * len(ts)
            else:
                los = [bisect_right(ts, t - delay - window, 0, k + 1) for k, t in enumerate(ts)]
                his = [
                    bisect_right(ts, t - delay, lo, k + 1)
                    for k, (t, lo) in enumerate(zip(ts, los, strict=True))
                ]
                previous = [None] * len(ts)  # no delayed rule reads it
            for f in window_features:
                if f.aggregation == "count":
                    out = [hi - lo for lo, hi in zip(los, his, strict=True)]  # len(slice), without the slice
                else:
                    rule, stamped = rules[f.name], needs_stamps(f)  # slice the times only for those
                    out = [
                        rule(t, amount, values[lo:hi], prev, ts[lo:hi] if stamped else ())
                        for t, amount, lo, hi, prev in zip(ts, amounts, los, his, previous, strict=True)
                    ]
                column = columns[f.name]
                for i, value in zip(rows, out, strict=True):
                    column[i] = value
    return columns


def compute_features(transactions: Transactions, names: Sequence[str] = MODEL_FEATURES) -> dict[str, Column]:
    """Every feature in `names` for every transaction: {name: column in the table's row order}."""
    order = event_order(transactions)
    features = [FEATURES[name] for name in names]
    columns: dict[str, Column] = {}
    for f in features:
        if f.entity == "transaction":
            columns[f.name] = [
                transaction_value(f, t, a)
                for t, a in zip(transactions.timestamp, transactions.amount, strict=True)
            ]
    for entity in ("card", "terminal"):
        windowed = [f for f in features if f.entity == entity]
        if windowed:
            columns.update(_window_columns(transactions, order, entity, windowed))
    return {name: columns[name] for name in names}


def write_features_csv(
    path: str | os.PathLike, transaction_ids: Sequence[str], columns: dict[str, Column]
) -> None:
    """`transaction_id` then one column per feature; floats as repr (round-trips exactly)."""
    names = list(columns)
    with replaced_on_success(path) as out:
        out.write(",".join(["transaction_id", *names]) + "\n")
        out.writelines(
            ",".join(map(str, row)) + "\n" for row in zip(transaction_ids, *columns.values(), strict=True)
        )
