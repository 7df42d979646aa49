"""The scorer's SageMaker client at the largest batch the event source mapping allows (10,000 records):
chunked under the InvokeEndpoint payload limit, concurrent, scores back in row order; and the
multi-container endpoint (both models on one instance) addressed by TargetContainerHostname."""

from __future__ import annotations

import random

import pytest

from contracts.sagemaker_formats import (
    ANOMALY_CONTAINER_HOSTNAME,
    FRAUD_CONTAINER_HOSTNAME,
    MAX_REQUEST_BYTES,
    SERVERLESS_MAX_PAYLOAD_BYTES,
)
from emulators.sagemaker_runtime import (
    SageMakerRuntimeServer,
    multi_container_endpoint,
    rcf_endpoint,
    xgboost_endpoint,
)
from fraud_scorer.sagemaker import BatchScorer, ScoringUnavailable, csv_chunks, make_runtime_client

MAX_BATCH_SIZE = 10_000  # Lambda's maximum BatchSize for a Kinesis event source mapping


def wide_rows(count: int, seed: int = 3) -> list[str]:
    """creditcard.csv-shaped rows (30 numbers at full float precision, ~570 bytes): the widest we send.
    The first value is the row's index so a model's answer identifies the row it came from."""
    rng = random.Random(seed)
    return [",".join([str(i)] + [repr(rng.uniform(-1e5, 1e5)) for _ in range(29)]) for i in range(count)]


def index_as_probability(rows):
    return [row[0] / MAX_BATCH_SIZE for row in rows]


def index_as_anomaly(rows):
    return [row[0] * 2 for row in rows]


@pytest.fixture
def runtime(monkeypatch):
    endpoints = {
        "fraud": xgboost_endpoint(index_as_probability),
        "anomaly": rcf_endpoint(index_as_anomaly),
        "models": multi_container_endpoint(
            {
                FRAUD_CONTAINER_HOSTNAME: xgboost_endpoint(index_as_probability, csv_join=","),
                ANOMALY_CONTAINER_HOSTNAME: rcf_endpoint(index_as_anomaly),
            }
        ),
    }
    with SageMakerRuntimeServer(endpoints) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield server


def test_the_largest_batch_is_chunked_under_the_serverless_limit_and_scores_align(runtime):
    # GIVEN the endpoint refuses bodies over the serverless limit, and a batch far above it
    runtime.max_payload_bytes = SERVERLESS_MAX_PAYLOAD_BYTES
    rows = wide_rows(MAX_BATCH_SIZE)
    assert len("\n".join(rows).encode()) > SERVERLESS_MAX_PAYLOAD_BYTES  # one body would be refused
    scorer = BatchScorer(client=make_runtime_client(), fraud_endpoint="fraud", anomaly_endpoint="anomaly")

    # WHEN the batch is scored
    scores = scorer.start(rows).result()

    # THEN every row has its own scores, in row order
    assert scores.fraud_probabilities == [i / MAX_BATCH_SIZE for i in range(MAX_BATCH_SIZE)]
    assert scores.anomaly_scores == [float(i * 2) for i in range(MAX_BATCH_SIZE)]
    # AND every request stayed under the limit, in several chunks per model
    for endpoint in ("fraud", "anomaly"):
        sizes = runtime.payload_sizes[endpoint]
        assert len(sizes) >= 2
        assert max(sizes) <= MAX_REQUEST_BYTES <= SERVERLESS_MAX_PAYLOAD_BYTES


def test_both_models_on_one_multi_container_endpoint_are_addressed_by_host_name(runtime):
    # GIVEN the default deployment: one endpoint name for both models
    rows = wide_rows(MAX_BATCH_SIZE)
    scorer = BatchScorer(client=make_runtime_client(), fraud_endpoint="models", anomaly_endpoint="models")

    # WHEN the batch is scored
    scores = scorer.start(rows).result()

    # THEN each container answered its own model's calls (the endpoint refuses calls without a target)
    assert scores.fraud_probabilities == [i / MAX_BATCH_SIZE for i in range(MAX_BATCH_SIZE)]
    assert scores.anomaly_scores == [float(i * 2) for i in range(MAX_BATCH_SIZE)]
    assert set(runtime.payload_sizes) == {
        f"models/{FRAUD_CONTAINER_HOSTNAME}",
        f"models/{ANOMALY_CONTAINER_HOSTNAME}",
    }


def test_a_failed_chunk_fails_the_whole_batch(runtime):
    # GIVEN some chunks' calls are refused (400: botocore does not retry them)
    runtime.fail_next(3, status=400)
    scorer = BatchScorer(client=make_runtime_client(), fraud_endpoint="fraud", anomaly_endpoint="anomaly")

    # WHEN / THEN the batch is not scored at all (the caller retries it), never partly
    with pytest.raises(ScoringUnavailable, match="ValidationError"):
        scorer.start(wide_rows(MAX_BATCH_SIZE)).result()


@pytest.mark.parametrize("limit", [10, 11, 25, 1000])
def test_chunks_keep_every_row_once_in_order_and_under_the_limit(limit):
    lines = ["1234", "5", "67", "8901", "2", "3456"]
    chunks = csv_chunks(lines, limit)
    assert all(len(body) <= limit for _, body in chunks)
    assert sum(rows for rows, _ in chunks) == len(lines)
    assert b"\n".join(body for _, body in chunks) == "\n".join(lines).encode()
    for rows, body in chunks:
        assert body.count(b"\n") == rows - 1


def test_a_row_longer_than_the_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="row 1 is 12 bytes"):
        csv_chunks(["1", "123456789012"], 10)


def test_no_rows_make_no_call():
    assert csv_chunks([]) == []
