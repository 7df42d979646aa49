"""Events follow docs/architecture.md ("Event schema") exactly, and are stable per source row."""

from __future__ import annotations

import json

import pytest

from fraud_data.schema import FEATURE_COUNT
from producer.events import Row, build_event, encode, transaction_id
from producer.source import Position, SyntheticSource


def synthetic_rows(count: int, seed: int = 42) -> list[Row]:
    rows = []
    for _, row in SyntheticSource(seed=seed).read(Position(), loop=False):
        rows.append(row)
        if len(rows) == count:
            return rows
    return rows


def test_events_follow_the_contract_and_round_trip_as_json(assert_follows_contract):
    # GIVEN synthetic rows
    rows = synthetic_rows(300)
    # WHEN they become events
    events = [build_event(r, source_key="synthetic-42", loop=0, timestamp_ms=1_764_032_400_000) for r in rows]
    # THEN each is valid, carries its row's values and survives encoding unchanged
    for row, event in zip(rows, events, strict=True):
        assert_follows_contract(event)
        assert event["features"] == list(row.features)
        assert event["label"] == row.label
        assert json.loads(encode(event)) == event
    assert events[1]["transaction_id"] == "synthetic-42-000001"  # the contract's example format


def test_same_row_gives_the_same_event_except_the_timestamp():
    row = synthetic_rows(1)[0]
    first = build_event(row, source_key="csv-abc", loop=0, timestamp_ms=1)
    again = build_event(row, source_key="csv-abc", loop=0, timestamp_ms=2)
    assert {**first, "timestamp": 0} == {**again, "timestamp": 0}


def test_ids_are_unique_across_rows_loops_and_sources():
    ids = {
        transaction_id(source, index, loop)
        for source in ("a", "b")
        for index in range(500)
        for loop in (0, 1)
    }
    assert len(ids) == 2 * 500 * 2
    assert transaction_id("csv-abc", 7) == "csv-abc-000007"
    assert transaction_id("csv-abc", 7, loop=2) == "csv-abc-000007-l2"


def test_cards_repeat_but_spread_and_channels_vary():
    rows = synthetic_rows(3000)
    events = [build_event(r, source_key="synthetic-42", loop=0, timestamp_ms=0) for r in rows]
    cards = [e["card_id"] for e in events]
    # A small pool: cards repeat (per-card views mean something) yet load spreads over many keys.
    assert 500 < len(set(cards)) < len(cards)
    assert {e["channel"] for e in events} == {"online", "pos", "atm"}
    assert len({e["merchant"] for e in events}) > 100


def test_a_row_without_30_features_is_refused():
    with pytest.raises(ValueError, match="30 features"):
        Row(0, (1.0, 2.0))


def test_an_event_without_label_leaves_the_field_out(assert_follows_contract):
    row = Row(3, tuple(float(i) for i in range(FEATURE_COUNT)))
    event = build_event(row, source_key="csv-x", loop=0, timestamp_ms=5)
    assert "label" not in event
    assert_follows_contract(event)
