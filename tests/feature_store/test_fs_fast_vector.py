"""The scorer's vector computation (`BatchState.vector`: bisection over sorted event times, `math.fsum`
over list slices) gives exactly `contracts.features.compute_vector`, the reference: on a simulated
dataset (the exactness test's kind of data) and on hand-made edge cases — window edges, equal
timestamps, empty windows, later events already in the state (a retry), fraud reports after t."""

from __future__ import annotations

import random

import pytest

from contracts.features import ALL_FEATURES, DAY_MS, HOUR_MS, MINUTE_MS, MODEL_FEATURES, compute_vector
from fraud_data.simulator import SimulationConfig, simulate
from fraud_scorer.feature_store import BatchState, CardWindow, StateEvent, TerminalWindow

NAME_LISTS = (MODEL_FEATURES, ALL_FEATURES, tuple(reversed(ALL_FEATURES)))


def reference(state: BatchState, event: StateEvent, names) -> list:
    """compute_vector over the histories the old scorer built: every event of the entity before this
    one in event order; a terminal event is a fraud if its mark (by event time and id) was reported
    at or before t."""
    own = (event.timestamp_ms, event.transaction_id)
    card = state.cards[event.card_id]
    terminal = state.terminals[event.terminal_id]
    card_history = [(ts, amount) for ts, amount, tid in card.events if (ts, tid) < own]
    frauds = terminal.frauds
    terminal_history = [
        (ts, 1 if frauds.get(tid, (None, 0))[0] == ts and frauds[tid][1] <= event.timestamp_ms else 0)
        for ts, tid in terminal.events
        if (ts, tid) < own
    ]
    return compute_vector(event.timestamp_ms, event.amount, card_history, terminal_history, names)


def empty_state(events) -> BatchState:
    return BatchState(
        {e.card_id: CardWindow() for e in events}, {e.terminal_id: TerminalWindow() for e in events}
    )


def test_equal_to_the_reference_on_a_simulated_dataset():
    # GIVEN a simulated dataset (45 days: full 30-day and delayed 37-day windows) and fraud reports
    # 1 minute to 9 days after each fraud (some after the next transactions' time, some not)
    data = simulate(SimulationConfig(customers=60, terminals=120, days=45, seed=7)).transactions
    events = [
        StateEvent(tid, ts, card, terminal, amount) for tid, ts, card, terminal, amount, _, _ in data.rows()
    ]
    rng = random.Random(3)
    reports = {
        tid: ts + rng.randint(MINUTE_MS, 9 * DAY_MS)
        for tid, ts, label in zip(data.transaction_id, data.timestamp, data.label, strict=True)
        if label
    }
    terminal_of = dict(zip(data.transaction_id, data.terminal_id, strict=True))
    time_of = dict(zip(data.transaction_id, data.timestamp, strict=True))
    assert len(reports) > 20
    state = empty_state(events)
    for tid, reported in reports.items():
        state.terminals[terminal_of[tid]].apply_label(tid, 1, reported, time_of[tid])

    # WHEN every transaction's vector is computed in event order, as the scorer does
    compared = 0
    risky = 0
    for event in events:
        for names in NAME_LISTS:
            # THEN it equals the reference, bit for bit
            assert state.vector(event, names) == reference(state, event, names), event
        risky += state.vector(event)[MODEL_FEATURES.index("TERMINAL_ID_RISK_30DAY_WINDOW")] > 0
        state.add(event)
        compared += 1
    assert compared == len(data) > 3_000
    assert risky > 0  # the fraud marks were counted somewhere


