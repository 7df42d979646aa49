"""The document write (fraud_scorer/store.py): one script per chunk of documents stores them and their
time-series samples atomically, one sample per series per SAMPLE_RESOLUTION_MS bucket; against a real
Redis Stack, through the handler where the scores matter."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

import handler
from contracts import redis_keys as keys
from contracts.features import MODEL_FEATURES
from contracts.verdicts import VERDICTS
from emulators.kinesis_events import KinesisRecord, kinesis_event, next_sequence_number
from emulators.redis_stack import RedisStackServer
from fraud_scorer.events import decode_record
from fraud_scorer.store import DOCUMENTS_PER_SCRIPT, STORED, ScoredTransaction, TransactionStore

R = keys.SAMPLE_RESOLUTION_MS
# An hour ago, on a whole minute (so on a bucket boundary), inside the accepted event-time window.
T0 = (int(time.time()) // 60 - 60) * 60_000


def record(data: dict) -> KinesisRecord:
    return KinesisRecord(
        data=json.dumps(data).encode(),
        partition_key="pk",
        sequence_number=next_sequence_number(),
        arrival_s=T0 / 1000,
    )


def ts_range(client, key: str) -> list[tuple[int, float]]:
    if not client.exists(key):
        return []
    return [(int(t), float(v)) for t, v in client.execute_command("TS.RANGE", key, "-", "+")]


def series_total(client, key: str) -> int:
    return int(sum(v for _, v in ts_range(client, key)))


def test_samples_are_one_per_bucket_and_merge_exactly_across_batches(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN two batches whose transactions share the bucket T0 (and one in the next bucket)
    first = [
        make_transaction("a-fraud", fraud=0.9, timestamp=T0 + 10),
        make_transaction("a-odd", fraud=0.2, anomaly=4.5, timestamp=T0 + 20),
        make_transaction("a-ok", fraud=0.1, timestamp=T0 + 30),
        make_transaction("a-next", fraud=0.3, timestamp=T0 + R + 5),
    ]
    second = [
        make_transaction("b-fraud", fraud=0.95, timestamp=T0 + R - 1),
        make_transaction("b-ok", fraud=0.05, anomaly=2.0, timestamp=T0),
    ]

    # WHEN both are scored
    for events in (first, second):
        assert handler.handler(kinesis_event([record(e) for e in events]), lambda_context) == {
            "batchItemFailures": []
        }

    # THEN each series holds one sample per bucket, at the bucket's start: the highest score and the
    # number of transactions, the second batch's merged into the first's by the series' own policy
    assert ts_range(redis_client, keys.TS_FRAUD) == [(T0, 0.95), (T0 + R, 0.3)]
    assert ts_range(redis_client, keys.TS_ANOMALY) == [(T0, 4.5), (T0 + R, 1.0)]
    assert ts_range(redis_client, keys.verdict_series("fraud")) == [(T0, 2.0)]
    assert ts_range(redis_client, keys.verdict_series("suspicious")) == [(T0, 1.0)]
    assert ts_range(redis_client, keys.verdict_series("legit")) == [(T0, 2.0), (T0 + R, 1.0)]
    assert ts_range(redis_client, keys.LEGACY_ALL) == [(T0, 0.95), (T0 + R, 0.3)]
    assert ts_range(redis_client, keys.LEGACY_FRAUD) == [(T0, 0.95)]
    assert ts_range(redis_client, keys.LEGACY_NOT_FRAUD) == [(T0, 0.2), (T0 + R, 0.3)]
    scored = ts_range(redis_client, keys.TS_SCORED)
    assert sum(v for _, v in scored) == 6
    assert all(t % R == 0 for t, _ in scored)

    # AND replaying the first batch adds nothing anywhere
    before = {key: ts_range(redis_client, key) for key in redis_client.keys("ts:*")}
    assert handler.handler(kinesis_event([record(e) for e in first]), lambda_context) == {
        "batchItemFailures": []
    }
    assert {key: ts_range(redis_client, key) for key in redis_client.keys("ts:*")} == before


def test_a_large_batch_is_written_by_one_script_per_chunk_and_counted_once(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN a batch of 2.5 chunks of transactions, 1 ms apart, every tenth a fraud
    count = 2 * DOCUMENTS_PER_SCRIPT + DOCUMENTS_PER_SCRIPT // 2
    events = [
        make_transaction(f"c-{i}", fraud=0.9 if i % 10 == 0 else 0.1, timestamp=T0 + i) for i in range(count)
    ]
    redis_client.config_resetstat()

    # WHEN it is scored
    assert handler.handler(kinesis_event([record(e) for e in events]), lambda_context) == {
        "batchItemFailures": []
    }

    # THEN three script calls stored every document, and the counters count each transaction once
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    assert len(redis_client.keys("txn:*")) == count
    assert series_total(redis_client, keys.TS_SCORED) == count
    frauds = len(range(0, count, 10))
    assert series_total(redis_client, keys.verdict_series("fraud")) == frauds
    assert series_total(redis_client, keys.verdict_series("legit")) == count - frauds
    # far fewer samples than transactions: one per bucket
    assert len(ts_range(redis_client, keys.TS_FRAUD)) == len({(T0 + i) // R for i in range(count)})

    # AND a retry of the same batch changes no counter
    assert handler.handler(kinesis_event([record(e) for e in events]), lambda_context) == {
        "batchItemFailures": []
    }
    assert series_total(redis_client, keys.TS_SCORED) == count


def scored_transactions(count: int, at_ms: int) -> list[ScoredTransaction]:
    """`count` behavioural transactions 7 ms apart, scored without a model (every fifth a fraud)."""
    records = [
        record(
            {
                "transaction_id": f"k-{i}",
                "timestamp": at_ms + 7 * i,
                "card_id": f"card-{i % 50}",
                "terminal_id": f"term-{i % 80}",
                "amount": 10.0 + i,
            }
        )
        for i in range(count)
    ]
    out = []
    for i, kinesis_record in enumerate(KinesisStreamEvent(kinesis_event(records)).records):
        fraud = i % 5 == 0
        out.append(
            ScoredTransaction(
                transaction=decode_record(kinesis_record),
                fraud_probability=0.9 if fraud else 0.1,
                anomaly_score=1.0,
                verdict="fraud" if fraud else "legit",
                scored_at_ms=at_ms + 60_000,
                vector=tuple(range(len(MODEL_FEATURES))),
            )
        )
    return out


@pytest.mark.timeout(120)
def test_a_redis_crash_mid_batch_keeps_every_stored_documents_samples(tmp_path):
    # GIVEN a Redis that logs every write before replying (the deployment's `appendfsync always`)
    # and a batch of many chunks being written
    count = 40 * DOCUMENTS_PER_SCRIPT
    items = scored_transactions(count, T0)
    store = TransactionStore(retention_ms=7 * 24 * 3600 * 1000, txn_retention_ms=24 * 3600 * 1000)
    with RedisStackServer(persistence=True, appendfsync="always", data_dir=tmp_path) as server:
        client = server.client(decode_responses=True)
        store.bootstrap(client)
        writer_client = server.client(retry=None)
        failed: list[Exception] = []

        def write() -> None:
            try:
                store.write_documents(writer_client, items, [], processing_ms=1.0, rejected_at_ms=T0)
            except redis.RedisError as exc:
                failed.append(exc)

        # WHEN Redis is killed (SIGKILL) while the chunks are being written, then started again
        writer = threading.Thread(target=write)
        writer.start()
        while len(client.keys("txn:*")) < 3 * DOCUMENTS_PER_SCRIPT and writer.is_alive():
            time.sleep(0.001)
        server.kill()
        writer.join()
        server.start()
        restored = server.client(decode_responses=True)

        # THEN the crash came mid-batch, and every document that survived has its samples: the
        # counters add up to the documents, verdict by verdict
        stored = [key.removeprefix("txn:") for key in restored.keys("txn:*")]
        assert failed
        assert 0 < len(stored) < count
        by_verdict = {v: 0 for v in VERDICTS}
        for item in items:
            if item.transaction.transaction_id in stored:
                by_verdict[item.verdict] += 1
        assert series_total(restored, keys.TS_SCORED) == len(stored)
        for verdict, expected in by_verdict.items():
            assert series_total(restored, keys.verdict_series(verdict)) == expected

        # AND the retry (Kinesis redelivers the batch) completes it, counting each transaction once
        store.bootstrap(restored)  # the restarted server lost the scripts; a warm container reloads
        outcome = store.write_documents(restored, items, [], processing_ms=1.0, rejected_at_ms=T0)
        assert outcome.transactions.count(STORED) == count - len(stored)
        assert len(restored.keys("txn:*")) == count
        assert series_total(restored, keys.TS_SCORED) == count
        assert series_total(restored, keys.verdict_series("fraud")) == count // 5


def test_a_document_redis_refuses_fails_alone_and_adds_no_sample(redis_client):
    # GIVEN a key in the way of one transaction's document (not JSON: JSON.SET fails on it)
    items = scored_transactions(3, T0)  # a fraud, then two legit
    blocked = items[0].transaction.transaction_id
    redis_client.set(keys.txn_key(blocked), "not a document")
    store = TransactionStore(retention_ms=7 * 24 * 3600 * 1000, txn_retention_ms=24 * 3600 * 1000)

    # WHEN the three are written (one script call)
    outcome = store.write_documents(redis_client, items, [], processing_ms=1.0, rejected_at_ms=T0)

    # THEN that one is an error (its record is retried), the others are stored with their samples only
    assert outcome.transactions[1] == outcome.transactions[2] == STORED
    assert isinstance(outcome.transactions[0], redis.RedisError)
    assert "wrong" in str(outcome.transactions[0]).lower()
    assert series_total(redis_client, keys.TS_SCORED) == 2
    assert series_total(redis_client, keys.verdict_series("legit")) == 2
    assert series_total(redis_client, keys.verdict_series("fraud")) == 0
    assert ts_range(redis_client, keys.LEGACY_FRAUD) == []
    assert redis_client.get(keys.txn_key(blocked)) == "not a document"
