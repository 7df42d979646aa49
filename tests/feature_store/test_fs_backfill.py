"""Warm start (issue 12): `fraud_scorer.feature_store.backfill` applies history with the streaming
state logic — the state equals what streaming the same history leaves, and live transactions after
a backfill get exactly the offline features."""

from __future__ import annotations

import json
import random
import time

import pytest
import redis
from fs_replay import build_stream, compare, handler_deliver, replay, shifted

import handler
from contracts import redis_keys as keys
from contracts.features import DAY_MS
from fraud_data.simulator import SimulationConfig, simulate
from fraud_data.transactions import Transactions
from fraud_scorer import feature_store as fs
from fraud_scorer.feature_store import backfill, backfill_labels, dump_entity_state, entity_state

SMALL = SimulationConfig(customers=40, terminals=150, days=40, seed=3)


@pytest.fixture
def history(scorer_env, monkeypatch):
    monkeypatch.setenv("TS_RETENTION_MS", str((SMALL.days + 2) * DAY_MS))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    handler.reset_container_state()
    now_ms = int(time.time() * 1000)
    transactions = shifted(simulate(SMALL).transactions, now_ms - 60_000)
    stream = build_stream(transactions, shards=2, now_ms=now_ms, rng=random.Random(1), duplicate_rate=0.0)
    return transactions, stream


def reported_labels(
    stream, transactions: Transactions, *, until_ms: int | None = None, after_ms: int | None = None
):
    """(terminal, transaction time, id, label, reported at) of the label events in `stream`."""
    index = {tid: i for i, tid in enumerate(transactions.transaction_id)}
    out = []
    for records in stream.values():
        for item in records:
            if item.kind != "label":
                continue
            if (until_ms is not None and item.time_ms > until_ms) or (
                after_ms is not None and item.time_ms <= after_ms
            ):
                continue
            i = index[item.transaction_id]
            event = json.loads(item.record.data)
            out.append(
                (
                    transactions.terminal_id[i],
                    transactions.timestamp[i],
                    item.transaction_id,
                    event["label"],
                    item.time_ms,
                )
            )
    return out


def test_state_after_backfill_equals_state_after_streaming(history, redis_client, lambda_context):
    transactions, stream = history
    as_of = max(transactions.timestamp)

    # GIVEN the history streamed through the scorer (transactions and label events)
    replay(stream, handler_deliver(lambda_context), rng=random.Random(2), replay_rate=0.0)
    streamed = dump_entity_state(redis_client, as_of_ms=as_of, with_report_times=True)
    assert streamed

    # WHEN the same history is backfilled into an empty Redis (twice: idempotent)
    redis_client.flushall()
    for _ in range(2):
        stats = backfill(redis_client, transactions, labels=False)
        backfill_labels(redis_client, reported_labels(stream, transactions))

    # THEN the state is the same, member for member (report times included)
    assert dump_entity_state(redis_client, as_of_ms=as_of, with_report_times=True) == streamed
    assert stats.transactions == len(transactions)
    assert stats.cards == len(set(transactions.card_id))
    assert all(
        redis_client.pttl(k) > 0 for k in redis_client.keys("card:*") + redis_client.keys("terminal:*")
    )


def test_live_transactions_after_a_backfill_get_the_offline_features(history, redis_client, lambda_context):
    transactions, stream = history
    cut = min(transactions.timestamp) + 30 * DAY_MS
    past = [i for i, ts in enumerate(transactions.timestamp) if ts < cut]

    # GIVEN the first 30 days backfilled, with the labels reported by then
    head = Transactions(
        *(
            [column[i] for i in past]
            for column in (
                transactions.transaction_id,
                transactions.timestamp,
                transactions.card_id,
                transactions.terminal_id,
                transactions.amount,
                transactions.label,
                transactions.scenario,
            )
        )
    )
    backfill(redis_client, head, labels=False)
    backfill_labels(redis_client, reported_labels(stream, transactions, until_ms=cut))

    # WHEN the rest streams in live: later transactions, and the labels reported after the cut (those
    # of backfilled transactions have no document: they are applied by backfill_labels above instead)
    live = {
        shard: [
            item
            for item in records
            if item.time_ms >= cut
            and (item.kind != "label" or item.transaction_id not in set(head.transaction_id))
        ]
        for shard, records in stream.items()
    }
    late = [
        row
        for row in reported_labels(stream, transactions, after_ms=cut)
        if row[2] in set(head.transaction_id)
    ]
    backfill_labels(redis_client, late)  # (a real warm start would load these as they come)
    replay(live, handler_deliver(lambda_context), rng=random.Random(4), replay_rate=0.0)

    # THEN every live transaction's vector equals the offline one over the whole history
    result = compare(redis_client, transactions, since_ms=cut)
    assert result.compared == len(transactions) - len(past) > 0
    assert result.missing == []
    assert result.mismatches == []


