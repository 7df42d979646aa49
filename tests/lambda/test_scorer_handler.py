"""handler.handler end to end: a real Redis Stack and the local SageMaker runtime (via
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME), fed with real Lambda Kinesis events."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import time

import pytest

import handler
from contracts.redis_keys import SAMPLE_RESOLUTION_MS
from emulators.kinesis_events import KinesisRecord, kinesis_event, next_sequence_number
from emulators.redis_stack import RedisStackServer
from emulators.sagemaker_runtime import rcf_endpoint, xgboost_endpoint
from fraud_scorer import entry


def predictable_fraud_probability(rows):
    """The same toy model as the `sagemaker_runtime` fixture's: V1 clipped to 0..1."""
    return [min(1.0, max(0.0, row[1])) for row in rows]


# An hour ago, on a whole minute: event times must lie within the accepted window (now - 7 days,
# now + 5 minutes), so the tests' clock is the real one.
T0 = (int(time.time()) // 60 - 60) * 60_000
SHARD = "shardId-000000000000"


def record(data: dict | bytes, *, arrival_s: float = T0 / 1000) -> KinesisRecord:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return KinesisRecord(
        data=raw, partition_key="pk", sequence_number=next_sequence_number(), arrival_s=arrival_s
    )


def sequence_numbers(event: dict) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def failures(*seqs: str) -> dict:
    return {"batchItemFailures": [{"itemIdentifier": s} for s in seqs]}


def ts_range(redis_client, key: str) -> list[tuple[int, float]]:
    return [(int(t), float(v)) for t, v in redis_client.execute_command("TS.RANGE", key, "-", "+")]


def dump(redis_client) -> dict:
    """Everything the scorer writes, in comparable form (stream ids and all)."""
    out = {}
    for key in sorted(redis_client.keys("*")):
        kind = redis_client.type(key)
        if kind == "ReJSON-RL":
            out[key] = redis_client.json().get(key)
        elif kind == "TSDB-TYPE":
            out[key] = ts_range(redis_client, key)
        elif kind == "stream":
            out[key] = redis_client.xrange(key)
        elif kind == "string":
            out[key] = redis_client.get(key)
        else:
            out[key] = kind
    out["idx:txn num_docs"] = redis_client.ft("idx:txn").info()["num_docs"]
    return out


def test_valid_batch_is_scored_stored_and_searchable(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN three transactions whose predictable scores give each verdict
    events = [
        make_transaction("t-fraud", fraud=0.9, anomaly=1.0, amount=120.5, timestamp=T0, channel="online"),
        make_transaction("t-odd", fraud=0.2, anomaly=4.5, amount=3.0, timestamp=T0 + 1000, merchant="m-1"),
        make_transaction("t-ok", fraud=0.1, anomaly=1.0, amount=9.99, timestamp=T0 + 2000, label=0),
    ]
    event = kinesis_event([record(e) for e in events], shard_id=SHARD)

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN nothing to retry and each document is exactly the contract's
    assert response == failures()
    doc = redis_client.json().get("txn:t-fraud")
    scored_at, processing_ms = doc.pop("scored_at"), doc.pop("processing_ms")
    assert processing_ms >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", doc.pop("content_hash"))
    assert doc == {
        "transaction_id": "t-fraud",
        "timestamp": T0,
        "card_id": "card-00001",
        "amount": 120.5,
        "features": events[0]["features"],
        "channel": "online",
        "fraud_probability": 0.9,
        "anomaly_score": 1.0,
        "verdict": "fraud",
        "latency_ms": scored_at - T0,
        "kinesis": {"shard_id": SHARD, "sequence_number": sequence_numbers(event)[0]},
        "format": "v1",
    }
    assert redis_client.json().get("txn:t-odd", "$.verdict", "$.merchant") == {
        "$.verdict": ["suspicious"],
        "$.merchant": ["m-1"],
    }
    assert redis_client.json().get("txn:t-ok", "$.verdict", "$.label") == {
        "$.verdict": ["legit"],
        "$.label": [0],
    }

    # AND the time series hold one sample per SAMPLE_RESOLUTION_MS bucket (here one transaction each)
    assert ts_range(redis_client, "ts:fraud_probability") == [(T0, 0.9), (T0 + 1000, 0.2), (T0 + 2000, 0.1)]
    assert ts_range(redis_client, "ts:anomaly_score") == [(T0, 1.0), (T0 + 1000, 4.5), (T0 + 2000, 1.0)]
    assert ts_range(redis_client, "ts:verdict:fraud") == [(T0, 1.0)]
    assert ts_range(redis_client, "ts:verdict:suspicious") == [(T0 + 1000, 1.0)]
    assert ts_range(redis_client, "ts:verdict:legit") == [(T0 + 2000, 1.0)]
    assert ts_range(redis_client, "ts:scored") == [(scored_at - scored_at % SAMPLE_RESOLUTION_MS, 3.0)]
    assert ts_range(redis_client, "fraud-ts") == [(T0, 0.9), (T0 + 1000, 0.2), (T0 + 2000, 0.1)]
    assert ts_range(redis_client, "fraudulent_ts") == [(T0, 0.9)]
    assert ts_range(redis_client, "non-fraudulent_ts") == [(T0 + 1000, 0.2), (T0 + 2000, 0.1)]
    latencies = sorted(scored_at - ts for ts in (T0, T0 + 1000, T0 + 2000))
    assert ts_range(redis_client, "ts:latency:p50") == [(scored_at, float(latencies[1]))]
    assert ts_range(redis_client, "ts:latency:p99") == [(scored_at, float(latencies[2]))]

    # AND the search index answers queries over them
    found = redis_client.ft("idx:txn").search("@verdict:{fraud|suspicious} @amount:[0 100]")
    assert [d.id for d in found.docs] == ["txn:t-odd"]


def test_each_endpoint_is_called_once_per_batch(
    scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context
):
    event = kinesis_event([record(make_transaction(f"t{i}", timestamp=T0 + i)) for i in range(50)])
    assert handler.handler(event, lambda_context) == failures()
    assert sagemaker_runtime.calls == 2
    assert redis_client.ft("idx:txn").info()["num_docs"] == 50


def test_legacy_format_is_stored_under_a_sequence_derived_id(scorer_env, redis_client, lambda_context):
    # GIVEN the old demo's record: V1 (fraud) 0.7, V2 (anomaly) 0.5, Amount 88
    numbers = [0.0, 0.7, 0.5] + [0.0] * 26 + [88.0]
    legacy = {"data": ",".join(map(str, numbers)), "metadata": [T0, 1234, "legacy-producer"]}
    event = kinesis_event([record(legacy)])
    seq = sequence_numbers(event)[0]

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN
    assert response == failures()
    doc = redis_client.json().get(f"txn:kinesis-{seq}")
    assert {k: doc[k] for k in ("card_id", "amount", "timestamp", "channel", "verdict", "format")} == {
        "card_id": "legacy-1234",
        "amount": 88.0,
        "timestamp": T0,
        "channel": "legacy-producer",
        "verdict": "fraud",
        "format": "legacy",
    }
    assert ts_range(redis_client, "fraud-ts") == [(T0, 0.7)]


BAD_RECORDS = {
    "not_utf8": b"\xff\xfe\x00",
    "not_json": b"{oops",
    "not_object": b"[1,2]",
    "too_large": b'{"transaction_id": "' + b"a" * 70_000 + b'"}',
    "unknown_schema": b'{"hello": "world"}',
    "missing_field": b'{"transaction_id": "x1"}',
    "invalid_field": json.dumps(
        {"transaction_id": "x2", "timestamp": T0, "card_id": "c", "amount": True, "features": [0.0] * 30}
    ).encode(),
    "wrong_feature_count": json.dumps(
        {"transaction_id": "x3", "timestamp": T0, "card_id": "c", "amount": 1, "features": [0.0] * 31}
    ).encode(),
    "non_finite": b'{"transaction_id": "x4", "timestamp": 1, "card_id": "c", "amount": NaN, "features": []}',
}


def test_bad_records_go_to_the_rejected_stream_and_are_not_retried(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN every kind of bad record around one good one, plus one that is not even base64
    records = [record(data) for data in BAD_RECORDS.values()]
    records.insert(3, record(make_transaction("good", timestamp=T0)))
    event = kinesis_event(records, shard_id=SHARD)
    event["Records"].append(kinesis_event([b"x"], shard_id=SHARD)["Records"][0])
    event["Records"][-1]["kinesis"]["data"] = "%%%"

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN the shard moves on: nothing is reported for retry
    assert response == failures()
    assert redis_client.json().get("txn:good", "$.verdict") == ["legit"]
    entries = [fields for _, fields in redis_client.xrange("rejected:records")]
    assert [e["reason"] for e in entries] == [*BAD_RECORDS, "bad_base64"]
    bad_seqs = [s for s in sequence_numbers(event) if s != sequence_numbers(event)[3]]
    assert [e["sequence_number"] for e in entries] == bad_seqs
    assert {e["shard_id"] for e in entries} == {SHARD}
    # the position in one text that never reads as a number (dashboards would round the digits)
    assert [e["position"] for e in entries] == [f"{SHARD}/{seq}" for seq in bad_seqs]
    # By default no raw payload (it may hold card data): its hash and length identify it.
    assert entries[1]["sha256"] == hashlib.sha256(b"{oops").hexdigest()
    assert entries[1]["length"] == "5"
    assert int(entries[3]["length"]) == len(BAD_RECORDS["too_large"])
    assert not any("data" in e for e in entries)
    assert all(e["detail"] for e in entries)
    assert sum(v for _, v in ts_range(redis_client, "ts:rejected")) == len(entries)


def test_replaying_a_batch_changes_nothing(scorer_env, redis_client, make_transaction, lambda_context):
    # GIVEN a processed batch with valid, legacy and bad records
    legacy = {"data": ",".join(["0.2"] * 30), "metadata": [T0, 1, "src"]}
    event = kinesis_event(
        [record(make_transaction(f"r{i}", fraud=i / 10, timestamp=T0 + i)) for i in range(8)]
        + [record(legacy), record(b"not json")]
    )
    assert handler.handler(event, lambda_context) == failures()
    before = dump(redis_client)

    # WHEN Kinesis delivers the same batch again (a new container, too)
    assert handler.handler(event, lambda_context) == failures()
    handler.reset_container_state()
    assert handler.handler(event, lambda_context) == failures()

    # THEN not one key, document, sample or stream entry changed
    assert dump(redis_client) == before


def test_duplicate_ids_in_one_batch_are_stored_once(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN the same transaction id three times (the later copies even score differently)
    first = make_transaction("dup", fraud=0.9, timestamp=T0)
    event = kinesis_event(
        [record(first), record(make_transaction("dup", fraud=0.1, timestamp=T0 + 5)), record(first)]
    )

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN one document (the first occurrence), one sample per series, all acknowledged
    assert response == failures()
    assert redis_client.json().get("txn:dup", "$.kinesis.sequence_number") == [sequence_numbers(event)[0]]
    assert ts_range(redis_client, "ts:fraud_probability") == [(T0, 0.9)]
    assert ts_range(redis_client, "ts:verdict:fraud") == [(T0, 1.0)]
    assert [v for _, v in ts_range(redis_client, "ts:scored")] == [1.0]


def test_endpoint_5xx_then_success_is_retried_by_botocore(
    scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context
):
    # GIVEN the next two calls fail with 500
    sagemaker_runtime.fail_next(2, status=500)
    event = kinesis_event([record(make_transaction(f"t{i}", timestamp=T0)) for i in range(3)])

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN the retries succeeded: two failed calls plus one successful call per endpoint
    assert response == failures()
    assert sagemaker_runtime.calls == 4
    assert redis_client.ft("idx:txn").info()["num_docs"] == 3


def test_endpoint_down_reports_exactly_the_valid_records(
    scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context
):
    # GIVEN an endpoint that keeps failing, and a batch mixing valid and invalid records
    sagemaker_runtime.fail_next(1000, status=503)
    event = kinesis_event(
        [
            record(make_transaction("v1", timestamp=T0)),
            record(b"bad"),
            record(make_transaction("v2", timestamp=T0)),
        ]
    )
    valid_1, invalid, valid_2 = sequence_numbers(event)

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN only the valid records are retried; the invalid one is stored as rejected
    assert response == failures(valid_1, valid_2)
    assert sagemaker_runtime.calls == 6  # three attempts per endpoint, then give up
    assert redis_client.keys("txn:v*") == []
    assert [f["sequence_number"] for _, f in redis_client.xrange("rejected:records")] == [invalid]

    # AND once the endpoint is back, the retried batch is stored
    sagemaker_runtime.clear_faults()
    assert handler.handler(event, lambda_context) == failures()
    assert sorted(redis_client.keys("txn:v*")) == ["txn:v1", "txn:v2"]


class ForceJson:
    """An XGBoost container answering JSON whatever the Accept header says."""

    def __init__(self) -> None:
        self._inner = xgboost_endpoint(predictable_fraud_probability)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self._inner.invoke(body, content_type, "application/json")


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(xgboost_endpoint(predictable_fraud_probability, csv_join="\n"), id="csv-newline"),
        pytest.param(xgboost_endpoint(predictable_fraud_probability, csv_join=","), id="csv-comma"),
        pytest.param(ForceJson(), id="json"),
    ],
)
def test_every_xgboost_response_format_maps_scores_to_the_right_rows(
    scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context, endpoint
):
    # GIVEN
    sagemaker_runtime.endpoints[scorer_env["FRAUD_ENDPOINT_NAME"]] = endpoint
    probabilities = [0.11, 0.52, 0.93, 0.04]
    event = kinesis_event(
        [record(make_transaction(f"p{i}", fraud=p, timestamp=T0 + i)) for i, p in enumerate(probabilities)]
    )

    # WHEN
    assert handler.handler(event, lambda_context) == failures()

    # THEN
    stored = [redis_client.json().get(f"txn:p{i}", "$.fraud_probability")[0] for i in range(4)]
    assert stored == probabilities


class DropsLastScore:
    def __init__(self) -> None:
        self._inner = rcf_endpoint(lambda rows: [row[2] for row in rows])

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        payload, kind = self._inner.invoke(body, content_type, accept)
        scores = json.loads(payload)["scores"][:-1]
        return json.dumps({"scores": scores}).encode(), kind


def test_score_count_mismatch_is_a_transient_failure_not_a_misalignment(
    scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context
):
    # GIVEN an anomaly endpoint that returns one score too few
    sagemaker_runtime.endpoints[scorer_env["ANOMALY_ENDPOINT_NAME"]] = DropsLastScore()
    event = kinesis_event([record(make_transaction(f"m{i}", timestamp=T0)) for i in range(3)])

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN the whole batch is retried and nothing was stored
    assert response == failures(*sequence_numbers(event))
    assert redis_client.keys("txn:*") == []


class Answers:
    """An endpoint that answers with a fixed body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self.body, "application/json"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"scores": [{"score": 1' + b"0" * 400 + b"}]}", id="score-beyond-float"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-too-deep"),
    ],
)
def test_a_garbled_endpoint_answer_is_a_transient_failure(
    body, scorer_env, sagemaker_runtime, redis_client, make_transaction, lambda_context
):
    # GIVEN an anomaly endpoint whose answer no parser can turn into scores
    sagemaker_runtime.endpoints[scorer_env["ANOMALY_ENDPOINT_NAME"]] = Answers(body)
    event = kinesis_event([record(make_transaction(f"g{i}", timestamp=T0)) for i in range(2)])

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN a partial-batch answer (every record retried), not a failed invocation
    assert response == failures(*sequence_numbers(event))
    assert redis_client.keys("txn:*") == []


@pytest.mark.timeout(120)
def test_a_hung_redis_fails_the_batch_in_seconds(scorer_env, monkeypatch, make_transaction, lambda_context):
    # GIVEN a warm container idle long enough for the memory sample to be due, then its Redis stops
    # answering (SIGSTOP: connections are accepted by the kernel, nothing replies)
    with RedisStackServer() as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        handler.reset_container_state()
        assert handler.handler(
            kinesis_event([record(make_transaction("warm", timestamp=T0))]), lambda_context
        ) == (failures())
        entry._memory_gauge._next_at = 0
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            event = kinesis_event([record(make_transaction(f"h{i}", timestamp=T0)) for i in range(3)])
            started = time.monotonic()
            response = handler.handler(event, lambda_context)
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.process.pid, signal.SIGCONT)

    # THEN every record is reported for retry well within a Lambda timeout (its minimum here is 10 s):
    # one socket timeout, no retry of a timeout, no INFO after the failure
    assert response == failures(*sequence_numbers(event))
    assert elapsed < 6, elapsed


@pytest.mark.timeout(60)  # a hang guard: the handler must give up on its own
def test_redis_down_fails_everything_then_recovers(
    scorer_env, redis_stack, redis_client, make_transaction, lambda_context
):
    # GIVEN a warm container (schema and scripts in place), then Redis crashes
    warm = kinesis_event([record(make_transaction("warm", timestamp=T0))])
    assert handler.handler(warm, lambda_context) == failures()
    event = kinesis_event(
        [record(make_transaction("a", timestamp=T0)), record(b"bad"), record(make_transaction("b"))]
    )
    redis_stack.kill()
    try:
        # WHEN
        response = handler.handler(event, lambda_context)

        # THEN nothing is acknowledged, not even the rejected record whose rejection was not stored
        assert response == failures(*sequence_numbers(event))
    finally:
        redis_stack.start()

    # AND when Redis is back (empty: it lost its scripts and schema too) the retry stores everything
    assert handler.handler(event, lambda_context) == failures()
    assert sorted(redis_client.keys("txn:?")) == ["txn:a", "txn:b"]
    assert redis_client.xlen("rejected:records") == 1
    assert redis_client.ts().info("ts:verdict:legit").duplicate_policy == "sum"  # re-created with its policy


@pytest.mark.timeout(60)
def test_unreachable_redis_port_fails_the_batch(scorer_env, monkeypatch, make_transaction, lambda_context):
    # GIVEN a Redis URL where nothing listens
    from emulators.redis_stack import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    handler.reset_container_state()
    event = kinesis_event([record(make_transaction("z", timestamp=T0)), record(b"bad")])

    # WHEN / THEN
    assert handler.handler(event, lambda_context) == failures(*sequence_numbers(event))


def test_metrics_count_the_batch(scorer_env, make_transaction, lambda_context, capsys):
    # GIVEN
    event = kinesis_event(
        [
            record(make_transaction("f", fraud=0.8, timestamp=T0)),
            record(make_transaction("s", anomaly=9.0, timestamp=T0)),
            record(make_transaction("l", timestamp=T0)),
            record(b"bad"),
        ]
    )
    capsys.readouterr()

    # WHEN
    handler.handler(event, lambda_context)

    # THEN the EMF blobs on stdout carry the counts
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    batch = next(b for b in blobs if "RecordsScored" in b)
    assert batch["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FraudDetection"
    assert batch["service"] == "fraud-scorer"
    assert {k: batch[k] for k in ("RecordsScored", "RecordsRejected", "RecordsRetried")} == {
        "RecordsScored": [3.0],
        "RecordsRejected": [1.0],
        "RecordsRetried": [0.0],
    }
    assert (batch["VerdictFraud"], batch["VerdictSuspicious"], batch["VerdictLegit"]) == ([1.0], [1.0], [1.0])
    latency = {b["endpoint"] for b in blobs if "EndpointLatency" in b}
    assert latency == {"fraud", "anomaly"}


class _Collect(logging.Handler):
    """Keeps every record and its formatted line (the JSON Powertools writes to CloudWatch)."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


def test_logs_carry_ids_and_counts_but_no_card_data(scorer_env, make_transaction, lambda_context):
    # GIVEN a card number in a valid record and in a rejected one, and a collector on the service's
    # logger itself (not the root logger, so the check does not depend on propagation or capture order)
    event = kinesis_event(
        [
            record(make_transaction("id-1", card_id="4111111111111111", timestamp=T0)),
            record(b'{"card": "4111"}'),
        ]
    )
    service_logger = logging.getLogger("fraud-scorer")
    collect = _Collect(service_logger.handlers[0].formatter)
    service_logger.addHandler(collect)
    # Powertools fixes the level when the module is first imported (POWERTOOLS_LOG_LEVEL at that time,
    # e.g. WARNING if the local pipeline imported it first): log everything here, whatever ran before.
    tree = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("fraud-scorer")
    ]
    levels = [(lg, lg.level) for lg in tree]
    for lg in tree:
        lg.setLevel(logging.DEBUG)

    # WHEN
    try:
        handler.handler(event, lambda_context)
    finally:
        service_logger.removeHandler(collect)
        for lg, previous in levels:
            lg.setLevel(previous)

    # THEN the log lines (message and structured extras, as formatted) name counts and sequence numbers only
    summary = next(r for r in collect.records if r.getMessage() == "batch processed")
    assert (summary.records, summary.stored, summary.rejected, summary.retry) == (2, 1, 1, 0)
    assert any(sequence_numbers(event)[1] in line for line in collect.lines)
    assert not any("4111" in line for line in collect.lines)
    assert not any(scorer_env["REDIS_URL"] in line for line in collect.lines)


def test_samples_survive_a_series_deleted_behind_the_scorer(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN a warm container, then someone deletes one of the series
    assert (
        handler.handler(kinesis_event([record(make_transaction("w", timestamp=T0))]), lambda_context)
        == failures()
    )
    redis_client.delete("ts:verdict:legit")

    # WHEN the next batch arrives, two transactions at the same millisecond, in the next sample bucket
    later = T0 + SAMPLE_RESOLUTION_MS + 1
    event = kinesis_event(
        [record(make_transaction("n1", timestamp=later)), record(make_transaction("n2", timestamp=later))]
    )
    assert handler.handler(event, lambda_context) == failures()

    # THEN the series is back and still counts with the contract's SUM; the other series are intact
    bucket = T0 + SAMPLE_RESOLUTION_MS
    assert ts_range(redis_client, "ts:verdict:legit") == [(bucket, 2.0)]
    assert ts_range(redis_client, "ts:anomaly_score") == [(T0, 1.0), (bucket, 1.0)]


def test_event_times_outside_the_window_are_rejected_and_cannot_silence_the_series(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN a transaction dated 2100, one from 30 days ago (beyond the 7-day raw retention), and one
    # 4 minutes ahead (within the 5-minute clock skew)
    now_ms = int(time.time() * 1000)
    event = kinesis_event(
        [
            record(make_transaction("future", timestamp=4_102_444_800_000)),
            record(make_transaction("old", timestamp=now_ms - 30 * 24 * 3600 * 1000)),
            record(make_transaction("skewed", timestamp=now_ms + 4 * 60_000)),
        ]
    )

    # WHEN
    assert handler.handler(event, lambda_context) == failures()

    # THEN the first two are kept aside with the reason, the third is stored
    entries = [fields for _, fields in redis_client.xrange("rejected:records")]
    assert [e["reason"] for e in entries] == ["timestamp_out_of_range"] * 2
    assert redis_client.keys("txn:*") == ["txn:skewed"]

    # AND a real transaction of now still gets its samples (no sample from 2100 blocks them)
    assert handler.handler(
        kinesis_event([record(make_transaction("now", timestamp=now_ms))]), lambda_context
    ) == (failures())
    assert (now_ms - now_ms % SAMPLE_RESOLUTION_MS, 0.1) in ts_range(redis_client, "ts:fraud_probability")


def test_a_key_in_the_way_fails_only_its_own_records(
    scorer_env, redis_client, make_transaction, lambda_context
):
    # GIVEN a key of another type where one transaction's document goes, and a label naming it
    redis_client.set("txn:blocked", "not a document")
    label = {"type": "label", "transaction_id": "blocked", "label": 1, "timestamp": T0 + 10}
    event = kinesis_event(
        [
            record(make_transaction("good", timestamp=T0)),
            record(make_transaction("blocked", timestamp=T0 + 1)),
            record(label),
            record(b"not json"),
        ]
    )
    seqs = sequence_numbers(event)

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN the blocked transaction and its label wait for a retry; the rest of the batch is done
    assert response == failures(seqs[1], seqs[2])
    assert redis_client.json().get("txn:good", "$.verdict") == ["legit"]
    assert [f["reason"] for _, f in redis_client.xrange("rejected:records")] == ["not_json"]

    # WHEN the key is gone and Kinesis delivers the batch again
    redis_client.delete("txn:blocked")
    assert handler.handler(event, lambda_context) == failures()

    # THEN the transaction is stored and labelled; nothing was kept twice
    assert redis_client.json().get("txn:blocked", "$.label") == [1]
    assert redis_client.xlen("rejected:records") == 1


def test_a_rejection_is_acknowledged_only_once_it_is_kept(scorer_env, redis_client, lambda_context):
    # GIVEN a bad record, and the rejected stream's key taken by a string (XADD fails)
    event = kinesis_event([record(b"not json")])
    redis_client.set("rejected:records", "in the way")

    # WHEN it is delivered, then delivered again once the stream can be written
    first = handler.handler(event, lambda_context)
    redis_client.delete("rejected:records")
    second = handler.handler(event, lambda_context)
    third = handler.handler(event, lambda_context)

    # THEN it is retried until it is in the stream, and kept once
    assert first == failures(*sequence_numbers(event))
    assert second == third == failures()
    assert [f["reason"] for _, f in redis_client.xrange("rejected:records")] == ["not_json"]


def test_amounts_the_windows_cannot_sum_are_rejected_not_fatal(scorer_env, redis_client, lambda_context):
    # GIVEN v2 transactions of one card with finite amounts whose sum overflows a float, and a
    # valid one of another card
    def v2(txn_id: str, amount: float, card: str = "card-huge") -> dict:
        return {
            "transaction_id": txn_id,
            "timestamp": T0,
            "card_id": card,
            "terminal_id": "t",
            "amount": amount,
        }

    event = kinesis_event(
        [record(v2("huge-1", 1e308)), record(v2("huge-2", 1e308)), record(v2("ok", 5.0, "c"))]
    )

    # WHEN
    response = handler.handler(event, lambda_context)

    # THEN a partial-batch answer: the huge ones kept aside with the reason, the other one scored
    assert response == failures()
    entries = [f for _, f in redis_client.xrange("rejected:records")]
    assert [(e["reason"], "amount" in e["detail"]) for e in entries] == [("invalid_field", True)] * 2
    assert redis_client.json().get("txn:ok", "$.amount") == [5.0]
