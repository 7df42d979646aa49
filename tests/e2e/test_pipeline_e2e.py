"""The whole local pipeline under load and faults: the real producer, moto's Kinesis server, the
local event source mapping, the real scoring Lambda, the local models behind the SageMaker-runtime
stand-in, and a real Redis Stack. Every figure is read back from Redis and from the stream."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time

import pytest

from contracts.events import LABEL_EVENT_TYPE, TYPE_FIELD
from contracts.redis_keys import REJECTED_STREAM
from demo.pipeline import DEFAULT_TRIGGER, LocalPipeline, PipelineSettings
from demo.tally import lost
from emulators.kinesis_trigger import TriggerSettings

pytestmark = pytest.mark.e2e


def settings(world, **overrides) -> PipelineSettings:
    return PipelineSettings(world=world, **overrides)


def is_label_event(record: dict) -> bool:
    with contextlib.suppress(ValueError, AttributeError):
        return json.loads(record["Data"]).get(TYPE_FIELD) == LABEL_EVENT_TYPE
    return False


def transaction_ids(records: list[dict]) -> list[str]:
    ids = []
    for record in records:
        if is_label_event(record):
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):  # a poison record is not a transaction
            ids.append(json.loads(record["Data"])["transaction_id"])
    return ids


def assert_each_sent_transaction_stored_exactly_once(pipeline: LocalPipeline) -> None:
    sent = [record for record in pipeline.sent_records() if not is_label_event(record)]
    ids = transaction_ids(sent)
    tally = pipeline.tally()
    audit = pipeline.audit(ids)
    assert len(set(ids)) == len(ids), "the producer sent a transaction twice"
    assert audit.problems(tally) == []
    assert tally.stored == len(ids)
    assert tally.stored + tally.rejected == len(sent)
    assert lost(len(sent), tally) == 0
    assert pipeline.on_failure.records == []


def wait_until_stored(pipeline: LocalPipeline, at_least: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while pipeline.tally().stored < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} stored after {timeout_s} s"
        time.sleep(0.1)


def test_10000_transactions_each_stored_exactly_once(redis_url, local_models, e2e_world):
    # GIVEN the pipeline on a 4-shard stream
    with LocalPipeline(settings(e2e_world, redis_url=redis_url, shards=4), models=local_models) as pipeline:
        # WHEN the producer sends 10,000 transactions (and their fraud reports) as fast as it can
        summary = pipeline.produce(count=10_000)
        assert pipeline.wait_until_caught_up(timeout_s=300)

        # THEN every one is in Redis once, counted once, and nothing was rejected or given up on
        assert summary.sent == 10_000
        assert_each_sent_transaction_stored_exactly_once(pipeline)
        tally = pipeline.tally()
        assert tally.stored == 10_000
        assert tally.rejected == 0
        # and every fraud report (label event) reached its transaction's document
        assert summary.labels_sent > 0
        assert tally.reported_frauds == summary.labels_sent
        assert tally.fraud + tally.suspicious > 0  # the models really scored
        assert tally.latency_p50_ms is not None
        assert tally.latency_p50_ms >= 0


def test_redis_killed_and_restarted_mid_run_loses_and_duplicates_nothing(local_models, e2e_world):
    # GIVEN a pipeline whose own Redis keeps an append-only file, and a producer running
    with_aof = settings(e2e_world, redis_persistence=True, shards=4)
    with LocalPipeline(with_aof, models=local_models) as pipeline:
        producer = threading.Thread(target=pipeline.produce, kwargs={"count": 6000, "rate": 1500})
        producer.start()
        wait_until_stored(pipeline, 1000)

        # WHEN Redis dies (kill -9) mid-run and comes back a moment later
        stored_at_kill = pipeline.tally().stored
        pipeline.redis_server.kill()
        time.sleep(1.5)
        pipeline.redis_server.start()
        producer.join(120)
        assert not producer.is_alive()
        assert pipeline.wait_until_caught_up(timeout_s=300)

        # THEN after catching up every transaction is present exactly once
        assert len(transaction_ids(pipeline.sent_records())) == 6000
        assert_each_sent_transaction_stored_exactly_once(pipeline)
        # and the kill really came mid-run
        assert stored_at_kill < 6000


def test_sagemaker_errors_and_timeouts_are_retried_without_loss(redis_url, local_models, e2e_world):
    # GIVEN an endpoint stand-in where 30% of calls answer 500 and 3% hang past the client's 10 s read
    # timeout (with seed 131 the very first call hangs, so a timeout is certain, and no other does in
    # the first 60 calls, which keeps the test short)
    faulty = settings(
        e2e_world,
        redis_url=redis_url,
        shards=2,
        trigger=TriggerSettings(**{**DEFAULT_TRIGGER.__dict__, "batch_size": 100}),
    )
    with LocalPipeline(faulty, models=local_models) as pipeline:
        pipeline.sagemaker.set_faults(error_rate=0.3, timeout_rate=0.03, hang_s=12, seed=131)

        # WHEN 1,000 transactions go through
        pipeline.produce(count=1000)
        assert pipeline.wait_until_caught_up(timeout_s=300)

        # THEN all are stored once; the stand-in saw retries (more calls than two per invocation)
        assert_each_sent_transaction_stored_exactly_once(pipeline)
        assert pipeline.sagemaker.calls > 2 * pipeline.trigger.invocations


def test_a_poison_record_does_not_stop_its_shard(redis_url, local_models, e2e_world):
    # GIVEN a single-shard stream, so the poison record and everything after it share one shard
    with LocalPipeline(settings(e2e_world, redis_url=redis_url, shards=1), models=local_models) as pipeline:
        pipeline.produce(count=500)
        poison = b"\xff\xfe this is not JSON"
        poison_sequence = pipeline.put_raw(poison, partition_key="card-00001")
        pipeline.produce(count=500)  # the world's next 500 (the producer's checkpoint)

        # WHEN the trigger has worked through the shard
        assert pipeline.wait_until_caught_up(timeout_s=300)

        # THEN the poison record is in the rejected stream, by hash, length and position
        with pipeline.redis_client() as client:
            entries = client.xrange(REJECTED_STREAM)
        assert len(entries) == 1
        fields = entries[0][1]
        assert fields["sequence_number"] == poison_sequence
        assert fields["sha256"] == hashlib.sha256(poison).hexdigest()
        assert int(fields["length"]) == len(poison)
        assert fields["reason"]
        # and every transaction, including all 500 sent after the poison record, is stored once
        after = [r for r in pipeline.sent_records() if int(r["SequenceNumber"]) > int(poison_sequence)]
        assert len(transaction_ids(after)) == 500
        assert pipeline.audit(transaction_ids(after)).missing == []
        assert_each_sent_transaction_stored_exactly_once(pipeline)