def test_entity_state_reads_back_what_was_written(redis_client, redis_url):
    table = Transactions(
        transaction_id=["a", "b", "c"],
        timestamp=[1_000, 2_000, 3_000],
        card_id=["c1", "c1", "c2"],
        terminal_id=["t1", "t2", "t1"],
        amount=[0.1, 2.5, 3.0],
        label=[1, 0, 0],
        scenario=[1, 0, 0],
    )
    backfill(redis_client, table)
    assert entity_state(redis_client, card_id="c1", terminal_id="t1") == {
        "card": [(1_000, 0.1, "a"), (2_000, 2.5, "b")],
        "terminal": [(1_000, "a"), (3_000, "c")],
        "frauds": [(1_000, 1_000, "a")],
    }
    # the streaming encoding, byte for byte: one events record per entity (then the header noting
    # the TTL), a terminal's frauds in one marks record
    raw = redis.Redis.from_url(redis_url)
    card = keys.split_state(raw.get(keys.card_state_key("c1")), True)
    assert raw.get(keys.card_state_key("c1")).startswith(
        keys.encode_card_events([1_000, 2_000], [0.1, 2.5], [b"a", b"b"])
    )
    assert card.records == 1
    assert card.ttl_set_at_ms > 0
    terminal = raw.get(keys.terminal_state_key("t1"))
    assert terminal.startswith(keys.encode_terminal_events([1_000, 3_000], [b"a", b"c"]))
    assert terminal.endswith(keys.encode_marks([1_000], [1_000], [1], [b"a"]))
    assert 0 < raw.pttl(keys.terminal_state_key("t1")) <= fs.TERMINAL_TTL_MS


def test_the_backfill_writes_only_what_a_later_transaction_can_need(redis_client):
    # GIVEN a history whose card and terminal rows span more than their horizons (31 / 38 days)
    latest = 100 * DAY_MS
    table = Transactions(
        transaction_id=["too-old", "card-old", "kept", "last"],
        timestamp=[latest - 40 * DAY_MS, latest - 35 * DAY_MS, latest - 20 * DAY_MS, latest],
        card_id=["c1", "c1", "c1", "c1"],
        terminal_id=["t1", "t1", "t1", "t1"],
        amount=[1.0, 2.0, 3.0, 4.0],
        label=[1, 1, 0, 0],
        scenario=[2, 2, 0, 0],
    )
    backfill(redis_client, table)
    state = entity_state(redis_client, card_id="c1", terminal_id="t1")
    # THEN the card keeps 31 days, the terminal 38 (and only the frauds inside them)
    assert [tid for _, _, tid in state["card"]] == ["kept", "last"]
    assert [tid for _, tid in state["terminal"]] == ["card-old", "kept", "last"]
    assert [tid for _, _, tid in state["frauds"]] == ["card-old"]


def _one_row() -> Transactions:
    return Transactions(
        transaction_id=["a"],
        timestamp=[DAY_MS],
        card_id=["c1"],
        terminal_id=["t1"],
        amount=[1.0],
        label=[1],
        scenario=[1],
    )


def test_the_backfill_pauses_the_cyclic_collector_and_restores_it(redis_client, monkeypatch):
    # GIVEN a write path that notes whether the cyclic collector is on while it runs
    import gc

    seen = []
    real = fs._run_in_round_trips

    def noting(client, commands):
        seen.append(gc.isenabled())
        real(client, commands)

    monkeypatch.setattr(fs, "_run_in_round_trips", noting)
    assert gc.isenabled()
    # WHEN a backfill runs
    backfill(redis_client, _one_row())
    # THEN it wrote with the collector paused (events, then labels), and the collector is on again
    assert seen == [False, False]
    assert gc.isenabled()
    assert entity_state(redis_client, card_id="c1")["card"] == [(DAY_MS, 1.0, "a")]


def test_a_failed_backfill_restores_the_collector_and_a_caller_that_paused_it_keeps_it_paused(
    redis_client, monkeypatch
):
    import gc

    def failing(client, commands):
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(fs, "_run_in_round_trips", failing)
    with pytest.raises(redis.ConnectionError):
        backfill(redis_client, _one_row())
    assert gc.isenabled()
    monkeypatch.undo()
    gc.disable()
    try:
        backfill(redis_client, _one_row())
        assert not gc.isenabled()
    finally:
        gc.enable()
