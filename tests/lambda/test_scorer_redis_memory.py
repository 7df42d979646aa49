"""Redis's used-memory share (fraud_scorer/redis_memory.py), the memory alarm's metric: read from a real
Redis Stack with a small `maxmemory`, published through the handler's own EMF output (stdout), at most
once per interval per container, never when Redis has no limit, and never in a batch's way."""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager

import pytest
import redis

import handler
from contracts import metrics as names
from emulators.kinesis_events import kinesis_event
from fraud_scorer import redis_memory
from fraud_scorer.redis_connection import RedisConnector

MiB = 1024 * 1024


def emf_blobs(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def published_shares(out: str) -> list[dict]:
    """The EMF blobs (as CloudWatch would ingest them) that carry the memory share."""
    return [b for b in emf_blobs(out) if names.REDIS_MEMORY_USED_PERCENT in b]


def a_batch(make_transaction, transaction_id: str) -> dict:
    return kinesis_event([make_transaction(transaction_id, timestamp=int(time.time() * 1000) - 60_000)])


@pytest.fixture
def maxmemory(redis_client):
    """Set the session Redis's maxmemory for one test; the previous value is restored after it."""
    previous = redis_client.config_get("maxmemory")["maxmemory"]
    yield lambda value: redis_client.config_set("maxmemory", str(value))
    redis_client.config_set("maxmemory", previous)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def fill(client: redis.Redis, n_bytes: int, *, value_size: int = 4096) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n_bytes // value_size):
        pipe.set(f"fill:{i}", "x" * value_size)
    pipe.execute()


@contextmanager
def service_log():
    """Every record the service's loggers emit, whatever level an earlier import left them at."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    service_logger = logging.getLogger(names.SERVICE)
    tree = [service_logger] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(f"{names.SERVICE}.")
    ]
    levels = [(lg, lg.level) for lg in tree]
    collect = Collect(logging.DEBUG)
    service_logger.addHandler(collect)
    for lg in tree:
        lg.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        service_logger.removeHandler(collect)
        for lg, level in levels:
            lg.setLevel(level)


def test_the_published_share_is_used_memory_over_maxmemory(
    scorer_env, redis_client, maxmemory, make_transaction, lambda_context, capsys, monkeypatch
):
    # GIVEN a warm container (schema and scripts in Redis), then ~8 MiB of data and a maxmemory that
    # puts Redis at 60 %
    monkeypatch.setattr(redis_memory, "SAMPLE_INTERVAL_S", 0.0)
    assert handler.handler(a_batch(make_transaction, "warm"), lambda_context) == {"batchItemFailures": []}
    fill(redis_client, 8 * MiB)
    limit = int(used_memory(redis_client) / 0.6)
    maxmemory(limit)
    capsys.readouterr()

    # WHEN the handler processes a batch
    response = handler.handler(a_batch(make_transaction, "m1"), lambda_context)
    out = capsys.readouterr().out

    # THEN the batch is fine and its EMF output carries the share: one value, in percent, with the
    # namespace and the `service` dimension the alarm watches (tests/infra/test_monitoring_redis_memory.py)
    assert response == {"batchItemFailures": []}
    (blob,) = published_shares(out)
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == names.NAMESPACE
    assert directive["Dimensions"] == [[names.SERVICE_DIMENSION]]
    assert blob[names.SERVICE_DIMENSION] == names.SERVICE
    assert {"Name": names.REDIS_MEMORY_USED_PERCENT, "Unit": "Percent"} in directive["Metrics"]
    (share,) = blob[names.REDIS_MEMORY_USED_PERCENT]
    # AND it is used_memory / maxmemory as Redis reports them right after (the batch added a few KB)
    assert share == pytest.approx(100 * used_memory(redis_client) / limit, abs=0.25)
    assert 59.9 < share < 60.5


def test_published_at_most_once_per_interval_per_container(
    scorer_env, redis_client, maxmemory, make_transaction, lambda_context, capsys, monkeypatch
):
    # GIVEN a Redis with a limit, and an interval short enough to wait out in a test
    maxmemory(64 * MiB)
    monkeypatch.setattr(redis_memory, "SAMPLE_INTERVAL_S", 1.0)
    capsys.readouterr()

    # WHEN one container handles three batches back to back, then one more after the interval
    shares = []
    for i in range(3):
        response = handler.handler(a_batch(make_transaction, f"r{i}"), lambda_context)
        assert response == {"batchItemFailures": []}
        shares.append(len(published_shares(capsys.readouterr().out)))
    time.sleep(1.05)
    assert handler.handler(a_batch(make_transaction, "r3"), lambda_context) == {"batchItemFailures": []}
    shares.append(len(published_shares(capsys.readouterr().out)))

    # THEN the share went out with the first batch and the first after the interval only
    assert shares == [1, 0, 0, 1]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_gauges_interval_boundaries_and_a_clock_set_back(redis_url, maxmemory, capsys):
    # GIVEN a gauge on a controllable clock, a real Redis with a limit, and the handler's metric set
    from fraud_scorer.entry import metrics

    maxmemory(64 * MiB)
    now = [1_000.0]
    gauge = redis_memory.RedisMemoryGauge(interval_s=60, clock=lambda: now[0])
    connector = RedisConnector(url=redis_url)

    def published_at(t: float) -> bool:
        now[0] = t
        value = gauge.publish_if_due(connector, metrics)
        metrics.flush_metrics()
        blobs = published_shares(capsys.readouterr().out)
        assert (value is not None) == bool(blobs)
        return bool(blobs)

    try:
        # WHEN / THEN: due at once, then not before a full interval has passed since the last sample
        assert [published_at(t) for t in (1_000.0, 1_059.9, 1_060.0, 1_061.0)] == [True, False, True, False]
        # a wall clock set back by more than an interval (NTP step) does not silence it for that long
        assert published_at(900.0) is True
    finally:
        connector.close()


def test_nothing_is_published_when_redis_has_no_limit(
    scorer_env, redis_client, maxmemory, make_transaction, lambda_context, capsys, monkeypatch
):
    # GIVEN maxmemory 0 (unlimited, as some external providers run it)
    maxmemory(0)
    monkeypatch.setattr(redis_memory, "SAMPLE_INTERVAL_S", 0.0)  # every batch would sample
    capsys.readouterr()

    # WHEN two batches are processed
    with service_log() as records:
        responses = [handler.handler(a_batch(make_transaction, f"u{i}"), lambda_context) for i in range(2)]
    out = capsys.readouterr().out

    # THEN the batches are fine, the counts went out, the share did not, and the log says why, once
    assert responses == [{"batchItemFailures": []}] * 2
    assert any(names.RECORDS_SCORED in b for b in emf_blobs(out))
    assert published_shares(out) == []
    unlimited = [r for r in records if "no maxmemory" in r.getMessage()]
    assert len(unlimited) == 1


def test_a_refused_info_is_logged_once_and_never_fails_the_batch(
    scorer_env, redis_stack, redis_client, maxmemory, make_transaction, lambda_context, capsys, monkeypatch
):
    # GIVEN a Redis user allowed everything but INFO (an external Redis whose scorer user was created
    # with an older ACL line), and a limit so that a share would exist
    maxmemory(64 * MiB)
    redis_client.execute_command("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info")
    monkeypatch.setenv("REDIS_URL", f"redis://noinfo:pw@127.0.0.1:{redis_stack.port}/0")
    monkeypatch.setattr(redis_memory, "SAMPLE_INTERVAL_S", 0.0)
    handler.reset_container_state()
    capsys.readouterr()
    try:
        # WHEN three batches are processed, INFO refused each time
        with service_log() as records:
            responses = [
                handler.handler(a_batch(make_transaction, f"n{i}"), lambda_context) for i in range(3)
            ]
        out = capsys.readouterr().out
    finally:
        handler.reset_container_state()
        redis_client.acl_deluser("noinfo")

    # THEN every batch was stored and acknowledged, no share was published, one warning said why
    assert responses == [{"batchItemFailures": []}] * 3
    assert redis_client.exists("txn:n0", "txn:n1", "txn:n2") == 3
    assert published_shares(out) == []
    warnings = [r for r in records if r.levelno == logging.WARNING and "INFO memory failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "+info" in warnings[0].getMessage()


def test_reading_survives_a_reply_without_maxmemory():
    # Redis Enterprise/Cloud return their own INFO fields: no `maxmemory` = no limit known = no share.
    class Reply:
        def info(self, section):
            assert section == "memory"
            return {"used_memory": 1234}

    reading = redis_memory.read_memory(Reply())
    assert (reading.used_bytes, reading.max_bytes, reading.used_percent) == (1234, 0, None)
    assert redis_memory.MemoryReading(used_bytes=1, max_bytes=3).used_percent == 33.33