def test_window_edges_equal_timestamps_and_later_events():
    t = 100 * DAY_MS
    card = "c"
    history = [
        # (id, time, amount)
        ("edge-10min", t - 10 * MINUTE_MS, 1.0),  # exactly at the 10-minute edge: outside (t - w, t]
        ("in-10min", t - 10 * MINUTE_MS + 1, 2.0),
        ("edge-1h", t - HOUR_MS, 4.0),
        ("edge-30d", t - 30 * DAY_MS, 8.0),  # outside every card window
        ("in-30d", t - 30 * DAY_MS + 1, 16.0),
        ("a-same-ms", t, 32.0),  # same millisecond, smaller id: before the transaction
        ("z-same-ms", t, 64.0),  # same millisecond, larger id: after it
        ("later", t + 5, 128.0),  # applied already by a failed attempt (a retry): not seen
    ]
    events = [StateEvent(tid, ts, card, "term", amount) for tid, ts, amount in history]
    current = StateEvent("m-current", t, card, "term", 3.0)
    state = empty_state([current])
    for event in events:
        state.add(event)
    for names in NAME_LISTS:
        assert state.vector(current, names) == reference(state, current, names)
    vector = dict(zip(ALL_FEATURES, state.vector(current, ALL_FEATURES), strict=True))
    assert vector["CUSTOMER_ID_NB_TX_10MIN_WINDOW"] == 3  # in-10min, a-same-ms, current
    assert vector["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] == 6  # edge-30d, z-same-ms and later left out
    assert vector["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] == 0.0  # a-same-ms
    assert vector["TERMINAL_ID_NB_TX_10MIN_NODELAY_WINDOW"] == 3


def test_delayed_terminal_windows_and_fraud_reports():
    t = 100 * DAY_MS
    seven = 7 * DAY_MS
    rows = [
        ("at-delay", t - seven, True),  # exactly t - 7 days: inside every delayed window
        ("after-delay", t - seven + 1, True),  # inside the delay: not counted yet
        ("edge-1d", t - seven - DAY_MS, True),  # the 1-day window's lower edge: outside it
        ("in-30d", t - seven - 30 * DAY_MS + 1, False),
        ("edge-30d", t - seven - 30 * DAY_MS, True),  # outside the 30-day delayed window
        ("reported-late", t - seven - 2 * DAY_MS, True),  # reported after t: not a fraud yet
        ("corrected", t - seven - 3 * DAY_MS, True),  # reported, then corrected to legitimate
        ("same-a", t - seven - 4 * DAY_MS, False),
        ("same-b", t - seven - 4 * DAY_MS, True),  # two at the same millisecond
    ]
    events = [StateEvent(tid, ts, f"card-{i}", "term", 1.0) for i, (tid, ts, _) in enumerate(rows)]
    current = StateEvent("now", t, "card-x", "term", 5.0)
    state = empty_state([*events, current])
    for event in events:
        state.add(event)
    terminal = state.terminals["term"]
    for tid, ts, fraud in rows:
        if fraud:
            terminal.apply_label(tid, 1, t + 1 if tid == "reported-late" else ts + DAY_MS, ts)
    terminal.apply_label("corrected", 0, t - DAY_MS, t - seven - 3 * DAY_MS)  # latest wins: the mark is gone
    terminal.apply_label("ghost", 1, t - seven, t - seven)  # a mark whose transaction is not in the state
    for names in NAME_LISTS:
        assert state.vector(current, names) == reference(state, current, names)
    vector = dict(zip(ALL_FEATURES, state.vector(current, ALL_FEATURES), strict=True))
    assert vector["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1  # at-delay
    assert vector["TERMINAL_ID_RISK_1DAY_WINDOW"] == 1.0
    assert vector["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 7
    assert vector["TERMINAL_ID_RISK_30DAY_WINDOW"] == 3 / 7  # at-delay, edge-1d, same-b
    assert vector["TERMINAL_ID_NB_FRAUD_30DAY_WINDOW"] == 3
    assert vector["TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 11.0  # same-b
    assert vector["TERMINAL_ID_DAYS_SINCE_LAST_FRAUD_30DAY_WINDOW"] == 7.0  # at-delay
    # From same-b's millisecond on: same-a (its tie, before it in event order) too, 6 events.
    assert vector["TERMINAL_ID_RISK_SINCE_FIRST_FRAUD_30DAY_WINDOW"] == 3 / 6


@pytest.mark.parametrize("amounts", [[], [0.0, 0.0], [0.1, 0.2, 0.7]], ids=["empty", "zeros", "decimals"])
def test_empty_windows_zero_means_and_rounding(amounts):
    t = 50 * DAY_MS
    events = [StateEvent(f"p{i}", t - (i + 1) * HOUR_MS, "c", "term", a) for i, a in enumerate(amounts)]
    current = StateEvent("now", t, "c", "fresh-term", 0.0)
    state = empty_state([*events, current])
    for event in events:
        state.add(event)
    for names in NAME_LISTS:
        assert state.vector(current, names) == reference(state, current, names)


def test_adding_an_event_twice_changes_nothing():
    event = StateEvent("x", 10 * DAY_MS, "c", "term", 2.5)
    state = empty_state([event])
    state.add(event)
    state.add(event)
    assert state.cards["c"].events == [(10 * DAY_MS, 2.5, "x")]
    assert state.terminals["term"].events == [(10 * DAY_MS, "x")]
